package assets

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

var site = map[string]bool{
	"/index.html": true, "/about.html": true, "/blog/index.html": true, "/blog/post.html": true,
	"/style.css": true, "/404.html": true, "/docs/404.html": true, "/docs/a/index.html": true,
}

func has(p string) bool { return site[p] }

func TestResolve(t *testing.T) {
	serve := func(p string) Decision { return Decision{Kind: Serve, Path: p, Status: 200} }
	redirect := func(p string) Decision { return Decision{Kind: Redirect, Location: p, Status: 307} }
	for _, tc := range []struct {
		mode, path string
		want       Decision
	}{
		// auto-trailing-slash (the default)
		{"", "/", serve("/index.html")},
		{"", "/style.css", serve("/style.css")},
		{"", "/about", serve("/about.html")},
		{"", "/about/", redirect("/about")},
		{"", "/about.html", redirect("/about")},
		{"", "/index.html", redirect("/")},
		{"", "/blog", redirect("/blog/")},
		{"", "/blog/", serve("/blog/index.html")},
		{"", "/blog/index.html", redirect("/blog/")},
		{"", "/nope", Decision{}},
		{"", "/style.css/", Decision{}},
		// force-trailing-slash
		{ForceTrailingSlash, "/about", redirect("/about/")},
		{ForceTrailingSlash, "/about/", serve("/about.html")},
		{ForceTrailingSlash, "/about.html", redirect("/about/")},
		{ForceTrailingSlash, "/blog", redirect("/blog/")},
		{ForceTrailingSlash, "/blog/", serve("/blog/index.html")},
		{ForceTrailingSlash, "/", serve("/index.html")},
		// drop-trailing-slash
		{DropTrailingSlash, "/", serve("/index.html")},
		{DropTrailingSlash, "/blog/", redirect("/blog")},
		{DropTrailingSlash, "/blog", serve("/blog/index.html")},
		{DropTrailingSlash, "/blog/index.html", redirect("/blog")},
		{DropTrailingSlash, "/index.html", redirect("/")},
		{DropTrailingSlash, "/about", serve("/about.html")},
		// none: exact paths only
		{NoHTMLHandling, "/about.html", serve("/about.html")},
		{NoHTMLHandling, "/about", Decision{}},
		{NoHTMLHandling, "/", Decision{}},
	} {
		if got := (Config{HTMLHandling: tc.mode}).Resolve(tc.path, has); got != tc.want {
			t.Errorf("%q %s: %+v, want %+v", tc.mode, tc.path, got, tc.want)
		}
	}
}

func TestNotFound(t *testing.T) {
	for _, tc := range []struct {
		mode, path string
		want       Decision
	}{
		{NotFoundSPA, "/app/settings", Decision{Kind: Serve, Path: "/index.html", Status: 200}},
		{NotFound404, "/nope", Decision{Kind: Serve, Path: "/404.html", Status: 404}},
		{NotFound404, "/docs/a/b/nope", Decision{Kind: Serve, Path: "/docs/404.html", Status: 404}},
		{NotFound404, "/blog/nope", Decision{Kind: Serve, Path: "/404.html", Status: 404}},
		{"", "/nope", Decision{}},
		{NotFoundNone, "/nope", Decision{}},
	} {
		if got := (Config{NotFoundHandling: tc.mode}).NotFound(tc.path, has); got != tc.want {
			t.Errorf("%q %s: %+v, want %+v", tc.mode, tc.path, got, tc.want)
		}
	}
	if got := (Config{NotFoundHandling: NotFoundSPA}).NotFound("/x", func(string) bool { return false }); got.Kind != Miss {
		t.Errorf("SPA without index.html = %+v, want a miss", got)
	}
}

func TestWorkerFirst(t *testing.T) {
	c := Config{RunWorkerFirstPaths: []string{"/api/*", "!/api/docs/*", "/auth"}}
	for p, want := range map[string]bool{"/api/x": true, "/api/": true, "/api/docs/a": false, "/auth": true, "/authz": false, "/": false} {
		if got := c.WorkerFirst(p); got != want {
			t.Errorf("WorkerFirst(%s) = %v, want %v", p, got, want)
		}
	}
	if !(Config{RunWorkerFirst: true}).WorkerFirst("/anything") {
		t.Error("run_worker_first = true sends everything to the Worker")
	}
}

func TestWrite(t *testing.T) {
	open := func(ct string) func() (File, error) {
		return func() (File, error) {
			return File{Body: io.NopCloser(strings.NewReader("body")), ContentType: ct, Size: 4}, nil
		}
	}
	do := func(method, inm string, status int, name, ct string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/", nil)
		if inm != "" {
			r.Header.Set("If-None-Match", inm)
		}
		w := httptest.NewRecorder()
		if err := Write(w, r, "0123abcd", status, name, open(ct)); err != nil {
			t.Fatal(err)
		}
		return w
	}
	w := do(http.MethodGet, "", 200, "/a.css", "text/css")
	if w.Code != 200 || w.Body.String() != "body" || w.Header().Get("ETag") != `"0123abcd"` || w.Header().Get("Content-Type") != "text/css" || w.Header().Get("Content-Length") != "4" {
		t.Errorf("GET: %d %q %v", w.Code, w.Body, w.Header())
	}
	if w := do(http.MethodGet, `W/"0123abcd"`, 200, "/a.css", "text/css"); w.Code != 304 || w.Body.Len() != 0 {
		t.Errorf("If-None-Match: %d %q", w.Code, w.Body)
	}
	if w := do(http.MethodHead, "", 200, "/a.css", "text/css"); w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != "4" {
		t.Errorf("HEAD: %d %q", w.Code, w.Body)
	}
	if w := do(http.MethodGet, "", 404, "/404.html", ""); w.Code != 404 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Errorf("404 page: %d %v", w.Code, w.Header())
	}
	if w := do(http.MethodGet, "", 200, "/x.bin", NoContentType); w.Header().Get("Content-Type") != "" {
		t.Errorf("application/null served with Content-Type %q", w.Header().Get("Content-Type"))
	}
}

func TestRedirectsAndHeaders(t *testing.T) {
	redirects, err := ParseRedirects(`# comments and blank lines are skipped

/old /about 301
/blog/:year/:slug /posts/:year-:slug
/docs/* /guide/:splat 308
/app/* /index.html 200
/ext https://example.com/x`)
	if err != nil {
		t.Fatal(err)
	}
	headers, err := ParseHeaders("/*\n  X-Frame-Options: DENY\n/style.css\n  Cache-Control: public, max-age=3600\n  ! X-Frame-Options\n/blog/:slug\n  X-Slug: :slug\n")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Redirects: redirects, Headers: headers}
	content := map[string]string{"/index.html": "home", "/about.html": "about", "/style.css": "css", "/blog/a.html": "a"}
	site := Site{
		Hash: func(p string) (string, bool) { _, ok := content[p]; return "h" + p, ok },
		Open: func(hash string) (File, error) {
			c := content[strings.TrimPrefix(hash, "h")]
			return File{Body: io.NopCloser(strings.NewReader(c)), Size: int64(len(c))}, nil
		},
	}
	for _, tc := range []struct {
		path     string
		status   int
		location string
		body     string
		header   [2]string
	}{
		{"/old?x=1", 301, "/about?x=1", "", [2]string{}},
		{"/blog/2026/hello", 302, "/posts/2026-hello", "", [2]string{}},
		{"/docs/a/b", 308, "/guide/a/b", "", [2]string{}},
		{"/app/settings", 200, "", "home", [2]string{"X-Frame-Options", "DENY"}},
		{"/ext", 302, "https://example.com/x", "", [2]string{}},
		{"/style.css", 200, "", "css", [2]string{"Cache-Control", "public, max-age=3600"}},
		{"/blog/a", 200, "", "a", [2]string{"X-Slug", "a"}},
	} {
		w := httptest.NewRecorder()
		if ok, err := Answer(w, httptest.NewRequest("GET", tc.path, nil), cfg, site, false); !ok || err != nil {
			t.Fatalf("%s: %v %v", tc.path, ok, err)
		}
		if w.Code != tc.status || w.Header().Get("Location") != tc.location || w.Body.String() != tc.body ||
			(tc.header[0] != "" && w.Header().Get(tc.header[0]) != tc.header[1]) {
			t.Errorf("%s: %d %q %q %v", tc.path, w.Code, w.Header().Get("Location"), w.Body, w.Header())
		}
	}
	// A decoded "//host" never becomes a redirect to another site.
	for _, p := range []string{"//evil.example/index.html", "/%2Fevil.example/index.html"} {
		w := httptest.NewRecorder()
		_, _ = Answer(w, httptest.NewRequest("GET", p, nil), Config{}, Site{Hash: func(string) (string, bool) { return "x", true }}, false)
		if loc := w.Header().Get("Location"); strings.HasPrefix(loc, "//") {
			t.Errorf("%s redirects to %q", p, loc)
		}
	}
	w := httptest.NewRecorder()
	_, _ = Answer(w, httptest.NewRequest("GET", "/style.css", nil), cfg, site, false)
	if w.Header().Get("X-Frame-Options") != "" {
		t.Errorf("! X-Frame-Options left %q", w.Header().Get("X-Frame-Options"))
	}
	for _, bad := range []string{"/a", "/a /b 404", "a /b", "/a/*/* /b", "/a /b 200 extra"} {
		if _, err := ParseRedirects(bad); err == nil {
			t.Errorf("ParseRedirects(%q) accepted it", bad)
		}
	}
	if _, err := ParseRedirects("/a https://x 200"); err == nil {
		t.Error("a 200 rewrite to another site was accepted")
	}
	for _, bad := range []string{"  X-A: b", "/a\n  no colon"} {
		if _, err := ParseHeaders(bad); err == nil {
			t.Errorf("ParseHeaders(%q) accepted it", bad)
		}
	}
}
