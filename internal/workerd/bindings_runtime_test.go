package workerd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/workerd/workerdtest"
)

// TestValidateBindingsToOthers: a version bound to another script, an R2
// bucket and a D1 database starts in validation, where none of them runs.
func TestValidateBindingsToOthers(t *testing.T) {
	bin := workerdBin(t)
	v := &apiv1.WorkerVersion{Spec: apiv1.WorkerVersionSpec{
		ScriptName: "caller", VersionID: testVersionID, MainModule: "index.js",
		Modules:           []apiv1.WorkerModule{{Name: "index.js", Type: apiv1.ModuleESModule}},
		CompatibilityDate: "2025-01-01",
		Bindings: []apiv1.WorkerBinding{
			{Name: "OTHER", Type: apiv1.BindingService, Service: "other"},
			{Name: "GREETER", Type: apiv1.BindingService, Service: "other", Entrypoint: "Greeter"},
			{Name: "SELF", Type: apiv1.BindingService, Service: "caller"},
			{Name: "BUCKET", Type: apiv1.BindingR2, BucketName: "photos"},
			{Name: "DB", Type: apiv1.BindingD1, DatabaseID: "c9d4c5a2-1111-4222-8333-444455556666"},
		},
	}}
	name := ServiceName("caller", testVersionID)
	w, err := FromVersion(v, map[string]string{"index.js": "index.js"}, Targets{
		R2: func(b string) string { return "r2-" + b },
		D1: func(id string) string { return "d1-" + id[:8] },
		Script: func(s string) string {
			return map[string]string{"caller": name}[s] + map[string]string{"other": "other-1"}[s]
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = testValidator(bin).Validate(context.Background(), w, map[string][]byte{
		"index.js": []byte(`export default { async fetch(req, env) { return env.OTHER.fetch(req); } };`),
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestServeServiceBindings: a Worker reaches another Worker of the config
// through a service binding, by fetch and by RPC on a named entrypoint, and
// a D1 binding gets the JavaScript API of workerd's d1-api module.
func TestServeServiceBindings(t *testing.T) {
	bin := workerdBin(t)
	callee := Worker{
		Name:              "callee-1",
		Modules:           []Module{{Name: "callee.js", Type: apiv1.ModuleESModule, Path: "callee/callee.js"}},
		CompatibilityDate: "2025-01-01",
		Internal:          true,
	}
	caller := Worker{
		Name:              "caller-1",
		Modules:           []Module{{Name: "caller.js", Type: apiv1.ModuleESModule, Path: "caller/caller.js"}},
		CompatibilityDate: "2025-01-01",
		Bindings: []Binding{
			{Name: "CALLEE", Kind: Service, Service: "callee-1"},
			{Name: "GREETER", Kind: Service, Service: "callee-1", Entrypoint: "Greeter"},
			{Name: "DB", Kind: D1, Service: "d1-x"},
			{Name: "BUCKET", Kind: R2, Service: "r2-x"},
		},
		Address: "127.0.0.1:0",
	}
	cfg := Config{Workers: []Worker{callee, caller},
		External: []ExternalService{{Name: "d1-x", Address: "127.0.0.1:9"}, {Name: "r2-x", Address: "127.0.0.1:9"}}}
	text, err := cfg.Render()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, `(name = "callee-1", http`) {
		t.Errorf("an internal Worker got a socket:\n%s", text)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"config.capnp": text,
		"callee/callee.js": `import { WorkerEntrypoint } from "cloudflare:workers";
export class Greeter extends WorkerEntrypoint {
  async hello(name) { return "hello " + name; }
}
export default { fetch(req) { return new Response("callee saw " + new URL(req.url).pathname); } };`,
		"caller/caller.js": `export default {
  async fetch(req, env) {
    const viaFetch = await (await env.CALLEE.fetch("http://callee/x/y")).text();
    const viaRPC = await env.GREETER.hello("octo");
    return Response.json({ viaFetch, viaRPC, d1: typeof env.DB.prepare, r2: typeof env.BUCKET.get });
  },
};`,
	})
	port, stderr := workerdtest.Serve(t, bin, filepath.Join(dir, "config.capnp"), caller.Name, nil)
	res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	want := `{"viaFetch":"callee saw /x/y","viaRPC":"hello octo","d1":"function","r2":"function"}`
	if res.StatusCode != 200 || string(body) != want {
		t.Fatalf("%s %s, want %s (stderr %s)", res.Status, body, want, stderr())
	}
}

// TestStubWorkerStandsInForAMissingTarget: a Worker bound to a script that
// does not run gets the stub's 503 and message by fetch, and an error (not a
// crash) by RPC.
func TestStubWorkerStandsInForAMissingTarget(t *testing.T) {
	bin := workerdBin(t)
	stub, stubSrc := StubWorker("missing-x", []string{"Greeter", ""}, `Worker "x" is not deployed`)
	caller := Worker{
		Name:              "caller-1",
		Modules:           []Module{{Name: "caller.js", Type: apiv1.ModuleESModule, Path: "caller/caller.js"}},
		CompatibilityDate: "2025-01-01",
		Bindings: []Binding{
			{Name: "X", Kind: Service, Service: stub.Name},
			{Name: "GREETER", Kind: Service, Service: stub.Name, Entrypoint: "Greeter"},
		},
		Address: "127.0.0.1:0",
	}
	text, err := (&Config{Workers: []Worker{stub, caller}}).Render()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"config.capnp":       text,
		stub.Modules[0].Path: stubSrc,
		"caller/caller.js": `export default {
  async fetch(req, env) {
    const r = await env.X.fetch("http://x/");
    let rpc;
    try { rpc = await env.GREETER.hello("octo"); } catch (e) { rpc = "error: " + e.message; }
    return Response.json({ status: r.status, body: await r.text(), rpc });
  },
};`,
	})
	port, stderr := workerdtest.Serve(t, bin, filepath.Join(dir, "config.capnp"), caller.Name, nil)
	res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var got struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
		RPC    string `json:"rpc"`
	}
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil || res.StatusCode != 200 {
		t.Fatalf("%s, %v (stderr %s)", res.Status, err, stderr())
	}
	if got.Status != 503 || got.Body != `Worker "x" is not deployed` || !strings.HasPrefix(got.RPC, "error: ") {
		t.Errorf("through the stub: %+v, want 503 with the message and an RPC error", got)
	}
}

// writeFiles writes files (path relative to dir → content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
