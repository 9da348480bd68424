package gateway

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
)

// fakeAssets is a store.AssetReader over maps.
type fakeAssets struct {
	manifests map[string]store.AssetManifest
	files     map[string]string // hash → content
	types     map[string]string
	opened    int
}

func (f *fakeAssets) Manifest(_ context.Context, account, digest string) (store.AssetManifest, error) {
	m, ok := f.manifests[account+"/"+digest]
	if !ok {
		return nil, store.Errorf(store.NotFound, 0, "no manifest %s", digest)
	}
	return m, nil
}

func (f *fakeAssets) Open(_ context.Context, account, hash string) (io.ReadCloser, string, int64, error) {
	c, ok := f.files[hash]
	if !ok || account != acctID {
		return nil, "", 0, store.ErrBlobNotFound
	}
	f.opened++
	return io.NopCloser(strings.NewReader(c)), f.types[hash], int64(len(c)), nil
}

func assetsVersion(script, id string, a *apiv1.VersionAssets, code bool) *apiv1.WorkerVersion {
	v := &apiv1.WorkerVersion{
		ObjectMeta: metav1.ObjectMeta{Name: script + "-" + id[:4], Namespace: "octo",
			Labels: map[string]string{apiv1.LabelAccount: acctID, apiv1.LabelScript: store.ObjectName(script)}},
		Spec: apiv1.WorkerVersionSpec{AccountID: acctID, ScriptName: script, VersionID: id, Number: 1, Assets: a},
	}
	if code {
		v.Spec.MainModule = "index.js"
		v.Spec.Modules = []apiv1.WorkerModule{{Name: "index.js", Type: apiv1.ModuleESModule}}
	}
	return v
}

const digest = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

// TestStaticAssets: an assets-only Worker is served from its files with
// html_handling and a single-page application's fallback, no pod needed;
// a Worker with assets answers from them first and gets the rest, other
// methods and its run_worker_first paths.
func TestStaticAssets(t *testing.T) {
	src := &fakeAssets{
		manifests: map[string]store.AssetManifest{acctID + "/" + digest: {
			"/index.html": {Hash: "h-index", Size: 9}, "/about.html": {Hash: "h-about", Size: 5}, "/app.js": {Hash: "h-js", Size: 8},
		}},
		files: map[string]string{"h-index": "<h1>spa</", "h-about": "about", "h-js": "alert(1)"},
		types: map[string]string{"h-index": "text/html", "h-about": "text/html", "h-js": "text/javascript"},
	}
	worker := newBackend(t, "app-worker")
	e := newEnv(t, nil,
		release("site", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100}),
		assetsVersion("site", v1ID, &apiv1.VersionAssets{Manifest: digest, Files: 3, NotFoundHandling: "single-page-application"}, false),
		release("app", apiv1.VersionTraffic{VersionID: v2ID, Percentage: 100}),
		assetsVersion("app", v2ID, &apiv1.VersionAssets{Manifest: digest, Files: 3, RunWorkerFirstPaths: []string{"/api/*"}}, true))
	e.gw.assets = src
	e.srv.Client().CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	e.pods.set(readyPod("octo-1", map[string]int{v2ID: worker.port()}))

	for _, tc := range []struct {
		host, method, path string
		status             int
		body, ctype, loc   string
	}{
		{"site", "GET", "/", 200, "<h1>spa</", "text/html", ""},
		{"site", "GET", "/app.js", 200, "alert(1)", "text/javascript", ""},
		{"site", "GET", "/about", 200, "about", "text/html", ""},
		{"site", "GET", "/about.html?x=1", 307, "", "", "/about?x=1"},
		{"site", "GET", "/settings/profile", 200, "<h1>spa</", "text/html", ""}, // the SPA's fallback
		{"site", "HEAD", "/app.js", 200, "", "text/javascript", ""},
		{"site", "POST", "/", 405, "", "", ""},
		{"app", "GET", "/about", 200, "about", "text/html", ""},
		{"app", "GET", "/nope", 200, "", "", ""},   // no file: the Worker
		{"app", "GET", "/api/x", 200, "", "", ""},  // run_worker_first
		{"app", "POST", "/about", 200, "", "", ""}, // other methods: the Worker
	} {
		resp, body := e.do(tc.method, tc.host+".octo.workers.localhost:8787", tc.path, nil, nil)
		if resp.StatusCode != tc.status || (tc.body != "" && body != tc.body) || (tc.ctype != "" && resp.Header.Get("Content-Type") != tc.ctype) ||
			resp.Header.Get("Location") != tc.loc {
			t.Errorf("%s %s %s: %d %q %v, want %d %q %s %s", tc.method, tc.host, tc.path, resp.StatusCode, body, resp.Header, tc.status, tc.body, tc.ctype, tc.loc)
		}
		if tc.host == "app" && tc.body == "" && resp.Header.Get("X-Backend") != "app-worker" {
			t.Errorf("%s %s %s did not reach the Worker: %v", tc.method, tc.host, tc.path, resp.Header)
		}
	}
	// ETag and If-None-Match: a 304 without reading the file.
	resp, _ := e.do("GET", "site.octo.workers.localhost", "/app.js", nil, nil)
	etag := resp.Header.Get("ETag")
	opened := src.opened
	resp, body := e.do("GET", "site.octo.workers.localhost", "/app.js", nil, http.Header{"If-None-Match": {etag}})
	if etag != `"h-js"` || resp.StatusCode != 304 || body != "" || src.opened != opened {
		t.Errorf("conditional GET: etag %q → %d %q (opened %d → %d)", etag, resp.StatusCode, body, opened, src.opened)
	}
	// A file read once is served from memory.
	opened = src.opened
	for range 3 {
		if resp, body := e.do("GET", "site.octo.workers.localhost", "/app.js", nil, nil); resp.StatusCode != 200 || body != "alert(1)" {
			t.Fatalf("cached GET: %d %q", resp.StatusCode, body)
		}
	}
	if src.opened != opened {
		t.Errorf("the store was read %d more times for a cached file", src.opened-opened)
	}
	// Without a store, an assets-only Worker says so.
	e.gw.assets = nil
	if resp, body := e.do("GET", "site.octo.workers.localhost", "/", nil, nil); resp.StatusCode != 503 || !strings.Contains(body, "static assets") {
		t.Errorf("no store: %d %q", resp.StatusCode, body)
	}
}
