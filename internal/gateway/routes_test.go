package gateway

import (
	"context"
	"net/http"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
)

// TestRoutesFollowChanges: with Changes, the gateway reuses an account's
// ready pods and a host's deployments until the informers report a change.
func TestRoutesFollowChanges(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	e := newEnv(t, nil, release("hello", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100}))
	ch := &Changes{}
	e.gw.changes = ch
	host := "hello.octo.workers.localhost"
	e.pods.set(readyPod("octo-a", map[string]int{v1ID: a.port()}))
	if got := e.echoed(e.do(http.MethodGet, host, "/", nil, nil)); got.Backend != "a" {
		t.Fatalf("first request went to %s", got.Backend)
	}
	e.pods.set(readyPod("octo-b", map[string]int{v1ID: b.port()}))
	if got := e.echoed(e.do(http.MethodGet, host, "/", nil, nil)); got.Backend != "a" {
		t.Fatalf("without a change the pods were read again: %s", got.Backend)
	}
	ch.PodsChanged()
	if got := e.echoed(e.do(http.MethodGet, host, "/", nil, nil)); got.Backend != "b" {
		t.Fatalf("after a pod change the request went to %s", got.Backend)
	}

	// A new deployment of the script is seen after a release change.
	e.pods.set(readyPod("octo-b", map[string]int{v1ID: b.port(), v2ID: a.port()}))
	ch.PodsChanged()
	var cur apiv1.WorkerRelease
	if err := e.k8s.Get(context.Background(), client.ObjectKeyFromObject(release("hello")), &cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec = release("hello", apiv1.VersionTraffic{VersionID: v2ID, Percentage: 100}).Spec
	if err := e.k8s.Update(context.Background(), &cur); err != nil {
		t.Fatal(err)
	}
	if got := e.echoed(e.do(http.MethodGet, host, "/", nil, nil)); got.Backend != "b" {
		t.Fatalf("without a release change the deployment was read again: %s", got.Backend)
	}
	ch.ReleasesChanged()
	if got := e.echoed(e.do(http.MethodGet, host, "/", nil, nil)); got.Backend != "a" {
		t.Fatalf("after a release change the request went to %s, want v2's socket", got.Backend)
	}
}
