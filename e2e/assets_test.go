//go:build e2e

package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fetch sends one request to script without following redirects and
// returns the response with its body read.
func (g *gatewayClient) fetch(t *testing.T, method, script, path string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+g.edge+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = g.host(script)
	for k, v := range hdr {
		req.Header[k] = v
	}
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var scriptSrc = regexp.MustCompile(`src="(/assets/index-[^"]+\.js)"`)

// staticAssets is TestWorkers' static-assets step: a Vite + React app
// (create-vite's react template, built offline with the pinned vite) is
// deployed by wrangler as an assets-only Worker and served as a
// single-page application; a Worker with assets answers from its files
// first (with its _headers, after its _redirects), keeps /api/*
// (run_worker_first) and the misses, and reads files through its ASSETS
// binding; a second deploy uploads nothing.
func staticAssets(t *testing.T, w *wranglerCLI, g *gatewayClient, work string) (spaDir, workerDir string) {
	spaDir = copyProject(t, "react-spa", filepath.Join(work, "react-spa"))
	nm, _ := filepath.Abs("node_modules")
	if err := os.Symlink(nm, filepath.Join(spaDir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("node", filepath.Join(nm, "vite", "bin", "vite.js"), "build")
	build.Dir = spaDir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("vite build: %v\n%s", err, out)
	}
	out := w.must(t, spaDir, "", "deploy")
	if !strings.Contains(out, "e2e-react-spa") {
		t.Errorf("wrangler deploy printed:\n%s", out)
	}
	index, _ := os.ReadFile(filepath.Join(spaDir, "dist", "index.html"))
	g.waitBody(t, "e2e-react-spa", "/", string(index))
	m := scriptSrc.FindStringSubmatch(string(index))
	if m == nil {
		t.Fatalf("dist/index.html names no script:\n%s", index)
	}
	resp, js := g.fetch(t, http.MethodGet, "e2e-react-spa", m[1], nil)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") || !strings.Contains(js, "octo react spa") {
		t.Errorf("GET %s: %d %s, %d bytes", m[1], resp.StatusCode, resp.Header.Get("Content-Type"), len(js))
	}
	etag := resp.Header.Get("ETag")
	if resp, body := g.fetch(t, http.MethodGet, "e2e-react-spa", m[1], http.Header{"If-None-Match": {etag}}); etag == "" || resp.StatusCode != 304 || body != "" {
		t.Errorf("conditional GET with ETag %q: %d %q", etag, resp.StatusCode, body)
	}
	// A client-side route answers the app (single-page-application).
	if resp, body := g.fetch(t, http.MethodGet, "e2e-react-spa", "/settings/profile", nil); resp.StatusCode != 200 || body != string(index) {
		t.Errorf("SPA route: %d %q", resp.StatusCode, body)
	}
	if resp, _ := g.fetch(t, http.MethodGet, "e2e-react-spa", "/index.html", nil); resp.StatusCode != 307 || resp.Header.Get("Location") != "/" {
		t.Errorf("/index.html: %d Location %q, want 307 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Nothing changed: nothing to upload again.
	if out := w.must(t, spaDir, "", "deploy"); strings.Contains(out, "Uploaded 1 of") || strings.Contains(out, "Uploaded 3 of") {
		t.Errorf("a second deploy uploaded files again:\n%s", out)
	}

	workerDir = copyProject(t, "assets-worker", filepath.Join(work, "assets-worker"))
	w.must(t, workerDir, "", "deploy")
	g.waitBody(t, "e2e-assets-worker", "/from-binding", "binding: docs index")
	for _, tc := range []struct{ path, want string }{
		{"/", "<h1>assets home</h1>\n"},
		{"/style.css", "body { color: teal; }\n"},
		{"/docs/", "docs index\n"},
		{"/api/hello", `{"worker":true,"path":"/api/hello"}`},
		{"/nothing-here", "worker fallback /nothing-here"},
		{"/missing-via-binding", "binding status 404: not found page"},
	} {
		if resp, body := g.fetch(t, http.MethodGet, "e2e-assets-worker", tc.path, nil); resp.StatusCode != 200 || body != tc.want {
			t.Errorf("GET %s: %d %q, want %q", tc.path, resp.StatusCode, body, tc.want)
		}
	}
	if resp, _ := g.fetch(t, http.MethodGet, "e2e-assets-worker", "/style.css", nil); !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") ||
		resp.Header.Get("X-Octo-Test") != "styled" {
		t.Errorf("style.css: Content-Type %q, X-Octo-Test %q (from _headers)", resp.Header.Get("Content-Type"), resp.Header.Get("X-Octo-Test"))
	}
	// _redirects, before files and the Worker.
	for path, want := range map[string]string{"/old-home": "/", "/guide/intro": "/docs/intro"} {
		if resp, _ := g.fetch(t, http.MethodGet, "e2e-assets-worker", path, nil); resp.Header.Get("Location") != want || resp.StatusCode/100 != 3 {
			t.Errorf("GET %s: %d Location %q, want a redirect to %s", path, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	return spaDir, workerDir
}

// assetsSurvived is the down-up check: both answer as before.
func assetsSurvived(t *testing.T, g *gatewayClient, spaDir string) {
	index, _ := os.ReadFile(filepath.Join(spaDir, "dist", "index.html"))
	g.waitBody(t, "e2e-react-spa", "/deep/link", string(index))
	g.waitBody(t, "e2e-assets-worker", "/from-binding", "binding: docs index")
}
