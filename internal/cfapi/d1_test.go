package cfapi

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/store/storetest"
)

// d1Env is an API server with its own account and D1 directory.
type d1Env struct {
	t       *testing.T
	e       *echo.Echo
	account string
}

func newD1Env(t *testing.T) *d1Env {
	t.Helper()
	acct := storetest.Account(t).ID
	st := store.New(store.Options{Blobs: testBlobs, Accounts: store.StaticAccounts{{ID: acct, Name: "d1 test"}}, D1Dir: t.TempDir()})
	t.Cleanup(func() { _ = st.D1().Close() })
	s := New(Options{Identity: store.Identity{Token: kvTestToken, AccountID: acct}, Store: st})
	env := &d1Env{t: t, account: acct, e: echo.New()}
	env.e.HTTPErrorHandler = ErrorHandler
	s.Register(env.e)
	return env
}

// call sends a JSON body to the account's path and decodes the envelope.
func (env *d1Env) call(method, path string, body any) kvReply {
	env.t.Helper()
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	req := httptest.NewRequest(method, BasePath+"/accounts/"+env.account+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+kvTestToken)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	env.e.ServeHTTP(rec, req)
	return decodeReply(env.t, rec)
}

func (env *d1Env) must(method, path string, body any, out any) {
	env.t.Helper()
	r := env.call(method, path, body)
	if !r.Success {
		env.t.Fatalf("%s %s: %d %v", method, path, r.Status, r.Errors)
	}
	if out != nil {
		if err := json.Unmarshal(r.Result, out); err != nil {
			env.t.Fatalf("%s %s: %v: %s", method, path, err, r.Result)
		}
	}
}

func TestD1API(t *testing.T) {
	env := newD1Env(t)
	var db map[string]any
	env.must(http.MethodPost, "/d1/database", map[string]any{"name": "db1", "primary_location_hint": "weur"}, &db)
	id, _ := db["uuid"].(string)
	if !store.IsD1UUID(id) || db["name"] != "db1" || db["version"] != "production" {
		t.Fatalf("created %v", db)
	}
	if r := env.call(http.MethodPost, "/d1/database", map[string]any{"name": "db1"}); r.Success || r.code() != 7502 {
		t.Fatalf("duplicate: %d %v", r.Status, r.Errors)
	}
	env.must(http.MethodPost, "/d1/database", map[string]any{"name": "db2"}, nil)
	r := env.call(http.MethodGet, "/d1/database?per_page=1&page=2", nil)
	var list []map[string]any
	_ = json.Unmarshal(r.Result, &list)
	if len(list) != 1 || list[0]["name"] != "db2" || r.ResultInfo["total_count"] != 2.0 {
		t.Fatalf("page 2: %s %v", r.Result, r.ResultInfo)
	}
	env.must(http.MethodGet, "/d1/database?name=db1", nil, &list)
	if len(list) != 1 || list[0]["uuid"] != id {
		t.Fatalf("by name: %v", list)
	}

	var res []struct {
		Results json.RawMessage `json:"results"`
		Success bool            `json:"success"`
		Meta    map[string]any  `json:"meta"`
	}
	env.must(http.MethodPost, "/d1/database/"+id+"/query", map[string]any{"sql": "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a'), ('b'); SELECT * FROM t ORDER BY id"}, &res)
	if len(res) != 3 || string(res[2].Results) != `[{"id":1,"v":"a"},{"id":2,"v":"b"}]` || res[1].Meta["changes"] != 2.0 {
		t.Fatalf("query: %+v", res)
	}
	env.must(http.MethodPost, "/d1/database/"+id+"/raw", map[string]any{"sql": "SELECT v FROM t WHERE id = ?", "params": []any{2}}, &res)
	if string(res[0].Results) != `{"columns":["v"],"rows":[["b"]]}` {
		t.Fatalf("raw: %s", res[0].Results)
	}
	if r := env.call(http.MethodPost, "/d1/database/"+id+"/query", map[string]any{"sql": "SELECT * FROM nope"}); r.Status != 400 || r.code() != 7500 || r.Errors[0].Message != "no such table: nope: SQLITE_ERROR" {
		t.Fatalf("bad SQL: %d %v", r.Status, r.Errors)
	}

	var info map[string]any
	env.must(http.MethodGet, "/d1/database/db1", nil, &info)
	if info["uuid"] != id || info["num_tables"] != 1.0 || info["file_size"].(float64) <= 0 {
		t.Fatalf("info %v", info)
	}
	env.must(http.MethodDelete, "/d1/database/"+id, nil, nil)
	if r := env.call(http.MethodGet, "/d1/database/"+id, nil); r.Status != 404 || r.code() != 7404 {
		t.Fatalf("after delete: %d %v", r.Status, r.Errors)
	}
}

func TestD1ImportExport(t *testing.T) {
	env := newD1Env(t)
	var db map[string]any
	env.must(http.MethodPost, "/d1/database", map[string]any{"name": "imp"}, &db)
	id := db["uuid"].(string)
	file := []byte("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE p (id INTEGER PRIMARY KEY, v TEXT);\nINSERT INTO p VALUES(1,'x;y');\nCOMMIT;\n")
	sum := md5.Sum(file)
	etag := hex.EncodeToString(sum[:])
	var init d1ImportStatus
	env.must(http.MethodPost, "/d1/database/"+id+"/import", map[string]any{"action": "init", "etag": etag}, &init)
	if init.UploadURL == "" || init.Filename == "" {
		t.Fatalf("init %+v", init)
	}
	// The upload URL needs no token.
	req := httptest.NewRequest(http.MethodPut, init.UploadURL, bytes.NewReader(file))
	rec := httptest.NewRecorder()
	env.e.ServeHTTP(rec, req)
	if rec.Code != 200 || strings.Trim(rec.Header().Get("ETag"), `"`) != etag {
		t.Fatalf("upload: %d %s %q", rec.Code, rec.Body, rec.Header().Get("ETag"))
	}
	var done struct {
		Success  bool     `json:"success"`
		Status   string   `json:"status"`
		Messages []string `json:"messages"`
		Result   struct {
			NumQueries    int            `json:"num_queries"`
			FinalBookmark string         `json:"final_bookmark"`
			Meta          map[string]any `json:"meta"`
		} `json:"result"`
	}
	env.must(http.MethodPost, "/d1/database/"+id+"/import", map[string]any{"action": "ingest", "filename": init.Filename, "etag": etag}, &done)
	if !done.Success || done.Status != "complete" || done.Result.NumQueries != 3 || done.Result.FinalBookmark == "" || done.Result.Meta["rows_written"] != 1.0 {
		t.Fatalf("ingest %+v", done)
	}
	var exp struct {
		Status string `json:"status"`
		Result struct {
			SignedURL string `json:"signed_url"`
		} `json:"result"`
	}
	env.must(http.MethodPost, "/d1/database/"+id+"/export", map[string]any{"output_format": "polling", "dump_options": map[string]any{}}, &exp)
	if exp.Status != "complete" || exp.Result.SignedURL == "" {
		t.Fatalf("export %+v", exp)
	}
	rec = httptest.NewRecorder()
	env.e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, exp.Result.SignedURL, nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `INSERT INTO "p" ("id","v") VALUES(1,'x;y');`) {
		t.Fatalf("download: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	env.e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, BasePath+D1TransferPath+"nope", nil))
	if rec.Code != http.StatusForbidden {
		t.Fatalf("unknown transfer: %d", rec.Code)
	}
}

// TestD1Wrangler runs the real wrangler's D1 commands against the API when
// OCTO_TEST_WRANGLER names its bin/wrangler.js (e.g.
// e2e/node_modules/wrangler/bin/wrangler.js; about a minute).
func TestD1Wrangler(t *testing.T) {
	wrangler := os.Getenv("OCTO_TEST_WRANGLER")
	if _, err := os.Stat(wrangler); wrangler == "" || err != nil {
		t.Skip("no wrangler: set OCTO_TEST_WRANGLER to a wrangler/bin/wrangler.js")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("no node")
	}
	env := newD1Env(t)
	srv := httptest.NewServer(env.e)
	defer srv.Close()
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("node", append([]string{wrangler}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CLOUDFLARE_API_BASE_URL="+srv.URL+BasePath, "CLOUDFLARE_API_TOKEN="+kvTestToken,
			"CLOUDFLARE_ACCOUNT_ID="+env.account, "WRANGLER_SEND_METRICS=false", "CI=true", "HOME="+dir, "XDG_CONFIG_HOME="+dir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("wrangler %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		t.Logf("wrangler %s:\n%s", strings.Join(args, " "), out.String())
		return out.String()
	}
	write := func(name, content string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := run("d1", "create", "db1")
	if !strings.Contains(out, "Successfully created DB 'db1'") {
		t.Fatalf("create: %s", out)
	}
	var list []map[string]any
	out = run("d1", "list", "--json")
	if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &list); err != nil || len(list) != 1 {
		t.Fatalf("list: %v %s", err, out)
	}
	id := list[0]["uuid"].(string)
	write("wrangler.json", `{"name": "w", "main": "index.js", "compatibility_date": "2025-01-01",
  "d1_databases": [{"binding": "DB", "database_name": "db1", "database_id": "`+id+`"}]}`)
	write("index.js", "export default { fetch() { return new Response('ok') } }")
	if out = run("d1", "info", "db1"); !strings.Contains(out, "num_tables") {
		t.Fatalf("info: %s", out)
	}
	out = run("d1", "execute", "db1", "--remote", "--json", "--command", "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('hello'); SELECT v FROM t")
	if !strings.Contains(out, `"v": "hello"`) {
		t.Fatalf("execute --command: %s", out)
	}
	write("seed.sql", "INSERT INTO t VALUES ('from file');\nINSERT INTO t VALUES ('two');\n")
	if out = run("d1", "execute", "db1", "--remote", "--file", "seed.sql", "--yes"); !strings.Contains(out, "Executed 2 queries") {
		t.Fatalf("execute --file: %s", out)
	}
	run("d1", "migrations", "create", "db1", "add users")
	write("migrations/0001_add_users.sql", "-- Migration number: 0001\nCREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n")
	if out = run("d1", "migrations", "list", "db1", "--remote"); !strings.Contains(out, "0001_add_users.sql") {
		t.Fatalf("migrations list: %s", out)
	}
	if out = run("d1", "migrations", "apply", "db1", "--remote"); !strings.Contains(out, "0001_add_users.sql") || strings.Contains(out, "❌") {
		t.Fatalf("migrations apply: %s", out)
	}
	if out = run("d1", "migrations", "list", "db1", "--remote"); !strings.Contains(out, "No migrations to apply") {
		t.Fatalf("migrations list after apply: %s", out)
	}
	run("d1", "export", "db1", "--remote", "--output", "dump.sql", "-y")
	dump, err := os.ReadFile(filepath.Join(dir, "dump.sql"))
	if err != nil || !bytes.Contains(dump, []byte("'from file'")) || !bytes.Contains(dump, []byte("CREATE TABLE users")) {
		t.Fatalf("export: %v %s", err, dump)
	}
	if out = run("d1", "delete", "db1", "-y"); !strings.Contains(out, "Deleted 'db1' successfully") {
		t.Fatalf("delete: %s", out)
	}
}
