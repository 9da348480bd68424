package cfapi

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/octohq/octo/internal/store"
)

// Limits of the D1 API.
const (
	d1MaxJSONBody = 100 << 20 // a query (Cloudflare: 100 KB per statement)
	d1MaxImport   = 500 << 20 // an uploaded SQL file
	d1MaxPerPage  = 10000
	d1TransferTTL = time.Hour
	// d1MaxTransfers bounds the uploads and exports waiting to be fetched.
	d1MaxTransfers = 32
	// D1TransferPath is where import uploads are PUT and exports fetched,
	// under BasePath, without the API token: the URL's secret is the
	// credential (as a presigned URL).
	D1TransferPath = "/d1-transfers/"
)

// registerD1 mounts the D1 API on the account group a, and on e (outside
// the token check) the transfer URLs of imports and exports:
//
//	POST   /accounts/:id/d1/database              {name}  → {uuid, name, created_at, version, …}
//	GET    /accounts/:id/d1/database?name=&page=&per_page=
//	GET    /accounts/:id/d1/database/:uuid|:name  {…, num_tables, file_size, read_replication}
//	DELETE /accounts/:id/d1/database/:uuid
//	POST   /accounts/:id/d1/database/:uuid/query  {sql, params?} | {batch:[…]} → [{results:[{…}], success, meta}]
//	POST   /accounts/:id/d1/database/:uuid/raw    same → [{results:{columns, rows}, success, meta}]
//	POST   /accounts/:id/d1/database/:uuid/import {action: init|ingest|poll, etag, filename}
//	POST   /accounts/:id/d1/database/:uuid/export {output_format: "polling", dump_options}
//	PUT    /d1-transfers/<secret>                 the SQL file of an import; ETag = its MD5
//	GET    /d1-transfers/<secret>                 the SQL of an export
//
// `wrangler d1 info` also POSTs to /graphql (d1AnalyticsAdaptiveGroups); any
// JSON answer lets it print (it reads the answer with optional chaining).
func (s *Server) registerD1(e *echo.Echo, a *echo.Group) {
	h := &d1API{st: s.store.D1(), edgeURL: s.edgeURL, transfers: map[string]*d1Transfer{}}
	const p = "/d1/database"
	a.POST(p, h.create)
	a.GET(p, h.list)
	a.GET(p+"/:db", h.get)
	a.DELETE(p+"/:db", h.delete)
	a.POST(p+"/:db/query", h.query)
	a.POST(p+"/:db/raw", h.raw)
	a.POST(p+"/:db/import", h.importSQL)
	a.POST(p+"/:db/export", h.export)
	e.PUT(BasePath+D1TransferPath+":secret", h.upload)
	e.GET(BasePath+D1TransferPath+":secret", h.download)
}

// d1API serves the D1 routes.
type d1API struct {
	st      *store.D1
	edgeURL string
	// mu guards transfers.
	mu        sync.Mutex
	transfers map[string]*d1Transfer // by secret
}

// d1Transfer is an import's uploaded file or an export's dump.
type d1Transfer struct {
	account, db string
	filename    string
	upload      bool // an import (PUT) rather than an export (GET)
	data        []byte
	etag        string // MD5 of data, once uploaded
	expires     time.Time
}

// d1DatabaseJSON is a database as the API returns it.
type d1DatabaseJSON struct {
	UUID            string         `json:"uuid"`
	Name            string         `json:"name"`
	CreatedAt       string         `json:"created_at"`
	Version         string         `json:"version"`
	NumTables       *int           `json:"num_tables,omitempty"`
	FileSize        *int64         `json:"file_size,omitempty"`
	ReadReplication map[string]any `json:"read_replication,omitempty"`
}

func databaseJSON(db store.D1Database) d1DatabaseJSON {
	return d1DatabaseJSON{UUID: db.UUID, Name: db.Name, CreatedAt: ts(db.CreatedAt), Version: "production"}
}

func infoJSON(info store.D1Info) d1DatabaseJSON {
	out := databaseJSON(info.D1Database)
	out.NumTables, out.FileSize = &info.NumTables, &info.FileSize
	out.ReadReplication = map[string]any{"mode": "disabled"}
	return out
}

// readJSON decodes a JSON body of at most limit bytes into v, numbers kept
// as json.Number.
func readJSON(c echo.Context, limit int64, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, limit))
	if err != nil {
		return Errorf(http.StatusRequestEntityTooLarge, store.CodeD1BadRequest, "The request body is too large")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return Errorf(http.StatusBadRequest, store.CodeD1BadRequest, "The request is malformed: %v", err)
	}
	return nil
}

func (h *d1API) create(c echo.Context) error {
	var body struct {
		Name string `json:"name"`
	}
	if err := readJSON(c, d1MaxJSONBody, &body); err != nil {
		return err
	}
	db, err := h.st.Create(c.Request().Context(), account(c).ID, body.Name)
	if err != nil {
		return err
	}
	out := databaseJSON(db)
	zero, zeroSize := 0, int64(0)
	out.NumTables, out.FileSize = &zero, &zeroSize
	return ok(c, out)
}

func (h *d1API) list(c echo.Context) error {
	all, err := h.st.List(c.Request().Context(), account(c).ID, c.QueryParam("name"))
	if err != nil {
		return err
	}
	out := make([]d1DatabaseJSON, len(all))
	for i, db := range all {
		out[i] = databaseJSON(db)
	}
	items, info := page(c, out, 1000)
	if info.PerPage > d1MaxPerPage {
		return Errorf(http.StatusBadRequest, store.CodeD1BadRequest, "per_page must be at most %d", d1MaxPerPage)
	}
	return okPaged(c, items, info)
}

func (h *d1API) get(c echo.Context) error {
	info, err := h.st.Get(c.Request().Context(), account(c).ID, c.Param("db"))
	if err != nil {
		return err
	}
	return ok(c, infoJSON(info))
}

func (h *d1API) delete(c echo.Context) error {
	if err := h.st.Delete(c.Request().Context(), account(c).ID, c.Param("db")); err != nil {
		return err
	}
	return ok(c, nil)
}

// d1QueryBody is the body of /query and /raw: one statement or a batch.
type d1QueryBody struct {
	SQL    *string `json:"sql"`
	Params []any   `json:"params"`
	Batch  []struct {
		SQL    string `json:"sql"`
		Params []any  `json:"params"`
	} `json:"batch"`
}

// d1QueryResult is one entry of the answer of /query and /raw.
type d1QueryResult struct {
	Results any          `json:"results"`
	Success bool         `json:"success"`
	Meta    store.D1Meta `json:"meta"`
}

func (h *d1API) query(c echo.Context) error { return h.run(c, false) }

func (h *d1API) raw(c echo.Context) error { return h.run(c, true) }

// run executes a /query or /raw body in one transaction and answers one
// result per SQL statement.
func (h *d1API) run(c echo.Context, raw bool) error {
	var body d1QueryBody
	if err := readJSON(c, d1MaxJSONBody, &body); err != nil {
		return err
	}
	var stmts []store.D1Statement
	if body.SQL != nil {
		stmts = append(stmts, store.D1Statement{SQL: *body.SQL, Params: body.Params})
	}
	for _, b := range body.Batch {
		stmts = append(stmts, store.D1Statement{SQL: b.SQL, Params: b.Params})
	}
	if len(stmts) == 0 {
		return Errorf(http.StatusBadRequest, store.CodeD1BadRequest, "The request is malformed: give sql or batch")
	}
	res, err := h.st.Query(c.Request().Context(), account(c).ID, c.Param("db"), stmts)
	if err != nil {
		return err
	}
	out := make([]d1QueryResult, len(res))
	for i, r := range res {
		out[i] = d1QueryResult{Success: true, Meta: r.Meta, Results: r.Objects()}
		if raw {
			out[i].Results = map[string]any{"columns": r.Columns, "rows": r.Rows}
		}
	}
	return ok(c, out)
}

// d1ImportStatus is the answer of the import and export actions.
type d1ImportStatus struct {
	Success    bool     `json:"success"`
	Type       string   `json:"type"`
	Status     string   `json:"status,omitempty"`
	AtBookmark string   `json:"at_bookmark,omitempty"`
	Messages   []string `json:"messages"`
	Errors     []string `json:"errors"`
	Error      string   `json:"error,omitempty"`
	Result     any      `json:"result,omitempty"`
	UploadURL  string   `json:"upload_url,omitempty"`
	Filename   string   `json:"filename,omitempty"`
}

// importSQL runs wrangler's import flow (`d1 execute --remote --file`):
// init hands out an upload URL; the file is PUT there; ingest runs it in
// one transaction and answers "complete" at once, so poll is not needed.
func (h *d1API) importSQL(c echo.Context) error {
	var body struct {
		Action   string `json:"action"`
		Etag     string `json:"etag"`
		Filename string `json:"filename"`
	}
	if err := readJSON(c, d1MaxJSONBody, &body); err != nil {
		return err
	}
	ctx := c.Request().Context()
	acct := account(c).ID
	db, err := h.st.Lookup(ctx, acct, c.Param("db"))
	if err != nil {
		return err
	}
	switch body.Action {
	case "init":
		name := db.UUID + "-" + body.Etag + ".sql"
		secret, err := h.addTransfer(&d1Transfer{account: acct, db: db.UUID, upload: true, filename: name})
		if err != nil {
			return err
		}
		return ok(c, d1ImportStatus{Success: true, Type: "import", UploadURL: h.transferURL(c, secret), Filename: name, Messages: []string{}, Errors: []string{}})
	case "ingest":
		t := h.takeUpload(acct, db.UUID, body.Filename, body.Etag)
		if t == nil {
			return ok(c, d1ImportStatus{Success: false, Type: "import", Error: "No uploaded file " + body.Filename + " with that etag: upload it first", Messages: []string{}, Errors: []string{}})
		}
		return ok(c, h.ingest(c, t))
	case "poll":
		return ok(c, d1ImportStatus{Success: false, Type: "import", Error: "No import in progress", Messages: []string{}, Errors: []string{}})
	}
	return Errorf(http.StatusBadRequest, store.CodeD1BadRequest, "The request is malformed: unknown import action %q", body.Action)
}

// transactionRe matches the transaction statements of an SQL dump, which
// D1 drops: it runs the whole file in a transaction of its own.
var transactionRe = regexp.MustCompile(`(?i)^(BEGIN(\s+(DEFERRED|IMMEDIATE|EXCLUSIVE))?(\s+TRANSACTION)?|COMMIT(\s+TRANSACTION)?|END(\s+TRANSACTION)?)$`)

// ingest runs an uploaded SQL file.
func (h *d1API) ingest(c echo.Context, t *d1Transfer) d1ImportStatus {
	var stmts []store.D1Statement
	for _, s := range store.SplitSQL(string(t.data)) {
		if !transactionRe.MatchString(strings.TrimSpace(s)) {
			stmts = append(stmts, store.D1Statement{SQL: s})
		}
	}
	res, err := h.st.Query(c.Request().Context(), t.account, t.db, stmts)
	if err != nil {
		return d1ImportStatus{Success: false, Type: "import", Error: err.Error(), Messages: []string{}, Errors: []string{err.Error()}}
	}
	var meta store.D1Meta
	for _, r := range res {
		meta.Duration += r.Meta.Duration
		meta.RowsRead += r.Meta.RowsRead
		meta.RowsWritten += r.Meta.RowsWritten
		meta.Changes += r.Meta.Changes
		meta.ChangedDB = meta.ChangedDB || r.Meta.ChangedDB
		meta.SizeAfter, meta.LastRowID = r.Meta.SizeAfter, r.Meta.LastRowID
	}
	meta.ServedBy, meta.ServedByPrimary = "octo-d1", true
	bookmark := d1Bookmark()
	return d1ImportStatus{
		Success: true, Type: "import", Status: "complete", AtBookmark: bookmark,
		Messages: []string{fmt.Sprintf("Imported %d statements from %s", len(res), t.filename)}, Errors: []string{},
		Result: map[string]any{"success": true, "num_queries": len(res), "final_bookmark": bookmark, "meta": meta},
	}
}

// export dumps the database at once and answers "complete" with a URL to
// fetch the SQL from (valid for an hour, as Cloudflare's signed URL).
func (h *d1API) export(c echo.Context) error {
	var body struct {
		OutputFormat string `json:"output_format"`
		DumpOptions  struct {
			NoSchema bool     `json:"no_schema"`
			NoData   bool     `json:"no_data"`
			Tables   []string `json:"tables"`
		} `json:"dump_options"`
	}
	if err := readJSON(c, d1MaxJSONBody, &body); err != nil {
		return err
	}
	if body.OutputFormat != "polling" {
		return Errorf(http.StatusBadRequest, store.CodeD1BadRequest, "The request is malformed: output_format must be \"polling\"")
	}
	ctx := c.Request().Context()
	acct := account(c).ID
	db, err := h.st.Lookup(ctx, acct, c.Param("db"))
	if err != nil {
		return err
	}
	sql, err := h.st.Export(ctx, acct, db.UUID, store.D1DumpOptions{NoSchema: body.DumpOptions.NoSchema, NoData: body.DumpOptions.NoData, Tables: body.DumpOptions.Tables})
	if err != nil {
		return err
	}
	filename := fmt.Sprintf("%s-%s.sql", db.Name, time.Now().UTC().Format("20060102T150405Z"))
	secret, err := h.addTransfer(&d1Transfer{account: acct, db: db.UUID, filename: filename, data: []byte(sql)})
	if err != nil {
		return err
	}
	return ok(c, d1ImportStatus{
		Success: true, Type: "export", Status: "complete", AtBookmark: d1Bookmark(),
		Messages: []string{"Generated SQL dump " + filename}, Errors: []string{},
		Result: map[string]string{"filename": filename, "signed_url": h.transferURL(c, secret)},
	})
}

// addTransfer records t under a new secret, dropping expired transfers.
func (h *d1API) addTransfer(t *d1Transfer) (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("transfer secret: %w", err)
	}
	secret := hex.EncodeToString(b[:])
	now := time.Now()
	t.expires = now.Add(d1TransferTTL)
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, old := range h.transfers {
		if now.After(old.expires) {
			delete(h.transfers, k)
		}
	}
	if len(h.transfers) >= d1MaxTransfers {
		return "", Errorf(http.StatusTooManyRequests, store.CodeD1BadRequest, "Too many D1 imports and exports in progress; retry within the hour")
	}
	h.transfers[secret] = t
	return secret, nil
}

// takeUpload removes and returns the uploaded file filename of db whose
// MD5 is etag.
func (h *d1API) takeUpload(acct, db, filename, etag string) *d1Transfer {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, t := range h.transfers {
		if t.upload && t.account == acct && t.db == db && t.filename == filename && t.etag != "" && t.etag == etag {
			delete(h.transfers, k)
			return t
		}
	}
	return nil
}

// transferURL is the URL of a transfer, on the edge (or the request's host).
func (h *d1API) transferURL(c echo.Context, secret string) string {
	base := h.edgeURL
	if base == "" {
		base = c.Scheme() + "://" + c.Request().Host
	}
	return strings.TrimSuffix(base, "/") + BasePath + D1TransferPath + secret
}

// upload receives an import's file; it answers its MD5 as the ETag.
func (h *d1API) upload(c echo.Context) error {
	h.mu.Lock()
	t := h.transfers[c.Param("secret")]
	h.mu.Unlock()
	if t == nil || !t.upload || time.Now().After(t.expires) {
		return c.String(http.StatusForbidden, "unknown or expired upload URL")
	}
	data, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, d1MaxImport))
	if err != nil {
		return c.String(http.StatusRequestEntityTooLarge, fmt.Sprintf("the file is over %d MiB", d1MaxImport>>20))
	}
	sum := md5.Sum(data)
	h.mu.Lock()
	t.data, t.etag = data, hex.EncodeToString(sum[:])
	h.mu.Unlock()
	c.Response().Header().Set("ETag", `"`+t.etag+`"`)
	return c.NoContent(http.StatusOK)
}

// download answers an export's SQL.
func (h *d1API) download(c echo.Context) error {
	h.mu.Lock()
	t := h.transfers[c.Param("secret")]
	h.mu.Unlock()
	if t == nil || t.upload || time.Now().After(t.expires) {
		return c.String(http.StatusForbidden, "unknown or expired download URL")
	}
	c.Response().Header().Set(echo.HeaderContentDisposition, `attachment; filename="`+t.filename+`"`)
	return c.Blob(http.StatusOK, "application/sql", t.data)
}

// d1Bookmark is a bookmark for the import and export answers.
func d1Bookmark() string {
	n := uint64(time.Now().UnixNano())
	return fmt.Sprintf("%08x-%08x-00000000-%016x", n>>32, uint32(n), n)
}
