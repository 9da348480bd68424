package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/metrics"
)

// TestRequestsAreCounted: every request of an existing script counts under
// the version that answered, with its status; a request no pod could take
// counts without a version; a host naming no script counts nowhere.
func TestRequestsAreCounted(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.WriteHeader(code)
	}))
	t.Cleanup(backend.Close)
	u, _ := url.Parse(backend.URL)
	port, _ := strconv.Atoi(u.Port())
	e := newEnv(t, nil, release("hello", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100}))
	rec := metrics.New(0, nil)
	e.gw.metrics = rec
	e.pods.set(readyPod("octo-1", map[string]int{v1ID: port}))
	want := map[int]int{200: 3, 404: 2, 500: 1}
	for code, n := range want {
		for range n {
			if resp, _ := e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/"+strconv.Itoa(code), nil, nil); resp.StatusCode != code {
				t.Fatalf("got %d, want %d", resp.StatusCode, code)
			}
		}
	}
	e.do(http.MethodGet, "nobody.octo.workers.localhost:8787", "/", nil, nil)
	e.pods.set()
	e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, nil) // 503: no pod

	now := time.Now()
	pts := rec.Range(account.ID, "hello", now.Add(-time.Hour), now.Add(time.Hour))
	total := metrics.Total(pts)
	byVersion := map[string]metrics.Counts{}
	for _, p := range pts {
		for v, c := range p.ByVersion {
			x := byVersion[v]
			x.Requests += c.Requests
			for i := range c.Status {
				x.Status[i] += c.Status[i]
			}
			byVersion[v] = x
		}
	}
	v1 := byVersion[v1ID]
	if total.Requests != 7 || v1.Requests != 6 || v1.Status[1] != 3 || v1.Status[3] != 2 || v1.Status[4] != 1 || byVersion[""].Status[4] != 1 {
		t.Errorf("counted %+v, by version %+v", total, byVersion)
	}
	if got := rec.Range(account.ID, "nobody", now.Add(-time.Hour), now.Add(time.Hour)); len(got) != 0 {
		t.Errorf("a host naming no script was counted: %+v", got)
	}
}
