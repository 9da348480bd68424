package gateway

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

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
	// A pod serves hello: the hosts are not asked any more.
	e.pods.set(readyPod("p", map[string]int{v1ID: pod.port()}))
	before := w0.count() + w1.count()
	resp, body = e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, forged)
	if got := e.echoed(resp, body); got.Backend != "pod" || got.Headers[workerd.LoaderAccountHeader] != "" || got.Headers[workerd.LoaderPreloadHeader] != "" {
		t.Fatalf("once a pod serves: backend %s headers %v, want the pod, without the hosts' headers", got.Backend, got.Headers)
	}
	// Retired hosts (their sockets gone) are not asked either.
	e.pods.set()
	for _, s := range []string{s0, s1} {
		if err := os.Remove(s); err != nil {
			t.Fatal(err)
		}
	}
	if resp, _ := e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("hosts retired, no pod: %s, want 503", resp.Status)
	}
	if n := w0.count() + w1.count(); n != before {
		t.Errorf("the hosts were asked %d more times after a pod served or they retired", n-before)
	}
}
