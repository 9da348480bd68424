//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// storageBindings is TestWrangler's storage-bindings step (every client):
// an R2 bucket and a D1 database made with wrangler's own commands, seeded
// with `r2 object put` and `d1 execute`, and a Worker that uses R2, D1, KV
// and service bindings (fetch and RPC) together; then wrangler reads back
// what the Worker wrote; uploads naming a database or script the account
// lacks are refused (a missing bucket wrangler provisions itself).
func storageBindings(t *testing.T, w *wranglerCLI, g *gatewayClient, work string) {
	dir := copyProject(t, "bindings", filepath.Join(work, "bindings"))
	callee := copyProject(t, "bindings-callee", filepath.Join(work, "bindings-callee"))

	w.must(t, dir, "", "r2", "bucket", "create", "e2e-bucket")
	if out := w.must(t, dir, "", "r2", "bucket", "list"); !strings.Contains(out, "e2e-bucket") {
		t.Fatalf("r2 bucket list does not show e2e-bucket:\n%s", out)
	}
	seed := filepath.Join(t.TempDir(), "seed.txt")
	if err := os.WriteFile(seed, []byte("seeded by wrangler"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.must(t, dir, "", w.r2Object("put", "e2e-bucket/seed.txt", "--file", seed)...)

	w.must(t, dir, "", "d1", "create", "e2e-db")
	dbID := d1ID(t, w, dir, "e2e-db")
	kvID := w.createNamespace(t, dir, "e2e-bindings-kv")
	cfg := filepath.Join(dir, "wrangler.toml")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.NewReplacer("__D1_ID__", dbID, "__KV_ID__", kvID).Replace(string(b)))
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// wrangler finds the database by its name in wrangler.toml.
	w.must(t, dir, "", "d1", "execute", "e2e-db", "--remote", "--yes",
		"--command", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (id, v) VALUES (1, 'from-wrangler')")

	// A binding to a script that does not exist yet is refused.
	_, stderr, code := w.run(t, dir, "", nil, "deploy")
	if code == 0 || !strings.Contains(stderr, "e2e-callee") {
		t.Fatalf("deploy before e2e-callee exists: exit %d, want a refusal naming e2e-callee:\n%s", code, stderr)
	}

	w.must(t, callee, "", "deploy")
	w.must(t, dir, "", "deploy")
	took := g.waitBody(t, "e2e-bindings", "/", expected(t, "bindings"))
	t.Logf("e2e-bindings answers after %s", took)

	// What the Worker wrote is there for wrangler too.
	workerWrites(t, w, dir, "after the Worker ran")

	// An upload naming a database the account lacks is refused; a missing
	// bucket is created by wrangler 4's provisioning before the upload, and
	// refused (10006) for wrangler 3, which does not provision.
	for name, repl := range map[string][2]string{
		"missing database": {`database_id = "` + dbID + `"`, `database_id = "00000000-0000-4000-8000-000000000000"`},
		"missing bucket":   {`bucket_name = "e2e-bucket"`, `bucket_name = "e2e-provisioned"`},
	} {
		if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), repl[0], repl[1], 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := w.run(t, dir, "", nil, "deploy")
		switch name {
		case "missing database":
			if code == 0 || !strings.Contains(stderr, "00000000-0000-4000-8000-000000000000") || !strings.Contains(stderr, "7404") {
				t.Errorf("%s: deploy exit %d, want a refusal naming it (7404):\n%s", name, code, stderr)
			}
		case "missing bucket":
			if w.v3() {
				if code == 0 || !strings.Contains(stderr, "e2e-provisioned") || !strings.Contains(stderr, "10006") {
					t.Errorf("%s with wrangler 3: deploy exit %d, want a refusal naming it (10006):\n%s", name, code, stderr)
				}
				continue
			}
			if code != 0 {
				t.Errorf("%s: deploy exit %d, want wrangler to provision the bucket:\n%s", name, code, stderr)
			}
			if out := w.must(t, dir, "", "r2", "bucket", "list"); !strings.Contains(out, "e2e-provisioned") {
				t.Errorf("r2 bucket list after provisioning lacks e2e-provisioned:\n%s", out)
			}
		}
	}
	// Back to the real bucket and database.
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	w.must(t, dir, "", "deploy")
	g.waitBody(t, "e2e-bindings", "/", expected(t, "bindings"))
}

// storageSurvived checks, after `octo down` + `octo up`, that the bindings
// Worker answers as before (which reads the seeded R2 object and D1 row)
// and that wrangler reads back what the Worker wrote.
func storageSurvived(t *testing.T, w *wranglerCLI, g *gatewayClient, work string) {
	dir := filepath.Join(work, "bindings")
	g.waitBody(t, "e2e-bindings", "/", expected(t, "bindings"))
	workerWrites(t, w, dir, "after down/up")
}

// workerWrites checks, with wrangler, the R2 object and the D1 row the
// bindings Worker wrote next to what wrangler seeded.
func workerWrites(t *testing.T, w *wranglerCLI, dir, when string) {
	t.Helper()
	if out := w.r2Get(t, dir, "e2e-bucket/from-worker.txt"); out != "written by the worker" {
		t.Errorf("%s: r2 object get from-worker.txt = %q", when, out)
	}
	if rows := w.d1Rows(t, dir, "e2e-db", "SELECT v FROM t ORDER BY id"); len(rows) != 2 || rows[0]["v"] != "from-wrangler" || rows[1]["v"] != "from-worker" {
		t.Errorf("%s: d1 rows = %+v, want from-wrangler, from-worker", when, rows)
	}
}

// r2Get is an object's content, by `wrangler r2 object get <bucket>/<key> --remote --pipe`.
func (w *wranglerCLI) r2Get(t *testing.T, dir, path string) string {
	t.Helper()
	return w.must(t, dir, "", w.r2Object("get", path, "--pipe")...)
}

// r2Object is the arguments of `wrangler r2 object <verb> <path> args…`
// on octo: wrangler 4 needs --remote, wrangler 3 has no such flag (it
// always talks to the API).
func (w *wranglerCLI) r2Object(verb, path string, args ...string) []string {
	out := append([]string{"r2", "object", verb, path}, args...)
	if !w.v3() {
		out = append(out, "--remote")
	}
	return out
}

// d1Rows runs one statement with `wrangler d1 execute --remote --json` and
// returns its rows.
func (w *wranglerCLI) d1Rows(t *testing.T, dir, db, sql string) []map[string]any {
	t.Helper()
	var out []struct {
		Results []map[string]any `json:"results"`
	}
	w.mustJSON(t, dir, &out, "d1", "execute", db, "--remote", "--yes", "--json", "--command", sql)
	if len(out) != 1 {
		t.Fatalf("d1 execute %q: %d results, want 1: %+v", sql, len(out), out)
	}
	return out[0].Results
}

// d1ID is the UUID of the account's database name, from `d1 list --json`.
func d1ID(t *testing.T, w *wranglerCLI, dir, name string) string {
	t.Helper()
	var dbs []struct {
		UUID string `json:"uuid"`
		Name string `json:"name"`
	}
	w.mustJSON(t, dir, &dbs, "d1", "list", "--json")
	for _, db := range dbs {
		if db.Name == name {
			return db.UUID
		}
	}
	t.Fatalf("d1 list --json lacks %s: %+v", name, dbs)
	return ""
}

// deletedTarget is TestWrangler's step after storageBindings (every
// client): `wrangler delete` of a Worker that others bind names them (it asks
// …/references), and the Worker bound to it keeps serving: the binding's
// fetch answers 503 and its RPC calls throw.
func deletedTarget(t *testing.T, w *wranglerCLI, g *gatewayClient, work string) {
	orphan := copyProject(t, "bindings-orphan", filepath.Join(work, "bindings-orphan"))
	w.must(t, orphan, "", "deploy")
	g.waitBody(t, "e2e-orphan", "/", "fetch: 200 callee saw /ping\nrpc: hello caller from the callee\n")
	out, errOut, code := w.run(t, filepath.Join(work, "bindings-callee"), "", nil, "delete")
	if code != 0 || !strings.Contains(out+errOut, "e2e-callee is currently in use by other Workers") ||
		!strings.Contains(out+errOut, "Worker e2e-orphan uses this Worker as a Service Binding") {
		t.Errorf("wrangler delete e2e-callee: exit %d, want it to name e2e-orphan and delete:\n%s%s", code, out, errOut)
	}
	g.waitBody(t, "e2e-orphan", "/", expected(t, "bindings-orphan"))
}
