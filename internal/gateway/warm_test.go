package gateway

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/warmstart"
	"github.com/octohq/octo/internal/workerd"
)

// unixBackend is a testBackend served on a unix socket in dir.
func unixBackend(t *testing.T, dir, name string) (*testBackend, string) {
	t.Helper()
	b := newBackend(t, name)
	sock := filepath.Join(dir, name+".sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(b.srv.Config.Handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return b, sock
}

// TestWarmHostsServeUntilThePodsDo: a version the warm-start hosts hold is
// sent, while no pod serves its script, to the host warmstart.HostIndex
// names, with its account, script and version; a client cannot forge those
// headers or a preload. Versions the snapshot lacks wait for their pods,
// and once a pod serves, or the hosts are gone, the hosts are not asked.
func TestWarmHostsServeUntilThePodsDo(t *testing.T) {
	dir := t.TempDir()
	w0, s0 := unixBackend(t, dir, "warm0")
	w1, s1 := unixBackend(t, dir, "warm1")
	hosts := []*testBackend{w0, w1}
	pod := newBackend(t, "pod")
	scheme := runtime.NewScheme()
	if err := apiv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		release("hello", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100}), version("hello", v1ID, 1),
		release("fresh", apiv1.VersionTraffic{VersionID: v2ID, Percentage: 100}), version("fresh", v2ID, 1),
	).Build()
	pods := &fakePods{}
	gw := New(Options{Accounts: store.StaticAccounts{account}, Reader: c, Pods: pods, EdgePort: 8787,
		Warm: &Warm{Sockets: []string{s0, s1}, Entries: []warmstart.Entry{
			{Account: acctID, Script: "hello", Version: v1ID},
			{Account: "another", Script: "fresh", Version: v2ID}, // not this account's
		}}})
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	e := &env{t: t, gw: gw, k8s: c, pods: pods, srv: srv}
	forged := http.Header{
		http.CanonicalHeaderKey(workerd.LoaderAccountHeader): {"forged"},
		http.CanonicalHeaderKey(workerd.LoaderPreloadHeader): {"1"},
	}

	resp, body := e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, forged)
	got := e.echoed(resp, body)
	want := hosts[warmstart.HostIndex(v1ID, 2)].name
	if got.Backend != want || got.Headers[workerd.LoaderVersionHeader] != v1ID || got.Headers[workerd.LoaderScriptHeader] != "hello" ||
		got.Headers[workerd.LoaderAccountHeader] != acctID || got.Headers[workerd.LoaderPreloadHeader] != "" {
		t.Fatalf("no pod yet: backend %s headers %v, want %s asked for hello %s of %s, no preload", got.Backend, got.Headers, want, v1ID, acctID)
	}
	// The snapshot holds "fresh" under another account only: it waits.
	if resp, _ := e.do(http.MethodGet, "fresh.octo.workers.localhost:8787", "/", nil, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a version the hosts do not hold for this account: %s, want 503 (its pod is starting)", resp.Status)
	}
	// A pod serves hello: the hosts still do until they retire (the pods
	// yield the CPU meanwhile), but for a traced request, which the pod
	// traces.
	e.pods.set(readyPod("p", map[string]int{v1ID: pod.port()}))
	resp, body = e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, forged)
	if got := e.echoed(resp, body); got.Backend != want {
		t.Fatalf("a pod serves, the hosts have not retired: backend %s, want %s", got.Backend, want)
	}
	// The traced twin listens TracedPortOffset above the Worker's port.
	if plain := pod.port() - workerd.TracedPortOffset; plain >= 1024 {
		e.pods.set(readyPod("p", map[string]int{v1ID: plain}))
		gw.watched = func(account, script string) bool { return script == "hello" }
		resp, body = e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, forged)
		if got := e.echoed(resp, body); got.Backend != "pod" || got.Headers[workerd.LoaderAccountHeader] != "" || got.Headers[workerd.LoaderPreloadHeader] != "" {
			t.Fatalf("traced, a pod serves: backend %s headers %v, want the pod's traced twin, without the hosts' headers", got.Backend, got.Headers)
		}
		gw.watched = nil
		e.pods.set(readyPod("p", map[string]int{v1ID: pod.port()}))
	}
	// Retired hosts (their sockets gone) are not asked again: the pod
	// serves, and without it, the request waits.
	for _, s := range []string{s0, s1} {
		if err := os.Remove(s); err != nil {
			t.Fatal(err)
		}
	}
	before := w0.count() + w1.count()
	resp, body = e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, forged)
	if got := e.echoed(resp, body); got.Backend != "pod" {
		t.Fatalf("hosts retired: backend %s, want the pod", got.Backend)
	}
	e.pods.set()
	if resp, _ := e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("hosts retired, no pod: %s, want 503", resp.Status)
	}
	if n := w0.count() + w1.count(); n != before {
		t.Errorf("the hosts were asked %d more times after they retired", n-before)
	}
}

// TestStartingServesTheSnapshotFirst: while the cache syncs, a script the
// snapshot holds one version of, under its account's subdomain, is served
// by its warm-start host; a gradual deployment, an entry without a
// subdomain and a script the snapshot lacks wait for the synced gateway,
// which then serves every request; without it, they get 503 after
// StartWait.
func TestStartingServesTheSnapshotFirst(t *testing.T) {
	dir := t.TempDir()
	w0, s0 := unixBackend(t, dir, "warm0")
	w1, s1 := unixBackend(t, dir, "warm1")
	hosts := []*testBackend{w0, w1}
	warm := &Warm{Sockets: []string{s0, s1}, Entries: []warmstart.Entry{
		{Account: acctID, Subdomain: "octo", Script: "hello", Version: v1ID},
		{Account: acctID, Subdomain: "octo", Script: "split", Version: v2ID}, // two versions: the cache has the shares
		{Account: acctID, Subdomain: "octo", Script: "split", Version: v3ID},
		{Account: acctID, Script: "nosub", Version: v3ID}, // its subdomain was claimed twice
	}}
	starting := NewStarting(Options{EdgePort: 8787, StartWait: 5 * time.Second, Warm: warm})
	srv := httptest.NewServer(starting)
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv}

	resp, body := e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, nil)
	got := e.echoed(resp, body)
	if want := hosts[warmstart.HostIndex(v1ID, 2)].name; got.Backend != want || got.Headers[workerd.LoaderVersionHeader] != v1ID ||
		got.Headers[workerd.LoaderAccountHeader] != acctID {
		t.Fatalf("before the cache syncs: backend %s headers %v, want %s asked for hello %s of %s", got.Backend, got.Headers, want, v1ID, acctID)
	}
	if resp.Header.Get("Cf-Ray") == "" {
		t.Errorf("no Cf-Ray on a warm answer")
	}

	// The others wait for the synced gateway, then its pod answers.
	pod := newBackend(t, "pod")
	scheme := runtime.NewScheme()
	if err := apiv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		release("split", apiv1.VersionTraffic{VersionID: v2ID, Percentage: 50}, apiv1.VersionTraffic{VersionID: v3ID, Percentage: 50}),
		version("split", v2ID, 1), version("split", v3ID, 2),
		release("nosub", apiv1.VersionTraffic{VersionID: v3ID, Percentage: 100}), version("nosub", v3ID, 1),
		release("fresh", apiv1.VersionTraffic{VersionID: v2ID, Percentage: 100}), version("fresh", v2ID, 1),
	).Build()
	pods := &fakePods{}
	pods.set(readyPod("p", map[string]int{v2ID: pod.port(), v3ID: pod.port()}))
	before := w0.count() + w1.count()
	answered := make(chan string, 3)
	for _, script := range []string{"split", "nosub", "fresh"} {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
			req.Host = script + ".octo.workers.localhost:8787"
			resp, err := srv.Client().Do(req)
			if err != nil {
				answered <- script + ": " + err.Error()
				return
			}
			defer resp.Body.Close()
			answered <- script + ": " + resp.Header.Get("X-Backend")
		}()
	}
	select {
	case a := <-answered:
		t.Fatalf("answered before the cache synced: %s", a)
	case <-time.After(200 * time.Millisecond):
	}
	if n := w0.count() + w1.count(); n != before {
		t.Errorf("the hosts were asked %d times, before the cache synced, for versions they may not serve early", n-before)
	}
	starting.Serve(New(Options{Accounts: store.StaticAccounts{account}, Reader: c, Pods: pods, EdgePort: 8787, Warm: warm}))
	// Then the synced gateway sends what the hosts hold to them, and the
	// rest to its pod.
	got2 := map[string]string{}
	for range 3 {
		a := <-answered
		script, backend, _ := strings.Cut(a, ": ")
		got2[script] = backend
	}
	if got2["fresh"] != "pod" || !strings.HasPrefix(got2["split"], "warm") || !strings.HasPrefix(got2["nosub"], "warm") {
		t.Errorf("once synced: %v, want fresh from the pod, split and nosub from their hosts", got2)
	}

	// Without a synced gateway, a request waits StartWait, then gets 503.
	waiting := NewStarting(Options{EdgePort: 8787, StartWait: 50 * time.Millisecond, Warm: warm})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "http://fresh.octo.workers.localhost:8787/", nil)
	waiting.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("no synced gateway: %d %v, want 503 with Retry-After", rec.Code, rec.Header())
	}
}

// TestStartingBoundsItsWaiters: while the cache syncs, at most
// MaxStartWaiters requests wait for it; the next is told to retry at once.
func TestStartingBoundsItsWaiters(t *testing.T) {
	starting := NewStarting(Options{EdgePort: 8787, StartWait: time.Minute})
	starting.waiters = make(chan struct{}, 1) // MaxStartWaiters, scaled down
	ctx, cancel := context.WithCancel(t.Context())
	waiting := make(chan struct{})
	go func() {
		defer close(waiting)
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
		req.Host = "fresh.octo.workers.localhost:8787"
		starting.ServeHTTP(httptest.NewRecorder(), req)
	}()
	for len(starting.waiters) == 0 {
		time.Sleep(time.Millisecond)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Host = "other.octo.workers.localhost:8787"
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { defer close(done); starting.ServeHTTP(rec, req) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a request beyond the waiters' bound waited")
	}
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("beyond the bound: %d, Retry-After %q; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	cancel() // the waiting client goes away and frees its slot
	<-waiting
	if n := len(starting.waiters); n != 0 {
		t.Errorf("%d slots still taken after the waiter left", n)
	}
}
