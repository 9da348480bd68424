package platform

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/metrics"
)

// TestGatewayMetrics: the gateway's counts reach the daemon through the
// socket (series and Prometheus families) and outlive the process through
// the file.
func TestGatewayMetrics(t *testing.T) {
	dir := t.TempDir()
	cfg := GatewayMetrics{File: filepath.Join(dir, "metrics", "requests.json"), Socket: filepath.Join(dir, "m.sock")}
	rec := metrics.New(0, nil)
	ready := make(chan struct{})
	close(ready)
	stop, err := startMetrics(context.Background(), cfg, rec, slog.New(slog.DiscardHandler), ready)
	if err != nil {
		t.Fatal(err)
	}
	k := metrics.Key{Account: "a", Script: "s", Version: "v"}
	rec.Observe(k, 200, time.Millisecond)
	rec.Observe(k, 500, time.Millisecond)
	c := NewMetricsClient(cfg.Socket)
	now := time.Now()
	pts, err := c.Series(context.Background(), "a", "s", now.Add(-time.Hour), now.Add(time.Minute))
	if err != nil || metrics.Total(pts).Requests != 2 || metrics.Total(pts).Errors() != 1 {
		t.Fatalf("series = %+v, %v", pts, err)
	}
	fams, err := c.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	if !names["octo_worker_requests_total"] || !names["octo_worker_request_duration_seconds"] {
		t.Errorf("families = %v", names)
	}
	stop()
	if _, err := c.Series(context.Background(), "a", "s", now.Add(-time.Hour), now); err == nil {
		t.Error("the socket still answers after stop")
	}
	again := metrics.New(0, nil)
	if err := again.Load(cfg.File); err != nil {
		t.Fatal(err)
	}
	if got := metrics.Total(again.Range("a", "s", now.Add(-time.Hour), now.Add(time.Minute))); got.Requests != 2 {
		t.Errorf("after a restart: %+v", got)
	}
}

// TestGatewayMetricsKeepTheLastRunUntilRead: the last run's minutes are
// read only once ready is closed; a gateway that stops before that leaves
// the file as it was, and requests counted before the read are kept with
// them.
func TestGatewayMetricsKeepTheLastRunUntilRead(t *testing.T) {
	dir := t.TempDir()
	cfg := GatewayMetrics{File: filepath.Join(dir, "requests.json")}
	k := metrics.Key{Account: "a", Script: "s", Version: "v"}
	last := metrics.New(0, nil)
	last.Observe(k, 200, time.Millisecond)
	if err := last.Save(cfg.File); err != nil {
		t.Fatal(err)
	}
	total := func() uint64 {
		r := metrics.New(0, nil)
		if err := r.Load(cfg.File); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		return metrics.Total(r.Range("a", "s", now.Add(-time.Hour), now.Add(time.Minute))).Requests
	}
	log := slog.New(slog.DiscardHandler)

	rec := metrics.New(0, nil)
	stop, err := startMetrics(context.Background(), cfg, rec, log, make(chan struct{}))
	if err != nil {
		t.Fatal(err)
	}
	rec.Observe(k, 200, time.Millisecond)
	stop()
	if got := total(); got != 1 {
		t.Fatalf("after a gateway that stopped before reading the file: %d requests saved, want the last run's 1", got)
	}

	rec = metrics.New(0, nil)
	ready := make(chan struct{})
	stop, err = startMetrics(context.Background(), cfg, rec, log, ready)
	if err != nil {
		t.Fatal(err)
	}
	rec.Observe(k, 200, time.Millisecond)
	close(ready)
	stop()
	if got := total(); got != 2 {
		t.Fatalf("after a gateway that read the file: %d requests saved, want 2 (the last run's and its own)", got)
	}

	// Asked for a series before its cache synced, the gateway reads the
	// file first: the dashboard sees the last run's requests at once.
	cfg.Socket = filepath.Join(dir, "m.sock")
	rec = metrics.New(0, nil)
	stop, err = startMetrics(context.Background(), cfg, rec, log, make(chan struct{}))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	now := time.Now()
	pts, err := NewMetricsClient(cfg.Socket).Series(context.Background(), "a", "s", now.Add(-time.Hour), now.Add(time.Minute))
	if err != nil || metrics.Total(pts).Requests != 2 {
		t.Fatalf("series before the cache synced: %+v, %v; want the 2 requests saved before", pts, err)
	}
}

// TestPodRestarts sums the container restarts of each bundle's pods.
func TestPodRestarts(t *testing.T) {
	pod := func(name, bundle string, restarts int32) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "octo"}}
		if bundle != "" {
			p.Labels = map[string]string{apiv1.LabelBundle: bundle}
		}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "workerd", RestartCount: restarts}}
		return p
	}
	c := fake.NewClientBuilder().WithObjects(pod("a-1", "octo", 2), pod("a-2", "octo", 1), pod("b-1", "octo-1", 0), pod("other", "", 9)).Build()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(podRestarts{c: c})
	want := `
# HELP octo_bundle_container_restarts Container restarts of the pods of a WorkerBundle (workerd crashed, ran out of memory or was ended for a runaway request).
# TYPE octo_bundle_container_restarts gauge
octo_bundle_container_restarts{bundle="octo",namespace="octo"} 3
octo_bundle_container_restarts{bundle="octo-1",namespace="octo"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
