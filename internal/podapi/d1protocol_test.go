package podapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
)

const d1TestAccount = "0123456789abcdef0123456789abcdef"

// newD1 returns a D1 store with one database and its x-octo-d1 value.
func newD1(t testing.TB) (*store.D1, string) {
	t.Helper()
	d1 := store.NewD1(t.TempDir(), nil)
	t.Cleanup(func() { _ = d1.Close() })
	db, err := d1.Create(context.Background(), d1TestAccount, "test")
	if err != nil {
		t.Fatal(err)
	}
	return d1, d1TestAccount + "/" + db.UUID
}

func d1Post(t *testing.T, h http.Handler, hdr, path, body string) (int, string, http.Header) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set(workerd.D1Header, hdr)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), rec.Header()
}

func TestD1Protocol(t *testing.T) {
	d1, hdr := newD1(t)
	h := D1Protocol(d1, nil)

	code, body, hd := d1Post(t, h, hdr, "/execute?resultsFormat=NONE", `[{"sql":"CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)","params":[]},{"sql":"INSERT INTO t (v) VALUES (?)","params":["a"]}]`)
	if code != 200 || hd.Get(D1BookmarkHeader) == "" {
		t.Fatalf("%d %s", code, body)
	}
	var answers []struct {
		Success bool            `json:"success"`
		Results json.RawMessage `json:"results"`
		Meta    map[string]any  `json:"meta"`
	}
	if err := json.Unmarshal([]byte(body), &answers); err != nil || len(answers) != 2 || !answers[1].Success {
		t.Fatalf("%s: %v", body, err)
	}
	if answers[1].Meta["changes"] != 1.0 || answers[1].Meta["last_row_id"] != 1.0 || answers[1].Meta["changed_db"] != true {
		t.Fatalf("meta %v", answers[1].Meta)
	}

	code, body, _ = d1Post(t, h, hdr, "/query?resultsFormat=ROWS_AND_COLUMNS", `{"sql":"SELECT id, v FROM t WHERE v = ?","params":["a"]}`)
	if code != 200 || !strings.Contains(body, `"results":{"columns":["id","v"],"rows":[[1,"a"]]}`) {
		t.Fatalf("%d %s", code, body)
	}
	code, body, _ = d1Post(t, h, hdr, "/query?resultsFormat=ARRAY_OF_OBJECTS", `{"sql":"SELECT id, v FROM t"}`)
	if code != 200 || !strings.Contains(body, `"results":[{"id":1,"v":"a"}]`) {
		t.Fatalf("%d %s", code, body)
	}

	// An error: nothing applied, D1's failure shape.
	code, body, _ = d1Post(t, h, hdr, "/query", `[{"sql":"INSERT INTO t (v) VALUES ('b')"},{"sql":"INSERT INTO nope VALUES (1)"}]`)
	if code != 500 || body != `{"success":false,"error":"no such table: nope: SQLITE_ERROR"}` {
		t.Fatalf("%d %s", code, body)
	}
	_, body, _ = d1Post(t, h, hdr, "/query", `{"sql":"SELECT count(*) AS n FROM t"}`)
	if !strings.Contains(body, `[{"n":1}]`) {
		t.Fatalf("batch not rolled back: %s", body)
	}

	for _, c := range []struct{ hdr, path, body string }{
		{"", "/query", `{"sql":"SELECT 1"}`},
		{hdr, "/dump", ``},
		{hdr, "/query", `{"nosql":1}`},
		{d1TestAccount + "/00000000-0000-4000-8000-000000000000", "/query", `{"sql":"SELECT 1"}`},
	} {
		code, body, _ := d1Post(t, h, c.hdr, c.path, c.body)
		if code < 400 || !strings.Contains(body, `"success":false`) {
			t.Errorf("%s %s: %d %s", c.hdr, c.path, code, body)
		}
	}
}

func TestD1NeedsCredential(t *testing.T) {
	d1, hdr := newD1(t)
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Key: key, D1: d1})
	s.source = func(netip.Addr) bool { return true }
	h := s.Handler()
	req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(`{"sql":"SELECT 1"}`))
	req.Header.Set(workerd.D1Header, hdr)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("without credential: %d", rec.Code)
	}
	req = httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(`{"sql":"SELECT 1 AS one"}`))
	req.Header.Set(workerd.D1Header, hdr)
	req.Header.Set(workerd.AuthHeader, key.Credential(d1TestAccount))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `[{"one":1}]`) {
		t.Fatalf("with credential: %d %s", rec.Code, rec.Body.String())
	}
}
