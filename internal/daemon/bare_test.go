package daemon

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/octohq/octo/internal/config"
)

// TestBareClusterLeavesThePlatformOut: with config.BareCluster the daemon
// runs the cluster (with its DNS and volumes), S3 and the registry, and
// none of the Workers platform's parts.
func TestBareClusterLeavesThePlatformOut(t *testing.T) {
	cfg := config.Default(t.TempDir())
	cfg.NodeName, cfg.NodeIP, cfg.BareCluster = "node", "192.0.2.1", true
	d, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range d.status.Components {
		names = append(names, c.Name)
	}
	for _, want := range []string{"kine", "kube-apiserver", "kubelet", "containerd", "s3", "registry", "coredns", "local-path"} {
		if !slices.Contains(names, want) {
			t.Errorf("components %v lack %s", names, want)
		}
	}
	for _, platform := range []string{"services", "edge", "gateway", "pod-api", "operators"} {
		if slices.Contains(names, platform) {
			t.Errorf("a bare cluster runs %s: %v", platform, names)
		}
	}
}
