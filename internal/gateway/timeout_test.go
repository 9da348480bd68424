package gateway

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
)

// TestResponseHeaderTimeout: a Worker that takes the request and never
// answers gets a 504 (Cloudflare's 524 timeout) once the transport stops
// waiting for its headers.
func TestResponseHeaderTimeout(t *testing.T) {
	if got := NewTransport().ResponseHeaderTimeout; got != ResponseHeaderTimeout || got < 30*time.Second {
		t.Fatalf("NewTransport().ResponseHeaderTimeout = %v, want %v", got, ResponseHeaderTimeout)
	}
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hang) })

	scheme := runtime.NewScheme()
	if err := apiv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(release("hang", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100})).Build()
	pods := &fakePods{}
	pods.set(readyPod("octo-1", map[string]int{v1ID: srv.Listener.Addr().(*net.TCPAddr).Port}))
	tr := NewTransport()
	tr.ResponseHeaderTimeout = 200 * time.Millisecond
	gw := New(Options{Accounts: store.StaticAccounts{account}, Reader: c, Pods: pods, Transport: tr})
	front := httptest.NewServer(gw)
	t.Cleanup(front.Close)
	e := &env{t: t, gw: gw, k8s: c, pods: pods, srv: front}

	start := time.Now()
	resp, body := e.do(http.MethodGet, "hang.octo.workers.localhost:8787", "/", nil, nil)
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "524") || !strings.Contains(body, "hang") {
		t.Errorf("hanging worker: %d %q, want 504 with error code 524", resp.StatusCode, body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("answered after %v", d)
	}
}
