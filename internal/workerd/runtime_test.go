package workerd

// Tests that run the embedded workerd. They need `make workerd` (run by
// `make test`); without the binary they are skipped. No root needed.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/workerd/workerdtest"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// workerdBin extracts the embedded binary once for the whole test run.
func workerdBin(t *testing.T) string {
	t.Helper()
	if !Embedded() {
		t.Skip("built without workerd: run `make workerd` first")
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "octo-workerd-test-")
		if binErr == nil {
			binPath, binErr = Extract(binDir)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestExtract(t *testing.T) {
	workerdBin(t)
	dir := t.TempDir()
	start := time.Now()
	p, err := Extract(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first extract: %v", time.Since(start))
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o755 || p != filepath.Join(dir, "workerd") {
		t.Fatalf("extracted %s: %v %v", p, st.Mode(), err)
	}
	out, err := exec.Command(p, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != runtimeVersion() {
		t.Fatalf("workerd --version = %q, want %q (Version %s)", got, runtimeVersion(), Version)
	}

	// Up to date: not rewritten (same inode, same mtime). The packed
	// package's tests cover a new process, which hashes the file.
	start = time.Now()
	if _, err := Extract(dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("up-to-date extract (hashing): %v", time.Since(start))
	st2, _ := os.Stat(p)
	if !os.SameFile(st, st2) || !st2.ModTime().Equal(st.ModTime()) {
		t.Fatal("an up-to-date binary was rewritten")
	}

	// A different file is replaced.
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho not workerd\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(dir); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(p, "--version").Output(); err != nil || strings.TrimSpace(string(out)) != runtimeVersion() {
		t.Fatalf("damaged binary not replaced: %q %v", out, err)
	}
}

func TestMaxCompatibilityDate(t *testing.T) {
	bin := workerdBin(t)
	w := esWorker("export default { fetch() { return new Response('x') } }")
	w.CompatibilityDate = "2099-01-01"
	_, err := testValidator(bin).Validate(context.Background(), w, esFiles(w))
	var se *StartupError
	if !errors.As(err, &se) {
		t.Fatalf("Validate with 2099-01-01: %v, want a StartupError", err)
	}
	want := fmt.Sprintf("the newest date supported by this server binary is %q", MaxCompatibilityDate)
	if !strings.Contains(se.Message, want) {
		t.Fatalf("workerd says %q; MaxCompatibilityDate %s is stale", se.Message, MaxCompatibilityDate)
	}
	// The ceiling itself is accepted.
	w.CompatibilityDate = MaxCompatibilityDate
	if _, err := testValidator(bin).Validate(context.Background(), w, esFiles(w)); err != nil {
		t.Fatal(err)
	}
}

// esWorker is a one-module ES Worker whose module is at "index.js"; esFiles
// holds that module's source.
func esWorker(src string) Worker {
	return Worker{
		Name:              "test",
		Modules:           []Module{{Name: "index.js", Type: apiv1.ModuleESModule, Path: "index.js"}},
		CompatibilityDate: "2025-01-01",
		Bindings:          []Binding{{Name: "SRC", Kind: Text, Text: src}},
		Address:           "*:8080",
	}
}

func esFiles(w Worker) map[string][]byte {
	return map[string][]byte{"index.js": []byte(w.Bindings[0].Text)}
}

func TestValidateHello(t *testing.T) {
	bin := workerdBin(t)
	w := esWorker(`export default { fetch() { return new Response("hi"); } };`)
	// A bundle's Worker also names its unix socket in the pod; the
	// directory does not exist where validation runs.
	w.UnixSocket = UnixSocketPath("/run/octo", 8081)
	var times []time.Duration
	for range 3 {
		d, err := testValidator(bin).Validate(context.Background(), w, esFiles(w))
		if err != nil {
			t.Fatal(err)
		}
		if d <= 0 || d > ValidateTimeout {
			t.Fatalf("startup time %v", d)
		}
		times = append(times, d)
	}
	t.Logf("hello world startup times: %v", times)
}

func TestValidateStartupErrors(t *testing.T) {
	bin := workerdBin(t)
	for name, tc := range map[string]struct {
		src   string
		flags []string
		want  []string
	}{
		"syntax error": {src: "export default {\n  fetch() {\n    return new Response(\"hi\"\n  }\n};\n",
			want: []string{"Uncaught SyntaxError", "at index.js:3:"}},
		"top-level throw":   {src: "throw new Error('boom');\nexport default {};", want: []string{"Uncaught Error: boom", "index.js:1"}},
		"missing import":    {src: "import x from './missing.js';\nexport default {};", want: []string{`No such module "missing.js"`}},
		"unknown flag":      {src: "export default {};", flags: []string{"no_such_flag"}, want: []string{"No such compatibility flag: no_such_flag"}},
		"experimental flag": {src: "export default {};", flags: []string{"experimental"}, want: []string{"--experimental"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := esWorker(tc.src)
			w.CompatibilityFlags = tc.flags
			_, err := testValidator(bin).Validate(context.Background(), w, esFiles(w))
			var se *StartupError
			if !errors.As(err, &se) {
				t.Fatalf("Validate: %v, want a StartupError", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(se.Message, want) {
					t.Errorf("message %q lacks %q", se.Message, want)
				}
			}
			if strings.Contains(se.Message, "service test:") {
				t.Errorf("message not cleaned: %q", se.Message)
			}
			t.Logf("%s", se.Message)
		})
	}
}

func TestValidateServiceWorker(t *testing.T) {
	bin := workerdBin(t)
	w := Worker{
		Name: "sw",
		Modules: []Module{
			{Name: "worker.js", Type: apiv1.ModuleServiceWorker, Path: "worker.js"},
			{Name: "t.txt", Type: apiv1.ModuleText, Path: "blobs/t.txt"},
			{Name: "d.bin", Type: apiv1.ModuleData, Path: "blobs/d.bin"},
			{Name: "m.wasm", Type: apiv1.ModuleWasm, Path: "blobs/m.wasm"},
		},
		ServiceWorker:     true,
		CompatibilityDate: "2025-01-01",
		Bindings: []Binding{
			{Name: "GREETING", Kind: Text, Text: "hello"},
			{Name: "CONF", Kind: JSON, JSON: `{"a":1}`},
			{Name: "BANNER", Kind: Text, Module: "t.txt"},
			{Name: "TOKEN", Kind: FromEnv, Env: "OCTO_SECRET_TOKEN"},
			{Name: "MYKV", Kind: KV, Service: "kv-1"},
			{Name: "DAT", Kind: Data, Module: "d.bin"},
			{Name: "WASM", Kind: Wasm, Module: "m.wasm"},
		},
	}
	files := map[string][]byte{
		// Bindings are globals; checking them at the top level proves they are set at startup.
		"worker.js": []byte(`if (GREETING !== "hello" || CONF.a !== 1 || BANNER !== "banner" || TOKEN !== null ||
    typeof MYKV.get !== "function" || new Uint8Array(DAT)[1] !== 255 || !(WASM instanceof WebAssembly.Module)) {
  throw new Error("bad globals");
}
addEventListener("fetch", (e) => e.respondWith(new Response(GREETING)));`),
		"blobs/t.txt":  []byte("banner"),
		"blobs/d.bin":  []byte{0, 255},
		"blobs/m.wasm": []byte("\x00asm\x01\x00\x00\x00"),
	}
	d, err := testValidator(bin).Validate(context.Background(), w, files)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("service worker startup: %v", d)
}

func TestValidateClampedDate(t *testing.T) {
	bin := workerdBin(t)
	v := &apiv1.WorkerVersion{Spec: apiv1.WorkerVersionSpec{
		ScriptName: "future", VersionID: testVersionID, MainModule: "index.js",
		Modules:           []apiv1.WorkerModule{{Name: "index.js", Type: apiv1.ModuleESModule}},
		CompatibilityDate: "2099-01-01",
	}}
	w, err := FromVersion(v, map[string]string{"index.js": "index.js"}, Targets{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testValidator(bin).Validate(context.Background(), w, map[string][]byte{
		"index.js": []byte(`export default { fetch() { return new Response("future") } }`),
	}); err != nil {
		t.Fatal(err)
	}
}

func TestValidateDraftWorker(t *testing.T) {
	bin := workerdBin(t)
	// What `wrangler secret put` uploads for a missing script: no date, module named like the script.
	v := &apiv1.WorkerVersion{Spec: apiv1.WorkerVersionSpec{
		ScriptName: "fresh-worker", VersionID: testVersionID, MainModule: "fresh-worker",
		Modules:  []apiv1.WorkerModule{{Name: "fresh-worker", Type: apiv1.ModuleESModule}},
		Bindings: []apiv1.WorkerBinding{{Name: "S", Type: apiv1.BindingSecretText}},
	}}
	w, err := FromVersion(v, map[string]string{"fresh-worker": "m/0"}, Targets{SecretEnv: func(b string) string { return "OCTO_SECRET_" + b }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testValidator(bin).Validate(context.Background(), w, map[string][]byte{"m/0": []byte("export default { fetch() {} }")}); err != nil {
		t.Fatal(err)
	}
}

func TestValidateConcurrent(t *testing.T) {
	bin := workerdBin(t)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := fmt.Sprintf(`export default { fetch() { return new Response("%d") } }`, i)
			if i%2 == 1 {
				src = "export default {" // a syntax error
			}
			w := esWorker(src)
			_, err := testValidator(bin).Validate(context.Background(), w, esFiles(w))
			var se *StartupError
			switch {
			case i%2 == 0 && err != nil:
				errs[i] = err
			case i%2 == 1 && !errors.As(err, &se):
				errs[i] = fmt.Errorf("want a StartupError, got %v", err)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("validation %d: %v", i, err)
		}
	}
}

func TestValidateCanceled(t *testing.T) {
	bin := workerdBin(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w := esWorker(`export default {}`)
	if _, err := testValidator(bin).Validate(ctx, w, esFiles(w)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Validate with a canceled context: %v", err)
	}
	if _, err := testValidator(bin).Validate(context.Background(), w, map[string][]byte{}); err == nil || !strings.Contains(err.Error(), "no content") {
		t.Fatalf("Validate without files: %v", err)
	}
}

// TestServe runs a rendered config for real: an ES module Worker reading
// text, JSON, data and JSON-module values, a KV namespace served by a Go
// server over workerd's KV protocol, a secret from the environment, and a
// tail collector receiving the trace events.
func TestServe(t *testing.T) {
	bin := workerdBin(t)

	kvHeaders := make(chan http.Header, 1)
	kv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case kvHeaders <- r.Header.Clone():
		default:
		}
		if r.Method == http.MethodGet && r.URL.Path == "/k" {
			io.WriteString(w, "value-from-kv")
			return
		}
		http.NotFound(w, r)
	}))
	defer kv.Close()
	type tailPost struct {
		path, script string
		events       []map[string]any
	}
	tails := make(chan tailPost, 4)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var evs []map[string]any
		_ = json.NewDecoder(r.Body).Decode(&evs)
		tails <- tailPost{r.URL.Path, r.Header.Get(TailHeader), evs}
	}))
	defer collector.Close()

	v := &apiv1.WorkerVersion{Spec: apiv1.WorkerVersionSpec{
		ScriptName: "serve", VersionID: testVersionID, MainModule: "index.js",
		Modules: []apiv1.WorkerModule{
			{Name: "index.js", Type: apiv1.ModuleESModule},
			{Name: "./banner.txt", Type: apiv1.ModuleText},
			{Name: "data.bin", Type: apiv1.ModuleData},
			{Name: "conf.json", Type: apiv1.ModuleJSON},
		},
		CompatibilityDate: "2025-01-01",
		Bindings: []apiv1.WorkerBinding{
			{Name: "GREETING", Type: apiv1.BindingPlainText, Text: "héllo \"wörld\"\n\\ 😀"},
			{Name: "CONF", Type: apiv1.BindingJSON, JSON: &apiextensionsv1.JSON{Raw: []byte(`{"a":1,"b":[true,null],"s":"é\"\\"}`)}},
			{Name: "TOKEN", Type: apiv1.BindingSecretText},
			{Name: "UNSET", Type: apiv1.BindingSecretText},
			{Name: "MYKV", Type: apiv1.BindingKV, NamespaceID: "d5d2b0405f5ff994b5805e2a7e9068ca"},
		},
	}}
	files := map[string]string{"index.js": "w/index.js", "./banner.txt": "w/banner.txt", "data.bin": "w/data.bin", "conf.json": "w/conf.json"}
	w, err := FromVersion(v, files, Targets{KV: func(id string) string { return "kv-" + id[:8] }, SecretEnv: func(b string) string { return "OCTO_SECRET_" + b }})
	if err != nil {
		t.Fatal(err)
	}
	w.Address = "127.0.0.1:0"
	w.Tail = true
	cfg := Config{
		Workers:       []Worker{w},
		External:      []ExternalService{{Name: "kv-d5d2b040", Address: strings.TrimPrefix(kv.URL, "http://"), Headers: map[string]string{"x-octo-namespace": "d5d2b0405f5ff994b5805e2a7e9068ca"}}},
		TailCollector: strings.TrimPrefix(collector.URL, "http://"),
		V8Flags:       DefaultV8Flags,
	}
	text, err := cfg.Render()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("config.capnp", text)
	write("w/index.js", `import banner from "./banner.txt";
import data from "data.bin";
import conf from "conf.json";
export default {
  async fetch(req, env) {
    console.log("hello from tail");
    return Response.json({
      greeting: env.GREETING, conf: env.CONF, banner, data: [...new Uint8Array(data)], confModule: conf,
      token: env.TOKEN, unset: env.UNSET, kv: await env.MYKV.get("k"), missing: await env.MYKV.get("nope"),
    });
  },
};`)
	write("w/banner.txt", "BANNER ✓")
	write("w/data.bin", "\x00\x01\xff")
	write("w/conf.json", `{"fromModule": true}`)

	p, stderr := workerdtest.Serve(t, bin, filepath.Join(dir, "config.capnp"), w.Name, []string{"OCTO_SECRET_TOKEN=s3cr3t"})
	res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/path?q=1", p))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%s: %s (stderr %s)", res.Status, body, stderr())
	}
	want := map[string]any{
		"greeting":   "héllo \"wörld\"\n\\ 😀",
		"conf":       map[string]any{"a": 1.0, "b": []any{true, nil}, "s": "é\"\\"},
		"banner":     "BANNER ✓",
		"data":       []any{0.0, 1.0, 255.0},
		"confModule": map[string]any{"fromModule": true},
		"token":      "s3cr3t",
		"unset":      nil,
		"kv":         "value-from-kv",
		"missing":    nil,
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Fatalf("response\n got %s\nwant %s", gotJSON, wantJSON)
	}
	select {
	case h := <-kvHeaders:
		if h.Get("x-octo-namespace") != "d5d2b0405f5ff994b5805e2a7e9068ca" {
			t.Errorf("KV request headers lack the injected namespace: %v", h)
		}
	default:
		t.Error("the KV service saw no request")
	}
	select {
	case tp := <-tails:
		if tp.path != "/tail/"+w.Name || tp.script != w.Name || len(tp.events) != 1 {
			t.Fatalf("tail post %s script %q with %d events", tp.path, tp.script, len(tp.events))
		}
		ev := tp.events[0]
		logs, _ := json.Marshal(ev["logs"])
		if ev["scriptName"] != w.Name || ev["outcome"] != "ok" || !strings.Contains(string(logs), "hello from tail") {
			t.Fatalf("tail event %v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no tail events; stderr:\n%s", stderr())
	}
}
