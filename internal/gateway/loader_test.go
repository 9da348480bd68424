package gateway

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/workerd"
)

func version(script, id string, number int64, bindings ...apiv1.WorkerBinding) *apiv1.WorkerVersion {
	return &apiv1.WorkerVersion{
		ObjectMeta: metav1.ObjectMeta{Name: script + "-v" + id[:1], Namespace: "octo", Labels: map[string]string{apiv1.LabelAccount: acctID, apiv1.LabelScript: script}},
		Spec: apiv1.WorkerVersionSpec{AccountID: acctID, ScriptName: script, VersionID: id, Number: number, MainModule: "index.js",
			Modules: []apiv1.WorkerModule{{Name: "index.js", Type: apiv1.ModuleESModule}}, Bindings: bindings},
	}
}

// redeployed is a release whose newest deployment (to) no pod serves yet,
// after from.
func redeployed(script, from, to string) *apiv1.WorkerRelease {
	rel := release(script, apiv1.VersionTraffic{VersionID: to, Percentage: 100})
	rel.Spec.Deployments = append(rel.Spec.Deployments, apiv1.ReleaseDeployment{ID: "d-old-" + script, Versions: []apiv1.VersionTraffic{{VersionID: from, Percentage: 100}}})
	return rel
}

// TestLoaderServesARedeployUntilItsPodIsReady: the new version of a
// redeploy is sent at once to the loader host of the pod serving the
// previous one, named in the loader's headers; once a pod serves it, that
// pod answers. Versions the loader cannot run, tailed scripts and a failed
// load go to the previous deployment.
func TestLoaderServesARedeployUntilItsPodIsReady(t *testing.T) {
	b1, b2, kvOld := newBackend(t, "v1"), newBackend(t, "v2"), newBackend(t, "kv-v1")
	loader := newBackend(t, "loader")
	var failLoads atomic.Bool
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failLoads.Load() {
			w.Header().Set(workerd.LoaderFailedHeader, "1")
			http.Error(w, "octo: cannot load", http.StatusServiceUnavailable)
			return
		}
		loader.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(failing.Close)
	const v4ID = "44444444-4444-4444-8444-444444444444"
	kv := apiv1.WorkerBinding{Name: "KV", Type: apiv1.BindingKV, NamespaceID: "ns"}
	e := newEnv(t, nil,
		redeployed("hello", v1ID, v2ID), version("hello", v1ID, 1), version("hello", v2ID, 2),
		redeployed("kvs", v3ID, v4ID), version("kvs", v3ID, 1, kv), version("kvs", v4ID, 2, kv))
	old := readyPod("old", map[string]int{v1ID: b1.port(), v3ID: kvOld.port(), workerd.LoaderWorkerName: tcpPort(failing)})
	e.pods.set(old)

	get := func(host string) echoed {
		t.Helper()
		resp, body := e.do(http.MethodGet, host, "/", nil, http.Header{"X-Octo-Version": {"forged"}})
		return e.echoed(resp, body)
	}
	got := get("hello.octo.workers.localhost:8787")
	if got.Backend != "loader" || got.Headers[workerd.LoaderVersionHeader] != v2ID || got.Headers[workerd.LoaderScriptHeader] != "hello" || got.Headers["cf-worker"] != "hello" {
		t.Fatalf("redeploy before its pod: backend %s headers %v, want the loader asked for hello %s", got.Backend, got.Headers, v2ID)
	}
	// A version with a KV binding waits for its pod; the client's forged
	// loader header never reaches a Worker.
	got = get("kvs.octo.workers.localhost:8787")
	if got.Backend != "kv-v1" || got.Headers[workerd.LoaderVersionHeader] != "" {
		t.Fatalf("KV version: backend %s headers %v, want the previous deployment without loader headers", got.Backend, got.Headers)
	}
	// A failed load is retried on the previous deployment.
	failLoads.Store(true)
	got = get("hello.octo.workers.localhost:8787")
	if got.Backend != "v1" || got.Headers[workerd.LoaderVersionHeader] != "" {
		t.Fatalf("failed load: backend %s headers %v, want v1 without loader headers", got.Backend, got.Headers)
	}
	failLoads.Store(false)
	// The new pod serves v2: the loader is not asked any more.
	e.pods.set(old, readyPod("new", map[string]int{v2ID: b2.port(), workerd.LoaderWorkerName: tcpPort(failing)}))
	before := loader.count()
	for range 5 {
		if got := get("hello.octo.workers.localhost:8787"); got.Backend != "v2" {
			t.Fatalf("after the rollout: backend %s, want v2", got.Backend)
		}
	}
	if loader.count() != before {
		t.Errorf("the loader was asked after the rollout")
	}
}

// TestLoaderOff: with NoLoader the previous deployment serves until the
// new pod is ready.
func TestLoaderOff(t *testing.T) {
	b1, loader := newBackend(t, "v1"), newBackend(t, "loader")
	e := newEnv(t, nil, redeployed("hello", v1ID, v2ID), version("hello", v1ID, 1), version("hello", v2ID, 2))
	e.gw.noLoader = true
	e.pods.set(readyPod("old", map[string]int{v1ID: b1.port(), workerd.LoaderWorkerName: loader.port()}))
	resp, body := e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, nil)
	if got := e.echoed(resp, body); got.Backend != "v1" {
		t.Fatalf("backend %s, want v1", got.Backend)
	}
}

// TestTracedByLoader: while someone tails a script, a version the loader
// can run is traced by the loader host (its traced twin, named as the
// static Worker); one it cannot run by its static twin.
func TestTracedByLoader(t *testing.T) {
	twin, loader := newBackend(t, "kv-twin"), newBackend(t, "loader")
	kv := apiv1.WorkerBinding{Name: "KV", Type: apiv1.BindingKV, NamespaceID: "ns"}
	e := newEnv(t, nil,
		release("hello", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100}), version("hello", v1ID, 1),
		redeployed("fresh", v2ID, v3ID), version("fresh", v2ID, 1), version("fresh", v3ID, 2),
		release("kvs", apiv1.VersionTraffic{VersionID: "44444444-4444-4444-8444-444444444444", Percentage: 100}),
		version("kvs", "44444444-4444-4444-8444-444444444444", 1, kv))
	e.gw.watched = func(string, string) bool { return true }
	e.pods.set(readyPod("octo-1", map[string]int{
		v1ID: 9, v2ID: 10, "44444444-4444-4444-8444-444444444444": twin.port() - workerd.TracedPortOffset,
		workerd.LoaderWorkerName: loader.port(),
	}))
	for host, want := range map[string][3]string{
		"hello": {"loader", v1ID, workerd.ServiceName("hello", v1ID)},
		"fresh": {"loader", v3ID, workerd.ServiceName("fresh", v3ID)}, // a traced redeploy
		"kvs":   {"kv-twin", "", ""},
	} {
		resp, body := e.do(http.MethodGet, host+".octo.workers.localhost:8787", "/", nil, http.Header{"X-Octo-Trace": {"forged"}})
		got := e.echoed(resp, body)
		if got.Backend != want[0] || got.Headers[workerd.LoaderVersionHeader] != want[1] || got.Headers[workerd.LoaderTraceHeader] != want[2] {
			t.Errorf("%s: backend %s version %q trace %q, want %v", host, got.Backend,
				got.Headers[workerd.LoaderVersionHeader], got.Headers[workerd.LoaderTraceHeader], want)
		}
	}
}

func tcpPort(s *httptest.Server) int { return s.Listener.Addr().(*net.TCPAddr).Port }

// TestTracedLoadFailsUntraced: when the loader host cannot load a traced
// twin, the request is answered by the same pod's untraced Worker.
func TestTracedLoadFailsUntraced(t *testing.T) {
	b1 := newBackend(t, "v1")
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(workerd.LoaderFailedHeader, "1")
		http.Error(w, "octo: cannot load", http.StatusServiceUnavailable)
	}))
	t.Cleanup(failing.Close)
	e := newEnv(t, nil, release("hello", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100}), version("hello", v1ID, 1))
	e.gw.watched = func(string, string) bool { return true }
	e.pods.set(readyPod("octo-1", map[string]int{v1ID: b1.port(), workerd.LoaderWorkerName: tcpPort(failing)}))
	resp, body := e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, nil)
	if got := e.echoed(resp, body); got.Backend != "v1" || got.Headers[workerd.LoaderTraceHeader] != "" {
		t.Fatalf("backend %s headers %v, want the untraced v1 without loader headers", got.Backend, got.Headers)
	}
}
