package gateway

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/metrics"
)

// BenchmarkServeHTTP measures the gateway's own cost per request (routing,
// header rewriting, the reverse proxy) against a trivial backend, with the
// routing memoised as in a cluster (Changes), with and without the request
// metrics (Options.Metrics). Compare allocs/op with
// BenchmarkMinimalProxy, the reference proxy of `make bench-load`.
func BenchmarkServeHTTP(b *testing.B) {
	b.Run("metrics", func(b *testing.B) { benchServeHTTP(b, metrics.New(0, nil)) })
	b.Run("no-metrics", func(b *testing.B) { benchServeHTTP(b, nil) })
}

// benchServeHTTP is one request through the gateway, counted by rec (nil:
// not counted).
func benchServeHTTP(b *testing.B, rec *metrics.Recorder) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello\n") }))
	defer backend.Close()
	e := newEnv(b, nil, release("hello", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100}))
	e.gw.changes = &Changes{}
	e.gw.metrics = rec
	e.pods.set(readyPod("octo-1", map[string]int{v1ID: backend.Listener.Addr().(*net.TCPAddr).Port}))
	req := httptest.NewRequest(http.MethodGet, "http://hello.octo.workers.localhost:8787/", nil)
	req.RemoteAddr = "127.0.0.1:5555"
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		e.gw.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// BenchmarkMinimalProxy is the reference: httputil.ReverseProxy to the same
// kind of backend, nothing else.
func BenchmarkMinimalProxy(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello\n") }))
	defer backend.Close()
	u, _ := url.Parse(backend.URL)
	p := httputil.NewSingleHostReverseProxy(u)
	p.Transport = &http.Transport{MaxIdleConnsPerHost: 256}
	req := httptest.NewRequest(http.MethodGet, "http://hello.octo.workers.localhost:8787/", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		p.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
