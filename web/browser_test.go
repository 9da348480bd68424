package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/internal/operators/api/v1"
	"github.com/octohq/octo/internal/tail"
)

// chromiumPath finds Debian's chromium (apt-get install chromium). Without
// it the browser test is skipped, except in CI (CI set), where .ci/run
// installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("OCTO_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (apt-get install chromium): the dashboard's browser test needs it")
	}
	t.Skip("chromium is not installed (apt-get install chromium); skipping the browser test")
	return ""
}

// browser drives one headless chromium tab.
type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string

	mu   sync.Mutex
	errs []string // uncaught exceptions and console errors of the page
}

// newBrowser starts chromium as the e2e test does: headless, no sandbox
// (CI runs as root), no GPU, no QUIC, nothing talking to the internet, a
// fresh profile, a laptop-sized window.
func newBrowser(t *testing.T, shots string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	b := &browser{t: t, ctx: ctx, shots: shots}
	// The first run starts the browser: no timeout on it (it would stop
	// the browser); it must not hang either.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx, chromedp.EmulateViewport(1440, 900)) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("chromium did not start within 60 s")
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "exception: " + e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				msg = "console.error"
				for _, a := range e.Args {
					msg += " " + string(a.Value)
				}
			}
		}
		if msg != "" {
			b.mu.Lock()
			b.errs = append(b.errs, msg)
			b.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("%s: %v", what, err)
	}
}

// wait polls a JavaScript predicate until it is truthy. It evaluates it
// afresh every 100 ms rather than with chromedp.Poll, whose task does not
// survive the page changing its location (the dashboard's routes are hash
// changes).
func (b *browser) wait(expr, what string) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body.innerText"))
	b.t.Fatalf("waiting for %s (%s): not true within 15 s (last error %v)\npage errors: %q\npage text:\n%s", what, expr, last, b.pageErrors(), body)
}

func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// shot saves a full-page PNG screenshot.
func (b *browser) shot(name string) {
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Errorf("save screenshot: %v", err)
		return
	}
	b.t.Logf("screenshot %s", p)
}

func (b *browser) pageErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

// js quotes s as a JavaScript string.
func js(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// TestBrowser serves the dashboard on the fixture and drives it in
// headless chromium: every section renders, the worker page lists the
// versions with secrets hidden, rollback and split change the deployment
// through the API, KV put works, the tail shows a fresh request, and delete
// asks first. Screenshots go to $OCTO_DASHBOARD_SHOTS or a temporary
// directory (named in the log).
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test in -short mode")
	}
	chromiumPath(t)
	shots := os.Getenv("OCTO_DASHBOARD_SHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, port := freePort(t)
	w := newWorld(t, port)
	srv := &http.Server{Handler: w.e, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	base := fmt.Sprintf("http://127.0.0.1:%d/", port)
	b := newBrowser(t, shots)

	// Overview.
	b.do("open the dashboard", chromedp.Navigate(base))
	b.wait(`document.querySelector('#parts tr[data-part="gateway"]')`, "the parts")
	if got := eval[string](b, `document.querySelector('#platform .big').textContent`); got != "All 15 parts are healthy" {
		t.Errorf("platform state = %q", got)
	}
	if got := eval[[]string](b, `[...document.querySelectorAll('#parts tr[data-part]')].map(r => r.dataset.part + '=' + r.dataset.state)`); len(got) != 15 || got[0] != "pod-network=ready" {
		t.Errorf("parts = %q", got)
	}
	b.wait(`document.querySelector('#health').textContent === 'healthy'`, "the health pill")
	if got := eval[string](b, `document.querySelector('#counts').innerText.replace(/\s+/g, ' ')`); got != "2 Accounts 2 Workers 3 Versions 2 Builds" {
		t.Errorf("counts = %q", got)
	}
	if got := eval[string](b, `document.querySelector('#env').textContent`); !strings.Contains(got, "export CLOUDFLARE_API_TOKEN=") {
		t.Errorf("env = %q", got)
	}
	// The stylesheet applied (CSP lets the page's own assets in).
	if got := eval[string](b, `getComputedStyle(document.querySelector('header.top')).position`); got != "sticky" {
		t.Errorf("header position %q: app.css not applied", got)
	}
	b.shot("overview")

	// Workers.
	b.do("open workers", chromedp.Click(chromedp.CSS(`#nav a[data-view="workers"]`)))
	b.wait(`document.querySelector('#workers tr[data-script="e2e-esm"]')`, "the worker list")
	wantURL := fmt.Sprintf("http://e2e-esm.octo.workers.localhost:%d/", port)
	if got := eval[string](b, `document.querySelector('#workers tr[data-script="e2e-esm"] a.url').href`); got != wantURL {
		t.Errorf("worker URL link = %q, want %q", got, wantURL)
	}
	if got := eval[string](b, `document.querySelector('#workers tr[data-script="e2e-esm"]').innerText.replace(/\s+/g, ' ')`); !strings.Contains(got, "v2 100%") || !strings.Contains(got, "Succeeded") {
		t.Errorf("e2e-esm row = %q", got)
	}
	b.shot("workers")

	// The worker page: both versions, secrets hidden.
	b.do("open e2e-vars", chromedp.Navigate(base+"#/worker/"+acct+"/e2e-vars"))
	b.wait(`document.querySelector('#versions tr[data-version="`+varsV1+`"]')`, "the e2e-vars versions")
	if got := eval[string](b, `document.querySelector('#versions').innerText`); !strings.Contains(got, "API_KEY") || !strings.Contains(got, "hidden") ||
		!strings.Contains(got, "GREETING") || strings.Contains(got, secretValue) {
		t.Errorf("e2e-vars bindings = %q", got)
	}
	b.do("open e2e-esm", chromedp.Navigate(base+"#/worker/"+acct+"/e2e-esm"))
	b.wait(`document.querySelectorAll('#versions tr[data-version]').length === 2`, "both versions of e2e-esm")
	if got := eval[[]string](b, `[...document.querySelectorAll('#versions tr[data-version]')].map(r => r.dataset.version)`); got[0] != esmV2 || got[1] != esmV1 {
		t.Errorf("versions = %q, want v2 then v1", got)
	}
	b.wait(`document.querySelector('#active').innerText.includes('v2 100%')`, "v2 active")
	b.shot("worker")

	// Rollback to v1 with one click.
	b.do("roll back", chromedp.Click(chromedp.CSS(`#versions button.rollback[data-version="`+esmV1+`"]`)))
	b.wait(`document.querySelector('#active').innerText.includes('v1 100%')`, "v1 active after the rollback")
	b.wait(`!document.querySelector('#toast').hidden && document.querySelector('#toast').textContent.includes('v1 now serves 100 %')`, "the rollback toast")
	if a := activeOf(t, w, "e2e-esm"); len(a) != 1 || a[0].VersionID != esmV1 {
		t.Errorf("after the rollback click the active deployment is %+v", a)
	}
	if c := w.api.lastCall(); c.Method != "POST" || !strings.HasSuffix(c.Path, "/workers/scripts/e2e-esm/deployments") || c.Auth != "Bearer "+testAPIToken {
		t.Errorf("rollback API call = %+v", c)
	}
	b.wait(`document.querySelectorAll('#deployments tr[data-deployment]').length === 3`, "the new deployment in the history")
	b.shot("worker-rolled-back")

	// Gradual split: v2 30 %, v1 70 %.
	b.do("fill the split form",
		chromedp.SetValue(chromedp.CSS("#split-a"), esmV2),
		chromedp.SetValue(chromedp.CSS("#split-b"), esmV1),
		chromedp.SetValue(chromedp.CSS("#split-pct"), "30"),
		chromedp.Click(chromedp.CSS("#split-deploy")))
	b.wait(`document.querySelector('#active').innerText.includes('v2 30%') && document.querySelector('#active').innerText.includes('v1 70%')`, "the split")
	if a := activeOf(t, w, "e2e-esm"); len(a) != 2 || a[0] != (apiv1.VersionTraffic{VersionID: esmV2, Percentage: 30}) {
		t.Errorf("after the split the active deployment is %+v", a)
	}
	// An API refusal shows as an error toast.
	b.do("split with the same version twice",
		chromedp.SetValue(chromedp.CSS("#split-b"), esmV2),
		chromedp.SetValue(chromedp.CSS("#split-pct"), "130"),
		chromedp.Click(chromedp.CSS("#split-deploy")))
	b.wait(`document.querySelector('#toast').className === 'bad' && document.querySelector('#toast').textContent.includes('between 0 and 100')`, "the error toast")
	b.shot("worker-split")

	// Builds.
	b.do("open builds", chromedp.Click(chromedp.CSS(`#nav a[data-view="builds"]`)))
	b.wait(`document.querySelector('#builds tr[data-build="octo-build-b"]')`, "the builds")
	if got := eval[string](b, `document.querySelector('#builds tr[data-build="octo-build-a"]').innerText`); !strings.Contains(got, "Failed") || !strings.Contains(got, "registry unavailable") {
		t.Errorf("failed build row = %q", got)
	}
	if got := eval[string](b, `document.querySelector('#builds tr[data-build="octo-build-b"]').innerText`); !strings.Contains(got, "3.0 s") || !strings.Contains(got, "sha256:bbbbbbbbbbbb") {
		t.Errorf("succeeded build row = %q", got)
	}
	b.shot("builds")

	// KV: namespaces, keys with a prefix, value, put.
	b.do("open KV", chromedp.Click(chromedp.CSS(`#nav a[data-view="kv"]`)))
	b.wait(`document.querySelector('#kv-keys button[data-key="greeting"]')`, "the KV keys")
	b.do("choose a key", chromedp.Click(chromedp.CSS(`#kv-keys button[data-key="greeting"]`)))
	b.wait(`document.querySelector('#kv-preview') && document.querySelector('#kv-preview').textContent === 'hello from KV'`, "the value preview")
	b.do("filter keys", chromedp.SendKeys(chromedp.CSS("#kv-prefix"), "config/"))
	b.wait(`document.querySelectorAll('#kv-keys button[data-key]').length === 2`, "the keys with prefix config/")
	b.do("put a value",
		chromedp.SetValue(chromedp.CSS("#kv-put-key"), "config/from-browser"),
		chromedp.SetValue(chromedp.CSS("#kv-put-value"), "put by chromium"),
		chromedp.Click(chromedp.CSS("#kv-put")))
	b.wait(`document.querySelector('#kv-preview') && document.querySelector('#kv-preview').textContent === 'put by chromium'`, "the put value")
	b.wait(`document.querySelectorAll('#kv-keys button[data-key]').length === 3`, "the new key in the list")
	w.api.mu.Lock()
	stored := string(w.api.kv[kvNS]["config/from-browser"])
	w.api.mu.Unlock()
	if stored != "put by chromium" {
		t.Errorf("KV put stored %q", stored)
	}
	b.shot("kv")

	// Cluster.
	b.do("open cluster", chromedp.Click(chromedp.CSS(`#nav a[data-view="cluster"]`)))
	b.wait(`document.querySelectorAll('#pods tr[data-pod]').length === 2 && document.querySelector('#events tbody')`, "pods and events")
	if got := eval[string](b, `document.querySelector('#pods tr[data-pod="octo-5c4b-fghij"]').innerText`); !strings.Contains(got, "CrashLoopBackOff") || !strings.Contains(got, "5") {
		t.Errorf("crashing pod row = %q", got)
	}
	b.shot("cluster")

	// Live tail: a fresh request shows up.
	b.do("open the tail", chromedp.Navigate(base+"#/tail/"+acct+"/e2e-esm"))
	b.wait(`document.querySelector('#tail-state [data-state="live"]')`, "the tail stream")
	if n := publishTail(w.hub, "/tailed?x=1"); n != 1 {
		t.Errorf("tail event reached %d listeners, want 1 (the page)", n)
	}
	b.wait(`[...document.querySelectorAll('#tail-events .tail-event')].some(e => e.innerText.includes('/tailed?x=1') && e.innerText.includes('esm handled /tailed'))`, "the tail event")
	publishTail(w.hub, "/second")
	b.wait(`document.querySelectorAll('#tail-events .tail-event').length === 2`, "the second tail event")
	b.shot("tail")

	// Delete asks first; Cancel keeps the worker.
	b.do("open e2e-vars again", chromedp.Navigate(base+"#/worker/"+acct+"/e2e-vars"))
	b.wait(`document.querySelector('#delete-worker')`, "the delete button")
	b.do("delete, then cancel", chromedp.Click(chromedp.CSS("#delete-worker")))
	b.wait(`document.querySelector('#confirm').open && document.querySelector('#confirm-text').textContent.includes('e2e-vars')`, "the confirmation")
	b.shot("delete-confirm")
	b.do("cancel", chromedp.Click(chromedp.CSS("#confirm-cancel")))
	b.wait(`!document.querySelector('#confirm').open`, "the confirmation to close")
	if exists(t, w, "e2e-vars") != true {
		t.Fatal("Cancel deleted the worker")
	}
	b.do("delete, then confirm", chromedp.Click(chromedp.CSS("#delete-worker")))
	b.wait(`document.querySelector('#confirm').open`, "the confirmation")
	b.do("confirm", chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.wait(`location.hash === '#/workers' && document.querySelector('#workers tr[data-script="e2e-esm"]') && !document.querySelector('#workers tr[data-script="e2e-vars"]')`, "the worker list without e2e-vars")
	if exists(t, w, "e2e-vars") {
		t.Error("the worker still exists after the confirmed delete")
	}
	b.shot("workers-after-delete")

	if errs := b.pageErrors(); len(errs) > 0 {
		t.Errorf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
}

func activeOf(t *testing.T, w *world, script string) []apiv1.VersionTraffic {
	t.Helper()
	var rel apiv1.WorkerRelease
	if err := w.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: script}, &rel); err != nil {
		t.Fatal(err)
	}
	return rel.ActiveDeployment().Versions
}

func exists(t *testing.T, w *world, script string) bool {
	t.Helper()
	var rel apiv1.WorkerRelease
	err := w.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: script}, &rel)
	if client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	return err == nil
}

func publishTail(h *tail.Hub, path string) int {
	return h.Publish(tail.Event{
		Account: acct, ScriptName: "e2e-esm", Outcome: "ok", EventTimestamp: time.Now().UnixMilli(),
		ScriptVersion: &tail.ScriptVersion{ID: esmV2},
		Event:         json.RawMessage(`{"request":{"url":"http://e2e-esm.octo.workers.localhost:8787` + path + `","method":"GET","headers":{}},"response":{"status":200}}`),
		Logs:          []tail.Log{{Message: []json.RawMessage{json.RawMessage(js("esm handled /tailed"))}, Level: "log", Timestamp: time.Now().UnixMilli()}},
	})
}
