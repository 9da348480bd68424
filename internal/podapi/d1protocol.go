package podapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
)

// maxD1Body bounds the JSON body of a D1 query (a batch or an exec script).
const maxD1Body = 32 << 20

// D1BookmarkHeader carries the session bookmark of a D1 answer (workerd's
// D1_SESSION_COMMIT_TOKEN_HTTP_HEADER); sessions read it, octo ignores the
// one they send (every query goes to the one, primary, database).
const D1BookmarkHeader = "x-cf-d1-session-commit-token"

// D1Protocol serves the fetcher of workerd's cloudflare-internal:d1-api
// module (the JS D1Database over a `wrapped` binding), backed by the D1
// store:
//
//	POST /query?resultsFormat=ROWS_AND_COLUMNS|ARRAY_OF_OBJECTS|NONE
//	POST /execute?resultsFormat=…
//	     body {"sql":"…","params":[…]} or an array of them (a batch; exec
//	     sends one entry per line)
//	→ 200 [{"success":true,"results":…,"meta":{…}}, …]  one entry per
//	  statement of the body, all run in one transaction; results is
//	  {"columns":[…],"rows":[[…]]} for ROWS_AND_COLUMNS, else an array of
//	  objects (NONE too: D1's run() returns the rows as all() does)
//	→ 500 {"success":false,"error":"<message>: SQLITE_<CODE>"} on any error,
//	  after which nothing of the body is applied; the module prefixes
//	  "D1_ERROR: " when it throws.
//
// Every answer carries D1BookmarkHeader. The account and database come from
// the x-octo-d1 header (<account id>/<database uuid>).
func D1Protocol(d1 *store.D1, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &d1Protocol{st: d1, log: log}
}

// d1Protocol is the handler D1Protocol returns.
type d1Protocol struct {
	st  *store.D1
	log *slog.Logger
}

// d1Query is one entry of a request body.
type d1Query struct {
	SQL    *string `json:"sql"`
	Params []any   `json:"params"`
}

// d1Rows is the ROWS_AND_COLUMNS form of results.
type d1Rows struct {
	Columns []string `json:"columns"`
	Rows    [][]any  `json:"rows"`
}

// d1Answer is one entry of the answer.
type d1Answer struct {
	Success bool         `json:"success"`
	Results any          `json:"results,omitempty"`
	Meta    store.D1Meta `json:"meta"`
}

// d1Failure is the answer to a request that failed.
type d1Failure struct {
	Success bool   `json:"success"`
	Error   string `json:"error"`
}

func (h *d1Protocol) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := strings.TrimSpace(r.Header.Get(workerd.D1Header))
	acct, id, found := strings.Cut(hdr, "/")
	if !found || acct == "" || id == "" {
		h.fail(w, http.StatusBadRequest, "missing or malformed "+workerd.D1Header+" header "+strconv.Quote(hdr)+": want <account id>/<database uuid>")
		return
	}
	if r.Method != http.MethodPost || (r.URL.Path != "/query" && r.URL.Path != "/execute") {
		h.fail(w, http.StatusNotFound, fmt.Sprintf("octo D1 does not serve %s %s (only POST /query and /execute)", r.Method, r.URL.Path))
		return
	}
	queries, err := readD1Queries(http.MaxBytesReader(w, r.Body, maxD1Body))
	if err != nil {
		h.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	stmts := make([]store.D1Statement, len(queries))
	for i, q := range queries {
		stmts[i] = store.D1Statement{SQL: *q.SQL, Params: q.Params}
	}
	res, err := h.st.Query(r.Context(), acct, id, stmts)
	if err != nil {
		status := http.StatusInternalServerError
		if store.AsError(err) == nil {
			h.log.Error("D1 query failed", "account", acct, "database", id, "err", err)
		}
		h.fail(w, status, err.Error())
		return
	}
	format := r.URL.Query().Get("resultsFormat")
	answers := make([]d1Answer, len(stmts))
	for i := range answers {
		answers[i] = d1Answer{Success: true, Results: []any{}, Meta: store.D1Meta{ServedByPrimary: true}}
	}
	// A statement that holds several SQL statements answers with the rows
	// of its last one and the sum of their meta.
	for _, one := range res {
		a := &answers[one.Statement]
		if format == "ROWS_AND_COLUMNS" {
			a.Results = d1Rows{Columns: one.Columns, Rows: one.Rows}
		} else {
			a.Results = one.Objects()
		}
		a.Meta = sumMeta(a.Meta, one.Meta)
	}
	h.write(w, http.StatusOK, answers)
}

// readD1Queries parses a body: one query or an array of them.
func readD1Queries(body io.Reader) ([]d1Query, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, fmt.Errorf("read the query: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var queries []d1Query
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '[' {
		err = dec.Decode(&queries)
	} else {
		var q d1Query
		err = dec.Decode(&q)
		queries = []d1Query{q}
	}
	if err != nil {
		return nil, fmt.Errorf("malformed query body: %w", err)
	}
	for i, q := range queries {
		if q.SQL == nil {
			return nil, fmt.Errorf("malformed query body: entry %d has no sql", i)
		}
	}
	return queries, nil
}

// sumMeta adds the meta of a further statement to a.
func sumMeta(a, b store.D1Meta) store.D1Meta {
	b.Duration += a.Duration
	b.Timings.SQLDurationMS += a.Timings.SQLDurationMS
	b.Changes += a.Changes
	b.RowsRead += a.RowsRead
	b.RowsWritten += a.RowsWritten
	b.ChangedDB = b.ChangedDB || a.ChangedDB
	return b
}

func (h *d1Protocol) fail(w http.ResponseWriter, status int, msg string) {
	h.write(w, status, d1Failure{Success: false, Error: msg})
}

func (h *d1Protocol) write(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		h.log.Error("D1 answer", "err", err)
		status, b = http.StatusInternalServerError, []byte(`{"success":false,"error":"octo: cannot encode the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(D1BookmarkHeader, d1Bookmark(time.Now()))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// d1Bookmark is a bookmark that sorts after every earlier one (sessions
// keep the greatest they have seen).
func d1Bookmark(t time.Time) string {
	n := uint64(t.UnixNano())
	return fmt.Sprintf("%08x-%08x-00000000-%016x", n>>32, uint32(n), n)
}
