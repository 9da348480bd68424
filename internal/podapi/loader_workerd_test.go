package podapi

// A real workerd, started with --experimental as bundle pods are, runs the
// loader host exactly as the builder renders it, against the pod API
// handler's /code route: a version is fetched once and run with its vars,
// JSON, secrets and modules; a version the pod API cannot give answers the
// loader's own 503, and a later request loads it again. Needs `make
// workerd`; skipped without it.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
	"github.com/octohq/octo/internal/workerd/workerdtest"
)

const loaderTestAccount = "0123456789abcdef0123456789abcdef"

// loaderVersion is a version the loader can run: ES module, a text module,
// a data module, a JSON module, a var, a JSON binding and a secret.
func loaderVersion(id, greeting string) (*apiv1.WorkerVersion, map[string][]byte) {
	v := &apiv1.WorkerVersion{Spec: apiv1.WorkerVersionSpec{
		AccountID: loaderTestAccount, ScriptName: "hello", VersionID: id, Number: 1,
		MainModule: "index.js", CompatibilityDate: "2026-01-01",
		Modules: []apiv1.WorkerModule{
			{Name: "index.js", Type: apiv1.ModuleESModule},
			{Name: "words.txt", Type: apiv1.ModuleText},
			{Name: "bytes.bin", Type: apiv1.ModuleData},
			{Name: "conf.json", Type: apiv1.ModuleJSON},
			{Name: "index.js.map", Type: apiv1.ModuleSourceMap},
		},
		Bindings: []apiv1.WorkerBinding{
			{Name: "GREETING", Type: apiv1.BindingPlainText, Text: greeting},
			{Name: "LIMITS", Type: apiv1.BindingJSON, JSON: &apiextensionsv1.JSON{Raw: []byte(`{"max":3}`)}},
			{Name: "TOKEN", Type: apiv1.BindingSecretText},
			{Name: "UNSET", Type: apiv1.BindingSecretText},
		},
	}}
	files := map[string][]byte{
		"index.js": []byte(`import words from "./words.txt";
import bytes from "./bytes.bin";
import conf from "./conf.json";
export default {
  async fetch(req, env) {
    console.log("served " + env.GREETING);
    return Response.json({ greeting: env.GREETING, limits: env.LIMITS, token: env.TOKEN, unset: env.UNSET,
      words, bytes: [...new Uint8Array(bytes)], conf, url: req.url,
      leaked: req.headers.get("` + workerd.LoaderVersionHeader + `"), custom: req.headers.get("x-custom") },
      { headers: { "` + workerd.LoaderFailedHeader + `": "forged by the Worker" } });
  },
  async scheduled(c, env) {
    console.log("scheduled " + c.cron + " at " + c.scheduledTime + " says " + env.GREETING);
    if (c.cron === "boom") throw new Error("boom");
  },
};`),
		"words.txt": []byte("some words"),
		"bytes.bin": {0, 1, 255},
		"conf.json": []byte(`{"on":true}`),
	}
	return v, files
}

func TestLoaderInWorkerd(t *testing.T) {
	bin := workerdBinary(t)
	const v1, v2 = "11111111-0000-4000-8000-000000000001", "22222222-0000-4000-8000-000000000002"
	var mu sync.Mutex
	fetches := map[string]int{}
	failNext := map[string]bool{v2: true}
	code := func(ctx context.Context, account, script, id string) (workerd.LoaderCode, error) {
		mu.Lock()
		defer mu.Unlock()
		fetches[script+"/"+id]++
		if account != loaderTestAccount || script != "hello" {
			return workerd.LoaderCode{}, store.Errorf(store.NotFound, 0, "no script %s in account %s", script, account)
		}
		if failNext[id] {
			failNext[id] = false
			return workerd.LoaderCode{}, fmt.Errorf("S3 is down")
		}
		greeting := map[string]string{v1: "hello", v2: "bonjour"}[id]
		if greeting == "" {
			return workerd.LoaderCode{}, store.Errorf(store.NotFound, 0, "version %s not found", id)
		}
		v, files := loaderVersion(id, greeting)
		return workerd.NewLoaderCode(v, files, map[string]string{"TOKEN": "s3cr3t"})
	}
	addr, key := serveLoopback(t, Options{Code: code})

	// The trace collector: what the traced loads' tails post.
	var traces sync.Map // Worker name → body
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get(workerd.AccountHeader) == loaderTestAccount {
			traces.Store(strings.TrimPrefix(r.URL.Path, workerd.TailPath), string(b))
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(collector.Close)

	lw, src := workerd.LoaderWorker("127.0.0.1:0", "", key.Credential(loaderTestAccount))
	cfg := workerd.Config{
		TailCollector: strings.TrimPrefix(collector.URL, "http://"), TailHeaders: map[string]string{workerd.AccountHeader: loaderTestAccount},
		Workers: []workerd.Worker{lw}, External: []workerd.ExternalService{{
			Name: workerd.LoaderCodeService, Address: addr,
			Headers: map[string]string{workerd.AccountHeader: loaderTestAccount, workerd.AuthHeader: key.Credential(loaderTestAccount)},
		}}}
	text, err := cfg.Render()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, workerd.LoaderWorkerName), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.capnp"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, lw.Modules[0].Path), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	port, stderr := workerdtest.ServeFlags(t, bin, filepath.Join(dir, "config.capnp"), workerd.LoaderWorkerName, nil, "--experimental")

	traced := ""
	get := func(version, script string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/path?q=1", port), nil)
		req.Host = "hello.example.workers.localhost"
		if version != "" {
			req.Header.Set(workerd.LoaderVersionHeader, version)
			req.Header.Set(workerd.LoaderScriptHeader, script)
		}
		if traced != "" {
			req.Header.Set(workerd.LoaderTraceHeader, traced)
		}
		req.Header.Set("x-custom", "kept")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res, string(b)
	}

	// v1 runs with everything it binds and imports; the loader's headers
	// do not reach it.
	for range 3 {
		res, body := get(v1, "hello")
		var got map[string]any
		if res.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
			t.Fatalf("v1: %s %s\nworkerd: %s", res.Status, body, stderr())
		}
		if res.Header.Get(workerd.LoaderFailedHeader) != "" {
			t.Fatalf("the Worker's own %s reached the gateway: only the host's 503 may carry it", workerd.LoaderFailedHeader)
		}
		want := `{"bytes":[0,1,255],"conf":{"on":true},"custom":"kept","greeting":"hello","leaked":null,"limits":{"max":3},` +
			`"token":"s3cr3t","unset":null,"url":"http://hello.example.workers.localhost/path?q=1","words":"some words"}`
		if g, _ := json.Marshal(got); string(g) != want {
			t.Fatalf("v1 answered\n%s\nwant\n%s", g, want)
		}
	}
	// Nobody asked for a trace: none was posted. A traced request runs the
	// version's traced twin, whose events (the console.log) reach the
	// collector under the Worker name asked for.
	if _, ok := traces.Load("hello-11111111"); ok {
		t.Fatal("an untraced load posted trace events")
	}
	traced = "hello-11111111"
	if res, body := get(v1, "hello"); res.StatusCode != http.StatusOK || !strings.Contains(body, `"leaked":null`) {
		t.Fatalf("traced v1: %s %s\nworkerd: %s", res.Status, body, stderr())
	}
	traced = ""
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, ok := traces.Load("hello-11111111"); ok {
			if !strings.Contains(b.(string), "served hello") || !strings.Contains(b.(string), `"scriptName":"hello-11111111"`) {
				t.Errorf("trace events %s, want the console.log under scriptName hello-11111111", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no trace events reached the collector\nworkerd: %s", stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Cron triggers: the host runs a loaded version's scheduled handler
	// (workerd.ScheduledPath) and answers its outcome; traced, the run's
	// event carries the cron and the handler's console.log.
	auth := true
	scheduled := func(cron, trace string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d%s", port, workerd.ScheduledPath), nil)
		req.Header.Set(workerd.LoaderVersionHeader, v1)
		req.Header.Set(workerd.LoaderScriptHeader, "hello")
		req.Header.Set(workerd.ScheduledCronHeader, cron)
		req.Header.Set(workerd.ScheduledTimeHeader, "1767225600000")
		if auth {
			req.Header.Set(workerd.AuthHeader, key.Credential(loaderTestAccount))
		}
		if trace != "" {
			req.Header.Set(workerd.LoaderTraceHeader, trace)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.Status + " " + string(b)
	}
	if got := scheduled("*/5 * * * *", ""); got != `200 OK {"outcome":"ok","noRetry":false}` {
		t.Errorf("scheduled run: %s\nworkerd: %s", got, stderr())
	}
	if got := scheduled("boom", ""); got != `200 OK {"outcome":"exception","noRetry":false}` {
		t.Errorf("throwing scheduled run: %s", got)
	}
	auth = false // a client of the gateway, or another pod
	if got := scheduled("*/5 * * * *", ""); !strings.HasPrefix(got, "403 ") {
		t.Errorf("scheduled run without the credential: %s", got)
	}
	auth = true
	traces.Delete("hello-11111111")
	if got := scheduled("7 * * * *", "hello-11111111"); got != `200 OK {"outcome":"ok","noRetry":false}` {
		t.Errorf("traced scheduled run: %s", got)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if b, ok := traces.Load("hello-11111111"); ok && strings.Contains(b.(string), `"cron":"7 * * * *"`) {
			if !strings.Contains(b.(string), "scheduled 7 * * * * at 1767225600000 says hello") {
				t.Errorf("trace events %s, want the scheduled run's console.log", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no trace events of the scheduled run\nworkerd: %s", stderr())
		}
	}

	// v2's first load fails (the pod API answers 500): the loader's own
	// 503, marked for the gateway's retry, without the pod API's words; so
	// does the next request, at once; after the retry delay the next
	// request loads it.
	res, body := get(v2, "hello")
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get(workerd.LoaderFailedHeader) == "" ||
		!strings.Contains(body, "cannot load hello version "+v2) || strings.Contains(body, "S3 is down") {
		t.Fatalf("v2 with the pod API failing: %s %q %s", res.Status, res.Header, body)
	}
	if res, body := get(v2, "hello"); res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "retrying shortly") {
		t.Fatalf("v2 right after the failure: %s %s", res.Status, body)
	}
	time.Sleep(2100 * time.Millisecond)
	res, body = get(v2, "hello")
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `"greeting":"bonjour"`) {
		t.Fatalf("v2 after the failure: %s %s\nworkerd: %s", res.Status, body, stderr())
	}
	// Unknown versions and scripts, and requests without the headers.
	for _, c := range []struct{ version, script, want string }{
		{"33333333-0000-4000-8000-000000000003", "hello", "cannot load hello version 33333333"},
		{v1, "other", "cannot load other version"},
		{"", "", "needs " + workerd.LoaderVersionHeader},
	} {
		res, body := get(c.version, c.script)
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get(workerd.LoaderFailedHeader) == "" || !strings.Contains(body, c.want) {
			t.Errorf("version %q script %q: %s %s, want 503 with %q", c.version, c.script, res.Status, body, c.want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if fetches["hello/"+v1] != 2 || fetches["hello/"+v2] != 2 || fetches["other/"+v1] != 1 {
		t.Errorf("code fetches %v, want hello's v1 twice (once traced; then cached), v2 twice (failed, then loaded), other's once", fetches)
	}
}
