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
