package kubelet

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/kubernetes/fake"
	kubeletvalidation "k8s.io/kubernetes/pkg/kubelet/apis/config/validation"
	"k8s.io/kubernetes/pkg/kubelet/kubeletconfig/configfiles"
	utilfs "k8s.io/kubernetes/pkg/util/filesystem"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/pki"
)

// The rendered configuration must load and validate with the kubelet's own code.
func TestConfigurationLoadsAndValidates(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default(dir)
	cfg.NodeName = "node"
	k := New(cfg, pki.New(cfg))
	path := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(path, []byte(k.Configuration()), 0o600); err != nil {
		t.Fatal(err)
	}
	loader, err := configfiles.NewFsLoader(&utilfs.DefaultFs{}, path)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := loader.Load(context.Background())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := kubeletvalidation.ValidateKubeletConfiguration(kc, utilfeature.DefaultFeatureGate); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if kc.Address != config.Host || kc.ReadOnlyPort != 0 || kc.CgroupDriver != "cgroupfs" || kc.Authentication.Anonymous.Enabled {
		t.Fatalf("unexpected configuration: address=%s ro=%d cgroup=%s", kc.Address, kc.ReadOnlyPort, kc.CgroupDriver)
	}
}

func TestNodeReadySinceIgnoresStaleHeartbeat(t *testing.T) {
	start := time.Now()
	node := func(status corev1.ConditionStatus, beat time.Time) *corev1.Node {
		return &corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: status, LastHeartbeatTime: metav1.NewTime(beat),
		}}}}
	}
	if NodeReadySince(node(corev1.ConditionTrue, start.Add(-time.Hour)), start) {
		t.Error("a Ready condition from a previous run counted as ready")
	}
	if !NodeReadySince(node(corev1.ConditionTrue, start.Add(time.Second)), start) {
		t.Error("a fresh Ready condition did not count")
	}
	if NodeReadySince(node(corev1.ConditionFalse, start.Add(time.Second)), start) {
		t.Error("NotReady counted as ready")
	}
}

func TestNodeChangeReturnsWhenTheNodeChanges(t *testing.T) {
	ctx := t.Context()
	node := InitialNode("vm", "10.42.0.1")
	node.ResourceVersion = "1"
	cs := fake.NewClientset(node)
	k := &Kubelet{cfg: config.Config{NodeName: "vm"}, done: make(chan error, 1)}
	changed := make(chan error, 1)
	go func() { changed <- k.nodeChange(ctx, cs, "1") }()
	select {
	case err := <-changed:
		t.Fatalf("returned before the node changed: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-changed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no return 5 s after the node changed")
	}
	// Without a version to watch from (the node could not be read), a
	// short wait before the next read.
	if err := k.nodeChange(ctx, cs, ""); err != nil {
		t.Fatal(err)
	}
	// The kubelet exited: no more waiting.
	k.done <- errors.New("exited")
	if err := k.nodeChange(ctx, cs, "1"); err != nil {
		t.Fatal(err)
	}
}
