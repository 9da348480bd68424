//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
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
		b := b.with(t)
		b.do("open the dashboard", chromedp.Navigate(base))
		b.wait(`document.querySelectorAll('#parts tr[data-part]').length > 0 && document.querySelector('#platform .big')`, "the parts")
		b.wait(`[...document.querySelectorAll('#parts tr[data-part]')].every(r => r.dataset.state === 'ready')`, "every part ready")
		parts := eval[[]string](b, `[...document.querySelectorAll('#parts tr[data-part]')].map(r => r.dataset.part)`)
		t.Logf("parts: %s", strings.Join(parts, ", "))
		for _, want := range []string{"kube-apiserver", "kubelet", "s3", "registry", "edge", "operators"} {
			if !contains(parts, want) {
				t.Errorf("overview lacks part %s: %q", want, parts)
			}
		}
		if got := eval[string](b, `document.querySelector('#platform .big').textContent`); !strings.HasPrefix(got, "All ") || !strings.HasSuffix(got, "parts are healthy") {
			t.Errorf("platform state = %q", got)
		}
		b.wait(`document.querySelector('#health').textContent === 'healthy'`, "the health pill")
		if got := eval[string](b, `document.querySelector('#env').textContent`); !strings.Contains(got, "export CLOUDFLARE_API_TOKEN=") {
			t.Errorf("env lines = %q", got)
		}
		b.wait(`Number(document.querySelector('[data-count="workers"] .num').textContent) >= 2`, "the worker count")
		b.shot("dashboard-overview")
	})

	t.Run("workers", func(t *testing.T) {
		b := b.with(t)
		b.do("open workers", chromedp.Navigate(base+"#/workers"))
		b.wait(`document.querySelector('#workers tr[data-script="e2e-esm"]') && document.querySelector('#workers tr[data-script="e2e-vars"]')`, "both workers")
		want := "http://" + g.host("e2e-esm") + "/"
		if got := eval[string](b, `document.querySelector('#workers tr[data-script="e2e-esm"] a.url').href`); got != want {
			t.Errorf("worker URL = %q, want %q", got, want)
		}
		b.shot("dashboard-workers")
	})

	t.Run("worker-page-and-rollback", func(t *testing.T) {
		b := b.with(t)
		b.do("open e2e-esm", chromedp.Navigate(base+"#/worker/"+account+"/e2e-esm"))
		b.wait(`document.querySelectorAll('#versions tr[data-version]').length === 2`, "both versions")
		rows := eval[[]string](b, `[...document.querySelectorAll('#versions tr[data-version]')].map(r => r.dataset.version)`)
		if len(rows) != 2 || rows[0] != v2 || rows[1] != v1 {
			t.Fatalf("version rows = %q, want [%s %s]", rows, v2, v1)
		}
		b.wait(`document.querySelector('#active').innerText.includes('v2 100%')`, "v2 active")
		b.shot("dashboard-worker")
		b.do("roll back to v1", chromedp.Click(chromedp.CSS(`#versions button.rollback[data-version="`+v1+`"]`)))
		b.wait(`document.querySelector('#active').innerText.includes('v1 100%')`, "v1 active")
		took := g.waitBody(t, "e2e-esm", "/", "hello from esm")
		t.Logf("the worker URL answers v1 %s after the rollback click", took.Round(time.Millisecond))
		waitStable(t, g, "e2e-esm", "hello from esm", 10)
		b.shot("dashboard-worker-rolled-back")
		// The link works in the browser too: *.localhost is loopback.
		b.do("open the worker URL", chromedp.Navigate("http://"+g.host("e2e-esm")+"/"))
		b.wait(`document.body && document.body.innerText.trim() === 'hello from esm'`, "the worker's answer in the browser")
	})

	t.Run("tail", func(t *testing.T) {
		b := b.with(t)
		b.do("open the tail", chromedp.Navigate(base+"#/tail/"+account+"/e2e-esm"))
		b.wait(`document.querySelector('#tail-state [data-state="live"]')`, "the live stream")
		path := fmt.Sprintf("/dashboard-tail-%d", time.Now().UnixNano())
		deadline := time.Now().Add(time.Minute)
		for {
			if code, _, err := g.get("e2e-esm", path); err != nil || code != 200 {
				t.Logf("GET %s: %d %v", path, code, err)
			}
			ok := eval[bool](b, `[...document.querySelectorAll('#tail-events .tail-event')].some(e => e.innerText.includes(`+jsString(path)+`) && e.innerText.includes(`+jsString("esm handled "+path)+`))`)
			if ok {
				break
			}
			if time.Now().After(deadline) {
				b.shot("dashboard-tail-failed")
				t.Fatalf("the tail view shows no event for %s", path)
			}
			time.Sleep(time.Second)
		}
		b.shot("dashboard-tail")
	})

	if errs := b.pageErrors(); len(errs) > 0 {
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

func jsString(s string) string {
	return fmt.Sprintf("%q", s) // Go's quoting is valid JavaScript for these ASCII paths
}

// chromium drives one tab of Debian's headless chromium.
type chromium struct {
	t     *testing.T
	ctx   context.Context
	shots string
	mu    *sync.Mutex
	errs  *[]string
}

// newChromium starts /usr/bin/chromium headless, without sandbox (the suite
// runs as root), GPU, QUIC or any background traffic, on a fresh profile,
// with a laptop-sized window.
func newChromium(t *testing.T, shots string) *chromium {
	t.Helper()
	bin := "/usr/bin/chromium"
	if _, err := os.Stat(bin); err != nil {
		p, lerr := exec.LookPath("chromium")
		if lerr != nil {
			t.Fatalf("chromium: %v (apt-get install chromium)", err)
		}
		bin = p
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin),
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
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	c := &chromium{t: t, ctx: ctx, shots: shots, mu: &sync.Mutex{}, errs: &[]string{}}
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx, chromedp.EmulateViewport(1440, 900)) }() // starts the browser: no timeout on it
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("chromium did not start within a minute")
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
			c.mu.Lock()
			*c.errs = append(*c.errs, msg)
			c.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

// with returns c reporting to a subtest's t.
func (c *chromium) with(t *testing.T) *chromium {
	d := *c
	d.t = t
	return &d
}

func (c *chromium) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		c.shot("dashboard-failed-" + strings.ReplaceAll(what, " ", "-"))
		c.t.Fatalf("%s: %v", what, err)
	}
}

// wait evaluates a JavaScript predicate every 200 ms until it is truthy
// (not chromedp.Poll: its task does not survive the hash changes of the
// dashboard's routes).
func (c *chromium) wait(expr, what string) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	c.shot("dashboard-failed-" + strings.ReplaceAll(what, " ", "-"))
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
	c.t.Fatalf("waiting for %s: %s is not true after 30 s (last error %v)\npage errors: %q\npage text:\n%s", what, expr, last, c.pageErrors(), body)
}

func eval[T any](c *chromium, expr string) T {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		c.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// shot saves a full-page PNG in the artifacts directory.
func (c *chromium) shot(name string) {
	ctx, cancel := context.WithTimeout(c.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		c.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(c.shots, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		c.t.Errorf("save screenshot: %v", err)
		return
	}
	c.t.Logf("screenshot: %s", p)
}

func (c *chromium) pageErrors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), (*c.errs)...)
}
