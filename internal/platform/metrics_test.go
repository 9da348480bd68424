package platform

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/octohq/octo/internal/metrics"
)

// TestGatewayMetrics: the gateway's counts reach the daemon through the
// socket (series and Prometheus families) and outlive the process through
// the file.
func TestGatewayMetrics(t *testing.T) {
	dir := t.TempDir()
	cfg := GatewayMetrics{File: filepath.Join(dir, "metrics", "requests.json"), Socket: filepath.Join(dir, "m.sock")}
	rec := metrics.New(0, nil)
	stop, err := startMetrics(context.Background(), cfg, rec, slog.New(slog.DiscardHandler))
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
