// Package webtest drives one tab of Debian's headless Chromium with chromedp
// for the dashboard's browser tests: the web package's test on fakes and the
// e2e test on a running octo.
package webtest

import (
	"context"
	"encoding/json"
	"errors"
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

// ChromiumPath finds Chromium: $OCTO_CHROMIUM, then Debian's package
// (apt-get install chromium).
func ChromiumPath() (string, error) {
	if p := os.Getenv("OCTO_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p, nil
	}
	return "", errors.New("chromium is not installed (apt-get install chromium)")
}

// Browser is one headless tab. Failures are reported to T; With gives a copy
// for a subtest.
type Browser struct {
	T *testing.T
	// Shots is where Shot saves screenshots; FailPrefix names the screenshot
	// taken when a step fails.
	Shots, FailPrefix string
	// Timeout bounds Wait.
	Timeout time.Duration

	ctx  context.Context
	mu   *sync.Mutex
	errs *[]string // uncaught exceptions and console errors of the page
}

// New starts Chromium at bin headless, without sandbox (tests run as
// root), GPU, QUIC or any background traffic, on a fresh profile, with a
// laptop-sized window; it stops with the test.
func New(t *testing.T, bin, shots, failPrefix string, timeout time.Duration) *Browser {
	t.Helper()
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
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	b := &Browser{T: t, Shots: shots, FailPrefix: failPrefix, Timeout: timeout, ctx: ctx, mu: &sync.Mutex{}, errs: &[]string{}}
	// The first run starts the browser: no timeout on it (it would stop the
	// browser); it must not hang either.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx, chromedp.EmulateViewport(1440, 900)) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("chromium did not start within a minute")
	}
	if err := chromedp.Listen(ctx, b.recordError); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *Browser) recordError(ev any) {
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
		*b.errs = append(*b.errs, msg)
		b.mu.Unlock()
	}
}

// With returns b reporting to a subtest's t.
func (b *Browser) With(t *testing.T) *Browser {
	c := *b
	c.T = t
	return &c
}

// Do runs steps within 30 s, failing the test with a screenshot otherwise.
func (b *Browser) Do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.Shot(b.FailPrefix + strings.ReplaceAll(what, " ", "-"))
		b.T.Fatalf("%s: %v", what, err)
	}
}

// Wait evaluates a JavaScript predicate afresh every 100 ms until it is
// truthy (not chromedp.Poll: its task does not survive the hash changes of
// the dashboard's routes).
func (b *Browser) Wait(expr, what string) {
	b.T.Helper()
	deadline := time.Now().Add(b.Timeout)
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
	b.Shot(b.FailPrefix + strings.ReplaceAll(what, " ", "-"))
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
	b.T.Fatalf("waiting for %s: %s is not true after %s (last error %v)\npage errors: %q\npage text:\n%s",
		what, expr, b.Timeout, last, b.PageErrors(), body)
}

// Eval evaluates a JavaScript expression.
func Eval[T any](b *Browser, expr string) T {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.T.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// Shot saves a full-page PNG as <Shots>/<name>.png.
func (b *Browser) Shot(name string) {
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.T.Logf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(b.Shots, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.T.Errorf("save screenshot: %v", err)
		return
	}
	b.T.Logf("screenshot: %s", p)
}

// PageErrors are the page's uncaught exceptions and console errors so far.
func (b *Browser) PageErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), (*b.errs)...)
}

// JS quotes s as a JavaScript string literal.
func JS(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}
