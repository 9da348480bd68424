package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/tail"
	"github.com/octohq/octo/web/webtest"
)

// chromiumPath finds Debian's chromium. Without it the browser test is
// skipped, except in CI (CI set), where .ci/run installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p, err := webtest.ChromiumPath()
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%v: the dashboard's browser test needs it", err)
	}
	t.Skipf("%v; skipping the browser test", err)
	return ""
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
	b := webtest.New(t, chromiumPath(t), shots, "failed-", 15*time.Second)

	// Without a session: the login page, no token. The login link (what
	// `sudo octo dashboard` prints) opens the dashboard.
	b.Do("open the dashboard, logged out", chromedp.Navigate(base))
	b.Wait(`document.querySelector('#login') && document.body.innerText.includes('sudo octo dashboard')`, "the login page")
	if webtest.Eval[bool](b, `!!document.querySelector('meta[name="octo-token"]')`) {
		t.Error("the login page carries the CSRF token")
	}
	b.Shot("login")
	b.Do("log in", chromedp.Navigate(LoginURL(port, w.loginToken(t))))

	// Overview.
	b.Wait(`location.href === `+webtest.JS(base)+` && document.querySelector('#parts tr[data-part="gateway"]')`, "the parts")
	if got := webtest.Eval[string](b, `document.querySelector('#platform .big').textContent`); got != "All 15 parts are healthy" {
		t.Errorf("platform state = %q", got)
	}
	if got := webtest.Eval[[]string](b, `[...document.querySelectorAll('#parts tr[data-part]')].map(r => r.dataset.part + '=' + r.dataset.state)`); len(got) != 15 || got[0] != "pod-network=ready" {
		t.Errorf("parts = %q", got)
	}
	b.Wait(`document.querySelector('#health').textContent === 'healthy'`, "the health pill")
	if got := webtest.Eval[string](b, `document.querySelector('#counts').innerText.replace(/\s+/g, ' ')`); got != "2 Accounts 2 Workers 3 Versions 2 Builds" {
		t.Errorf("counts = %q", got)
	}
	if got := webtest.Eval[string](b, `document.querySelector('#env').textContent`); got != `eval "$(sudo octo env)"` {
		t.Errorf("env command = %q", got)
	}
	if got := webtest.Eval[string](b, `document.querySelector('#env-vars').textContent`); !strings.Contains(got, "CLOUDFLARE_API_TOKEN") || !strings.Contains(got, "AWS_SECRET_ACCESS_KEY") {
		t.Errorf("env vars = %q", got)
	}
	if got := webtest.Eval[string](b, `document.documentElement.outerHTML`); strings.Contains(got, testAPIToken) || strings.Contains(got, testS3Secret) {
		t.Error("the overview shows the API token or the S3 secret key")
	}
	// The stylesheet applied (CSP lets the page's own assets in).
	if got := webtest.Eval[string](b, `getComputedStyle(document.querySelector('header.top')).position`); got != "sticky" {
		t.Errorf("header position %q: app.css not applied", got)
	}
	b.Wait(`document.querySelector('#platform-total') && document.querySelector('#traffic #requests-chart')`, "the platform's requests chart")
	if got := webtest.Eval[string](b, `document.querySelector('#platform-total').dataset.requests`); got != "10" {
		t.Errorf("the platform's requests = %s, want 10", got)
	}
	b.Shot("overview")

	// Workers.
	b.Do("open workers", chromedp.Click(chromedp.CSS(`#nav a[data-view="workers"]`)))
	b.Wait(`document.querySelector('#workers tr[data-script="e2e-esm"]')`, "the worker list")
	wantURL := fmt.Sprintf("http://e2e-esm.octo.workers.localhost:%d/", port)
	if got := webtest.Eval[string](b, `document.querySelector('#workers tr[data-script="e2e-esm"] a.url').href`); got != wantURL {
		t.Errorf("worker URL link = %q, want %q", got, wantURL)
	}
	if got := webtest.Eval[string](b, `document.querySelector('#workers tr[data-script="e2e-esm"]').innerText.replace(/\s+/g, ' ')`); !strings.Contains(got, "v2 100%") || !strings.Contains(got, "Succeeded") {
		t.Errorf("e2e-esm row = %q", got)
	}
	b.Shot("workers")

	// The worker page: both versions, secrets hidden.
	b.Do("open e2e-vars", chromedp.Navigate(base+"#/worker/"+acct+"/e2e-vars"))
	b.Wait(`document.querySelector('#versions tr[data-version="`+varsV1+`"]')`, "the e2e-vars versions")
	if got := webtest.Eval[string](b, `document.querySelector('#versions').innerText`); !strings.Contains(got, "API_KEY") || !strings.Contains(got, "hidden") ||
		!strings.Contains(got, "GREETING") || strings.Contains(got, secretValue) || !strings.Contains(got, "static assets 3 files") {
		t.Errorf("e2e-vars bindings = %q", got)
	}
	// Its cron trigger and the latest runs, with their outcome.
	b.Wait(`!document.querySelector('#cron').hidden && document.querySelectorAll('#cron tr[data-outcome]').length === 2`, "the cron runs of e2e-vars")
	if got := webtest.Eval[string](b, `document.querySelector('#cron').innerText`); !strings.Contains(got, "*/5 * * * *") || !strings.Contains(got, "exception") || !strings.Contains(got, "12 ms") {
		t.Errorf("cron section = %q", got)
	}
	b.Shot("worker-cron")
	b.Do("open e2e-esm", chromedp.Navigate(base+"#/worker/"+acct+"/e2e-esm"))
	b.Wait(`document.querySelectorAll('#versions tr[data-version]').length === 2`, "both versions of e2e-esm")
	// Its metrics: the requests chart's bars add up to the total, errors apart.
	b.Wait(`document.querySelector('#requests-chart') && document.querySelector('#latency-chart polyline.p99')`, "the metrics charts")
	if got := webtest.Eval[[]int](b, `[document.querySelector('#metrics-total').dataset.requests, document.querySelector('#metrics-total').dataset.errors,
		[...document.querySelectorAll('#requests-chart g[data-requests]')].reduce((n, g) => n + Number(g.dataset.requests), 0),
		[...document.querySelectorAll('#requests-chart g[data-requests]')].reduce((n, g) => n + Number(g.dataset.errors), 0),
		document.querySelectorAll('#requests-chart rect.errors').length].map(Number)`); fmt.Sprint(got) != "[10 2 10 2 1]" {
		t.Errorf("metrics: total, errors, bars' requests, bars' errors, error bars = %v, want [10 2 10 2 1]", got)
	}
	// The CPU of its pods: the bars add up to the total.
	if got := webtest.Eval[[]float64](b, `[Number(document.querySelector('#usage-chart-total').dataset.cpu),
		[...document.querySelectorAll('#usage-chart g[data-cpu]')].reduce((n, g) => n + Number(g.dataset.cpu), 0),
		document.querySelectorAll('#usage-chart polyline.memory').length]`); fmt.Sprint(got) != "[3 3 1]" {
		t.Errorf("usage: total CPU, bars' CPU, memory lines = %v, want [3 3 1]", got)
	}
	b.Shot("worker-metrics")
	b.Do("metrics over a day", chromedp.Click(chromedp.CSS(`#metrics-24h`)))
	b.Wait(`document.querySelectorAll('#requests-chart g[data-requests]').length === 24`, "the day's 24 hours")
	b.Shot("worker-metrics-24h")
	if webtest.Eval[bool](b, `!document.querySelector('#cron').hidden`) {
		t.Error("a worker without cron triggers shows the cron section")
	}
	if got := webtest.Eval[[]string](b, `[...document.querySelectorAll('#versions tr[data-version]')].map(r => r.dataset.version)`); got[0] != esmV2 || got[1] != esmV1 {
		t.Errorf("versions = %q, want v2 then v1", got)
	}
	b.Wait(`document.querySelector('#active').innerText.includes('v2 100%')`, "v2 active")
	b.Shot("worker")

	// Rollback to v1 with one click.
	b.Do("roll back", chromedp.Click(chromedp.CSS(`#versions button.rollback[data-version="`+esmV1+`"]`)))
	b.Wait(`document.querySelector('#active').innerText.includes('v1 100%')`, "v1 active after the rollback")
	b.Wait(`!document.querySelector('#toast').hidden && document.querySelector('#toast').textContent.includes('v1 now serves 100 %')`, "the rollback toast")
	if a := activeOf(t, w, "e2e-esm"); len(a) != 1 || a[0].VersionID != esmV1 {
		t.Errorf("after the rollback click the active deployment is %+v", a)
	}
	b.Wait(`document.querySelectorAll('#deployments tr[data-deployment]').length === 3`, "the new deployment in the history")
	b.Shot("worker-rolled-back")

	// Gradual split: v2 30 %, v1 70 %.
	b.Do("fill the split form",
		chromedp.SetValue(chromedp.CSS("#split-a"), esmV2),
		chromedp.SetValue(chromedp.CSS("#split-b"), esmV1),
		chromedp.SetValue(chromedp.CSS("#split-pct"), "30"),
		chromedp.Click(chromedp.CSS("#split-deploy")))
	b.Wait(`document.querySelector('#active').innerText.includes('v2 30%') && document.querySelector('#active').innerText.includes('v1 70%')`, "the split")
	if a := activeOf(t, w, "e2e-esm"); len(a) != 2 || a[0] != (apiv1.VersionTraffic{VersionID: esmV2, Percentage: 30}) {
		t.Errorf("after the split the active deployment is %+v", a)
	}
	// An API refusal shows as an error toast.
	b.Do("split with the same version twice",
		chromedp.SetValue(chromedp.CSS("#split-b"), esmV2),
		chromedp.SetValue(chromedp.CSS("#split-pct"), "130"),
		chromedp.Click(chromedp.CSS("#split-deploy")))
	b.Wait(`document.querySelector('#toast').className === 'bad' && document.querySelector('#toast').textContent.includes('between 0 and 100')`, "the error toast")
	b.Shot("worker-split")

	// Builds.
	b.Do("open builds", chromedp.Click(chromedp.CSS(`#nav a[data-view="builds"]`)))
	b.Wait(`document.querySelector('#builds tr[data-build="octo-build-b"]')`, "the builds")
	if got := webtest.Eval[string](b, `document.querySelector('#builds tr[data-build="octo-build-a"]').innerText`); !strings.Contains(got, "Failed") || !strings.Contains(got, "registry unavailable") {
		t.Errorf("failed build row = %q", got)
	}
	if got := webtest.Eval[string](b, `document.querySelector('#builds tr[data-build="octo-build-b"]').innerText`); !strings.Contains(got, "3.0 s") || !strings.Contains(got, "sha256:bbbbbbbbbbbb") {
		t.Errorf("succeeded build row = %q", got)
	}
	b.Shot("builds")

	// KV: namespaces, keys with a prefix, value, put.
	b.Do("open KV", chromedp.Click(chromedp.CSS(`#nav a[data-view="kv"]`)))
	b.Wait(`document.querySelector('#kv-keys button[data-key="greeting"]')`, "the KV keys")
	b.Do("choose a key", chromedp.Click(chromedp.CSS(`#kv-keys button[data-key="greeting"]`)))
	b.Wait(`document.querySelector('#kv-preview') && document.querySelector('#kv-preview').textContent === 'hello from KV'`, "the value preview")
	b.Do("filter keys", chromedp.SendKeys(chromedp.CSS("#kv-prefix"), "config/"))
	b.Wait(`document.querySelectorAll('#kv-keys button[data-key]').length === 2`, "the keys with prefix config/")
	b.Do("put a value",
		chromedp.SetValue(chromedp.CSS("#kv-put-key"), "config/from-browser"),
		chromedp.SetValue(chromedp.CSS("#kv-put-value"), "put by chromium"),
		chromedp.Click(chromedp.CSS("#kv-put")))
	b.Wait(`document.querySelector('#kv-preview') && document.querySelector('#kv-preview').textContent === 'put by chromium'`, "the put value")
	b.Wait(`document.querySelectorAll('#kv-keys button[data-key]').length === 3`, "the new key in the list")
	if stored := w.kvValue(t, "config/from-browser"); stored != "put by chromium" {
		t.Errorf("KV put stored %q", stored)
	}
	b.Shot("kv")

	// R2: buckets with their sizes, folders, an object's preview.
	b.Do("open R2", chromedp.Click(chromedp.CSS(`#nav a[data-view="r2"]`)))
	b.Wait(`document.querySelector('#r2-buckets button[data-bucket="e2e-assets"]') && document.querySelector('#r2-objects button[data-key="index.html"]')`, "the R2 buckets and objects")
	if got := webtest.Eval[string](b, `document.querySelector('#r2-buckets button[data-bucket="e2e-assets"]').innerText`); !strings.Contains(got, "5 objects") {
		t.Errorf("bucket entry = %q, want 5 objects", got)
	}
	b.Do("open docs/", chromedp.Click(chromedp.CSS(`#r2-objects button[data-prefix="docs/"]`)))
	b.Wait(`document.querySelector('#r2-objects button[data-key="docs/a.md"]') && document.querySelector('#r2-objects button[data-prefix="docs/deep/"]') && !document.querySelector('#r2-objects button[data-key="index.html"]')`, "the objects under docs/")
	b.Do("choose docs/a.md", chromedp.Click(chromedp.CSS(`#r2-objects button[data-key="docs/a.md"]`)))
	b.Wait(`document.querySelector('#r2-preview') && document.querySelector('#r2-preview').textContent === '# A'`, "the object preview")
	b.Do("back to the bucket root, into img/", chromedp.Click(chromedp.CSS(`#r2-path button[data-prefix=""]`)))
	b.Wait(`document.querySelector('#r2-objects button[data-prefix="img/"]')`, "the bucket root")
	b.Do("open img/", chromedp.Click(chromedp.CSS(`#r2-objects button[data-prefix="img/"]`)))
	b.Wait(`document.querySelector('#r2-objects button[data-key="img/logo.png"]')`, "the image")
	b.Do("choose the image", chromedp.Click(chromedp.CSS(`#r2-objects button[data-key="img/logo.png"]`)))
	b.Wait(`document.querySelector('#r2-custom') && document.querySelector('#r2-custom').innerText.includes('author = octo') && document.querySelector('#r2-preview').textContent.startsWith('89 50 4e 47')`, "the image's metadata and hex preview")
	b.Shot("r2")

	// D1: databases, tables, the read-only query box.
	b.Do("open D1", chromedp.Click(chromedp.CSS(`#nav a[data-view="d1"]`)))
	b.Wait(`document.querySelector('#d1-databases button[data-database="`+w.d1DB+`"]') && document.querySelector('#d1-tables tr[data-table="users"]')`, "the D1 database and its tables")
	if got := webtest.Eval[string](b, `document.querySelector('#d1-tables tr[data-table="users"]').innerText.replace(/\s+/g, ' ')`); !strings.Contains(got, "users 3 id INTEGER · key name TEXT") {
		t.Errorf("users row = %q", got)
	}
	b.Do("run a query",
		chromedp.SetValue(chromedp.CSS("#d1-sql"), "SELECT id, name FROM users ORDER BY id DESC"),
		chromedp.Click(chromedp.CSS("#d1-run")))
	b.Wait(`document.querySelectorAll('#d1-result tbody tr').length === 3`, "the query's rows")
	if got := webtest.Eval[[]string](b, `[...document.querySelectorAll('#d1-result tbody tr')].map(r => r.innerText.replace(/\s+/g, ' '))`); strings.Join(got, ",") != "3 linus,2 grace,1 ada" {
		t.Errorf("query rows = %q", got)
	}
	b.Shot("d1")
	b.Do("try a write",
		chromedp.SetValue(chromedp.CSS("#d1-sql"), "DELETE FROM users"),
		chromedp.Click(chromedp.CSS("#d1-run")))
	b.Wait(`document.querySelector('#d1-error') && document.querySelector('#d1-error').textContent.includes('Only read statements')`, "the refusal")
	b.Do("query a table by its name", chromedp.Click(chromedp.CSS(`#d1-tables tr[data-table="users"] button.link`)))
	b.Wait(`document.querySelectorAll('#d1-result tbody tr').length === 3 && document.querySelector('#d1-sql').value.includes('FROM "users"')`, "the table's rows")

	// Cluster.
	b.Do("open cluster", chromedp.Click(chromedp.CSS(`#nav a[data-view="cluster"]`)))
	b.Wait(`document.querySelectorAll('#pods tr[data-pod]').length === 2 && document.querySelector('#events tbody')`, "pods and events")
	if got := webtest.Eval[string](b, `document.querySelector('#pods tr[data-pod="octo-5c4b-fghij"]').innerText`); !strings.Contains(got, "CrashLoopBackOff") || !strings.Contains(got, "5") {
		t.Errorf("crashing pod row = %q", got)
	}
	b.Shot("cluster")

	// Live tail: a fresh request shows up.
	b.Do("open the tail", chromedp.Navigate(base+"#/tail/"+acct+"/e2e-esm"))
	b.Wait(`document.querySelector('#tail-state [data-state="live"]')`, "the tail stream")
	if n := publishTail(w.hub, "/tailed?x=1"); n != 1 {
		t.Errorf("tail event reached %d listeners, want 1 (the page)", n)
	}
	b.Wait(`[...document.querySelectorAll('#tail-events .tail-event')].some(e => e.innerText.includes('/tailed?x=1') && e.innerText.includes('esm handled /tailed'))`, "the tail event")
	publishTail(w.hub, "/second")
	b.Wait(`document.querySelectorAll('#tail-events .tail-event').length === 2`, "the second tail event")
	b.Shot("tail")

	// Delete asks first; Cancel keeps the worker.
	b.Do("open e2e-vars again", chromedp.Navigate(base+"#/worker/"+acct+"/e2e-vars"))
	b.Wait(`document.querySelector('#delete-worker')`, "the delete button")
	b.Do("delete, then cancel", chromedp.Click(chromedp.CSS("#delete-worker")))
	b.Wait(`document.querySelector('#confirm').open && document.querySelector('#confirm-text').textContent.includes('e2e-vars')`, "the confirmation")
	b.Shot("delete-confirm")
	b.Do("cancel", chromedp.Click(chromedp.CSS("#confirm-cancel")))
	b.Wait(`!document.querySelector('#confirm').open`, "the confirmation to close")
	if exists(t, w, "e2e-vars") != true {
		t.Fatal("Cancel deleted the worker")
	}
	b.Do("delete, then confirm", chromedp.Click(chromedp.CSS("#delete-worker")))
	b.Wait(`document.querySelector('#confirm').open`, "the confirmation")
	b.Do("confirm", chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.Wait(`location.hash === '#/workers' && document.querySelector('#workers tr[data-script="e2e-esm"]') && !document.querySelector('#workers tr[data-script="e2e-vars"]')`, "the worker list without e2e-vars")
	if exists(t, w, "e2e-vars") {
		t.Error("the worker still exists after the confirmed delete")
	}
	b.Shot("workers-after-delete")

	// When the session ends the page says how to log in again.
	w.advance(SessionTTL)
	b.Wait(`document.querySelector('#logged-out') && document.querySelector('#logged-out').innerText.includes('sudo octo dashboard')`, "the logged-out notice")
	b.Shot("logged-out")

	if errs := b.PageErrors(); len(errs) > 0 {
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
		Logs:          []tail.Log{{Message: []json.RawMessage{json.RawMessage(webtest.JS("esm handled /tailed"))}, Level: "log", Timestamp: time.Now().UnixMilli()}},
	})
}
