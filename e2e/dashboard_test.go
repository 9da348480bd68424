//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
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
// versions, and e2e-vars), nothing answers without a session (nor holds a
// secret, even to a local user that is not root), the login link `octo
// dashboard` prints logs the browser in once, the overview shows every part
// healthy, the worker page lists both versions, a rollback click changes
// what the worker URL answers, and the live tail shows a fresh request.
// Screenshots are saved in e2e/artifacts/ (gitignored).
func TestDashboard(t *testing.T) {
	e := bootOcto(t)
	vars := parseEnv(t, e.mustOcto("env"))
	w := newWrangler(t, vars) // 4.86: `deploy --message` came with wrangler 4
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
	secrets := []string{vars["CLOUDFLARE_API_TOKEN"], vars["AWS_SECRET_ACCESS_KEY"]}

	// Without a session (any local user): 401, no secret, no CSRF token.
	t.Run("no-session", func(t *testing.T) {
		for _, path := range []string{"", "dashboard/api/overview", "dashboard/api/workers", "dashboard/api/tail/" + account + "/e2e-esm"} {
			code, body := httpGet(t, base+path)
			if code != http.StatusUnauthorized || !strings.Contains(body, "sudo octo dashboard") || strings.Contains(body, "octo-token") {
				t.Errorf("GET /%s without a session = %d\n%s", path, code, body)
			}
			for _, s := range secrets {
				if strings.Contains(body, s) {
					t.Errorf("GET /%s without a session answers a secret", path)
				}
			}
		}
		req, err := http.NewRequest(http.MethodPost, base+"dashboard/api/actions/rollback", strings.NewReader(`{"script":"e2e-esm","version":"`+v1+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("rollback without a session = %d", resp.StatusCode)
		}
		// The attack as reported: curl as nobody.
		if _, err := exec.LookPath("curl"); err != nil {
			t.Skip("no curl: skipping the check as user nobody")
		}
		for _, path := range []string{"dashboard/api/overview", ""} {
			cmd := fmt.Sprintf("curl -s -w '\\n%%{http_code}' %s", base+path)
			out, err := exec.Command("su", "-s", "/bin/sh", "nobody", "-c", cmd).CombinedOutput()
			if err != nil {
				t.Fatalf("su nobody -c %q: %v\n%s", cmd, err, out)
			}
			if !strings.HasSuffix(strings.TrimSpace(string(out)), "401") {
				t.Errorf("as nobody, %s answers\n%s", cmd, out)
			}
			for _, s := range secrets {
				if strings.Contains(string(out), s) {
					t.Errorf("as nobody, %s answers a secret", cmd)
				}
			}
		}
	})

	// The login link `sudo octo dashboard` prints.
	login := ""
	for _, line := range strings.Split(e.mustOcto("dashboard"), "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, base+"login?token=") {
			login = l
		}
	}
	if login == "" {
		t.Fatalf("octo dashboard printed no login link for %s", base)
	}

	b := newChromium(t, shots)

	t.Run("overview", func(t *testing.T) {
		b := b.With(t)
		b.Do("log in", chromedp.Navigate(login))
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
		if got := webtest.Eval[string](b, `document.querySelector('#env-vars').textContent`); !strings.Contains(got, "CLOUDFLARE_API_TOKEN") {
			t.Errorf("env vars = %q", got)
		}
		html := webtest.Eval[string](b, `document.documentElement.outerHTML`)
		for _, s := range secrets {
			if strings.Contains(html, s) {
				t.Error("the overview shows a secret of octo env")
			}
		}
		// The link worked once.
		if code, _ := httpGet(t, login); code != http.StatusUnauthorized {
			t.Errorf("the login link a second time = %d, want 401", code)
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

// httpGet GETs url without following redirects and returns the status and
// the body.
func httpGet(t *testing.T, u string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
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
