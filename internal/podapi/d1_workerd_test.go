package podapi

// A real workerd runs a Worker with a D1 binding rendered as octo renders
// it (a `wrapped` binding of cloudflare-internal:d1-api whose fetcher is an
// external service with the x-octo-d1 and x-octo-auth headers), against the
// pod API handler. Needs `make workerd`; skipped without it.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/octohq/octo/internal/workerd"
	"github.com/octohq/octo/internal/workerd/workerdtest"
)

const d1Worker = `export default {
  async fetch(req, env) {
    const db = env.DB;
    const out = {};
    await db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, score REAL, avatar BLOB)\nCREATE INDEX users_score ON users(score)");
    const ins = await db.prepare("INSERT INTO users (name, score, avatar) VALUES (?1, ?2, ?3)").bind("ada", 9.5, new Uint8Array([1, 2, 255])).run();
    out.insertMeta = { changes: ins.meta.changes, last_row_id: ins.meta.last_row_id, changed_db: ins.meta.changed_db,
      size_after: ins.meta.size_after > 0, rows_written: ins.meta.rows_written, duration: typeof ins.meta.duration, served_by: ins.meta.served_by };
    out.insertSuccess = ins.success;
    await db.prepare("INSERT INTO users (name, score) VALUES (?, ?)").bind("bob", 7).run();
    out.first = await db.prepare("SELECT id, name, score, avatar FROM users WHERE name = ?").bind("ada").first();
    out.firstCol = await db.prepare("SELECT name FROM users ORDER BY id DESC").first("name");
    out.none = await db.prepare("SELECT * FROM users WHERE id = 99").first();
    const all = await db.prepare("SELECT name, score FROM users ORDER BY id").all();
    out.all = all.results;
    out.allMeta = { rows_read: all.meta.rows_read, changed_db: all.meta.changed_db };
    out.raw = await db.prepare("SELECT id, name FROM users ORDER BY id").raw();
    out.rawCols = await db.prepare("SELECT id, name FROM users ORDER BY id").raw({ columnNames: true });
    const batch = await db.batch([
      db.prepare("INSERT INTO users (name) VALUES (?)").bind("cy"),
      db.prepare("UPDATE users SET score = score + 1 WHERE name = ?").bind("bob"),
      db.prepare("SELECT count(*) AS n FROM users"),
    ]);
    out.batch = batch.map((r) => ({ success: r.success, results: r.results, changes: r.meta.changes }));
    try {
      await db.batch([
        db.prepare("INSERT INTO users (name) VALUES ('dee')"),
        db.prepare("INSERT INTO users (name) VALUES ('ada')"),
      ]);
      out.batchError = "no error";
    } catch (e) {
      out.batchError = e.message;
    }
    out.afterFailedBatch = await db.prepare("SELECT count(*) AS n FROM users WHERE name = 'dee'").first("n");
    try {
      await db.prepare("SELECT * FROM nope").all();
    } catch (e) {
      out.queryError = e.message;
    }
    const ex = await db.exec("INSERT INTO users (name) VALUES ('eve')\nINSERT INTO users (name) VALUES ('fay')");
    out.exec = { count: ex.count, duration: typeof ex.duration };
    try {
      await db.exec("INSERT INTO users (name) VALUES ('gus')\nSELECT * FROM nope");
    } catch (e) {
      out.execError = e.message;
    }
    out.total = await db.prepare("SELECT count(*) AS n FROM users").first("n");
    const s = db.withSession("first-primary");
    await s.prepare("SELECT 1").all();
    out.bookmark = typeof s.getBookmark();
    return Response.json(out);
  },
};`

func TestD1InWorkerd(t *testing.T) {
	bin := workerdBinary(t)
	d1, hdr := newD1(t)
	addr, key := serveLoopback(t, Options{D1: d1})

	dir := t.TempDir()
	config := fmt.Sprintf(`using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = (
      modules = [(name = "index.js", esModule = embed "index.js")],
      compatibilityDate = "2025-01-01",
      bindings = [(name = "DB", wrapped = (moduleName = "cloudflare-internal:d1-api",
        innerBindings = [(name = "fetcher", service = "d1-test")]))],
    )),
    (name = "d1-test", external = (address = %q, http = (injectRequestHeaders = [
      (name = %q, value = %q), (name = %q, value = %q)]))),
  ],
  sockets = [(name = "http", address = "127.0.0.1:0", http = (), service = "main")],
);
`, addr, workerd.D1Header, hdr, workerd.AuthHeader, key.Credential(d1TestAccount))
	if err := os.WriteFile(filepath.Join(dir, "config.capnp"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.js"), []byte(d1Worker), 0o644); err != nil {
		t.Fatal(err)
	}
	port, stderr := workerdtest.Serve(t, bin, filepath.Join(dir, "config.capnp"), "http", nil)
	res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%s: %s\nworkerd: %s", res.Status, body, stderr())
	}
	want := map[string]any{
		"insertMeta": map[string]any{"changes": 1.0, "last_row_id": 1.0, "changed_db": true, "size_after": true,
			"rows_written": 1.0, "duration": "number", "served_by": "octo-d1"},
		"insertSuccess": true,
		"first":         map[string]any{"id": 1.0, "name": "ada", "score": 9.5, "avatar": []any{1.0, 2.0, 255.0}},
		"firstCol":      "bob",
		"none":          nil,
		"all":           []any{map[string]any{"name": "ada", "score": 9.5}, map[string]any{"name": "bob", "score": 7.0}},
		"allMeta":       map[string]any{"rows_read": 2.0, "changed_db": false},
		"raw":           []any{[]any{1.0, "ada"}, []any{2.0, "bob"}},
		"rawCols":       []any{[]any{"id", "name"}, []any{1.0, "ada"}, []any{2.0, "bob"}},
		"batch": []any{
			map[string]any{"success": true, "results": []any{}, "changes": 1.0},
			map[string]any{"success": true, "results": []any{}, "changes": 1.0},
			map[string]any{"success": true, "results": []any{map[string]any{"n": 3.0}}, "changes": 0.0},
		},
		"batchError":       "D1_ERROR: UNIQUE constraint failed: users.name: SQLITE_CONSTRAINT",
		"afterFailedBatch": 0.0,
		"queryError":       "D1_ERROR: no such table: nope: SQLITE_ERROR",
		"exec":             map[string]any{"count": 2.0, "duration": "number"},
		"execError":        "D1_EXEC_ERROR: Error in line 1: INSERT INTO users (name) VALUES ('gus'): no such table: nope: SQLITE_ERROR",
		"total":            5.0,
		"bookmark":         "string",
	}
	for k, w := range want {
		g, _ := json.Marshal(got[k])
		wj, _ := json.Marshal(w)
		if string(g) != string(wj) {
			t.Errorf("%s = %s, want %s", k, g, wj)
		}
	}
	if t.Failed() {
		t.Logf("worker answered %s\nworkerd: %s", body, stderr())
	}
}

// workerdBinary extracts the embedded workerd for a test, or skips it when
// octo was built without workerd.
func workerdBinary(tb testing.TB) string {
	tb.Helper()
	if !workerd.Embedded() {
		tb.Skip("built without workerd: run `make workerd` first")
	}
	bin, err := workerd.Extract(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// serveLoopback serves a pod API with opts and a new key on a test server
// that accepts callers on loopback (workerd in a test calls from
// 127.0.0.1), until the test ends; it returns the server's host:port and
// the key.
func serveLoopback(tb testing.TB, opts Options) (string, *Key) {
	tb.Helper()
	key, err := GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	opts.Key = key
	s := New(opts)
	s.source = func(netip.Addr) bool { return true }
	srv := httptest.NewServer(s.Handler())
	tb.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), key
}
