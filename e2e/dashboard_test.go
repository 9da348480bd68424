//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/octohq/octo/web/webtest"
)

// TestDashboard drives the web dashboard of a running octo in Debian's
// headless chromium (apt-get install chromium; .ci/run installs it): with
// two workers deployed by the real wrangler (e2e-esm twice, so it has two
// versions, and e2e-vars), the overview shows every part healthy, the worker
// page lists both versions, a rollback click changes what the worker URL
// answers, and the live tail shows a fresh request. Screenshots are saved in
// e2e/artifacts/ (gitignored).
func TestDashboard(t *testing.T) {
	e := bootOcto(t)
	vars := parseEnv(t, e.mustOcto("env"))
	w := newWrangler(t, vars)
	g := newGatewayClient(t, vars)
	account := vars["CLOUDFLARE_ACCOUNT_ID"]
	work := t.TempDir()

	// Two workers, e2e-esm with two versions (v2 active).
	esm := copyProject(t, "esm", filepath.Join(work, "esm"))
	v1 := versionID(t, w.must(t, esm, "", "deploy"), "Current Version ID:")
	src := filepath.Join(esm, "src", "index.js")
	b0, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, bytes.ReplaceAll(b0, []byte(`"hello from esm"`), []byte(`"hello from esm v2"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	v2 := versionID(t, w.must(t, esm, "", "deploy", "--message", "second body"), "Current Version ID:")
	vars2 := copyProject(t, "vars", filepath.Join(work, "vars"))
	w.must(t, vars2, "", "deploy")
	g.waitBody(t, "e2e-esm", "/", "hello from esm v2")
	g.waitBody(t, "e2e-vars", "/", expected(t, "vars"))

	api, err := url.Parse(vars["CLOUDFLARE_API_BASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + api.Host + "/" // the dashboard: same loopback port as the API
	shots, err := filepath.Abs("artifacts")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	b := newChromium(t, shots)

	t.Run("overview", func(t *testing.T) {
		b := b.With(t)
		b.Do("open the dashboard", chromedp.Navigate(base))
		b.Wait(`document.querySelectorAll('#parts tr[data-part]').length > 0 && document.querySelector('#platform .big')`, "the parts")
		b.Wait(`[...document.querySelectorAll('#parts tr[data-part]')].every(r => r.dataset.state === 'ready')`, "every part ready")
		parts := webtest.Eval[[]string](b, `[...document.querySelectorAll('#parts tr[data-part]')].map(r => r.dataset.part)`)
		t.Logf("parts: %s", strings.Join(parts, ", "))
		for _, want := range []string{"kube-apiserver", "kubelet", "s3", "registry", "edge", "operators"} {
			if !contains(parts, want) {
				t.Errorf("overview lacks part %s: %q", want, parts)
			}
		}
		if got := webtest.Eval[string](b, `document.querySelector('#platform .big').textContent`); !strings.HasPrefix(got, "All ") || !strings.HasSuffix(got, "parts are healthy") {
			t.Errorf("platform state = %q", got)
		}
		b.Wait(`document.querySelector('#health').textContent === 'healthy'`, "the health pill")
		if got := webtest.Eval[string](b, `document.querySelector('#env').textContent`); !strings.Contains(got, "export CLOUDFLARE_API_TOKEN=") {
			t.Errorf("env lines = %q", got)
		}
		b.Wait(`Number(document.querySelector('[data-count="workers"] .num').textContent) >= 2`, "the worker count")
		b.Shot("dashboard-overview")
	})

	t.Run("workers", func(t *testing.T) {
		b := b.With(t)
		b.Do("open workers", chromedp.Navigate(base+"#/workers"))
		b.Wait(`document.querySelector('#workers tr[data-script="e2e-esm"]') && document.querySelector('#workers tr[data-script="e2e-vars"]')`, "both workers")
		want := "http://" + g.host("e2e-esm") + "/"
		if got := webtest.Eval[string](b, `document.querySelector('#workers tr[data-script="e2e-esm"] a.url').href`); got != want {
			t.Errorf("worker URL = %q, want %q", got, want)
		}
		b.Shot("dashboard-workers")
	})

	t.Run("worker-page-and-rollback", func(t *testing.T) {
		b := b.With(t)
		b.Do("open e2e-esm", chromedp.Navigate(base+"#/worker/"+account+"/e2e-esm"))
		b.Wait(`document.querySelectorAll('#versions tr[data-version]').length === 2`, "both versions")
		rows := webtest.Eval[[]string](b, `[...document.querySelectorAll('#versions tr[data-version]')].map(r => r.dataset.version)`)
		if len(rows) != 2 || rows[0] != v2 || rows[1] != v1 {
			t.Fatalf("version rows = %q, want [%s %s]", rows, v2, v1)
		}
		b.Wait(`document.querySelector('#active').innerText.includes('v2 100%')`, "v2 active")
		b.Shot("dashboard-worker")
		b.Do("roll back to v1", chromedp.Click(chromedp.CSS(`#versions button.rollback[data-version="`+v1+`"]`)))
		b.Wait(`document.querySelector('#active').innerText.includes('v1 100%')`, "v1 active")
		took := g.waitBody(t, "e2e-esm", "/", "hello from esm")
		t.Logf("the worker URL answers v1 %s after the rollback click", took.Round(time.Millisecond))
		waitStable(t, g, "e2e-esm", "hello from esm", 10)
		b.Shot("dashboard-worker-rolled-back")
		// The link works in the browser too: *.localhost is loopback.
		b.Do("open the worker URL", chromedp.Navigate("http://"+g.host("e2e-esm")+"/"))
		b.Wait(`document.body && document.body.innerText.trim() === 'hello from esm'`, "the worker's answer in the browser")
	})

	t.Run("cluster-pod-memory", func(t *testing.T) {
		b := b.With(t)
		b.Do("open the cluster", chromedp.Navigate(base+"#/cluster"))
		// The kubelet's working set against the pod's limit, e.g. "52 / 272 MiB".
		b.Wait(`[...document.querySelectorAll('#pods td.memory')].some(td => /^[1-9][0-9]* \/ [1-9][0-9]* MiB$/.test(td.textContent))`, "a pod's memory")
		b.Shot("dashboard-cluster")
	})

	t.Run("tail", func(t *testing.T) {
		b := b.With(t)
		b.Do("open the tail", chromedp.Navigate(base+"#/tail/"+account+"/e2e-esm"))
		b.Wait(`document.querySelector('#tail-state [data-state="live"]')`, "the live stream")
		path := fmt.Sprintf("/dashboard-tail-%d", time.Now().UnixNano())
		deadline := time.Now().Add(time.Minute)
		for {
			if code, _, err := g.get("e2e-esm", path); err != nil || code != 200 {
				t.Logf("GET %s: %d %v", path, code, err)
			}
			ok := webtest.Eval[bool](b, `[...document.querySelectorAll('#tail-events .tail-event')].some(e => e.innerText.includes(`+webtest.JS(path)+`) && e.innerText.includes(`+webtest.JS("esm handled "+path)+`))`)
			if ok {
				break
			}
			if time.Now().After(deadline) {
				b.Shot("dashboard-tail-failed")
				t.Fatalf("the tail view shows no event for %s", path)
			}
			time.Sleep(time.Second)
		}
		b.Shot("dashboard-tail")
	})

	if errs := b.PageErrors(); len(errs) > 0 {
		t.Errorf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// newChromium starts Debian's headless chromium for the dashboard.
func newChromium(t *testing.T, shots string) *webtest.Browser {
	t.Helper()
	bin, err := webtest.ChromiumPath()
	if err != nil {
		t.Fatal(err)
	}
	return webtest.New(t, bin, shots, "dashboard-failed-", 30*time.Second)
}
