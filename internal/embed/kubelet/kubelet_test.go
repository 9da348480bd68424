package kubelet

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/kubernetes/fake"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	kubeletpkg "k8s.io/kubernetes/pkg/kubelet"
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
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
	kc := loadConfiguration(t, New(cfg, pki.New(cfg)))
	if err := kubeletvalidation.ValidateKubeletConfiguration(kc, utilfeature.DefaultFeatureGate); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if kc.Address != config.Host || kc.ReadOnlyPort != 0 || kc.CgroupDriver != "cgroupfs" || kc.Authentication.Anonymous.Enabled {
		t.Fatalf("unexpected configuration: address=%s ro=%d cgroup=%s", kc.Address, kc.ReadOnlyPort, kc.CgroupDriver)
	}
}

// loadConfiguration loads k's rendered configuration with the kubelet's
// own code, defaults included.
func loadConfiguration(t *testing.T, k *Kubelet) *kubeletconfig.KubeletConfiguration {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubelet.yaml")
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
	return kc
}

// The heartbeat (lease renewals, node status posts) waits as long as the
// kubelet's default, not the 250 ms of the node status period that the
// kubelet would take as its timeout; the other clients keep the kubelet's
// rates.
func TestClientsHeartbeatOutlivesTheStatusPeriod(t *testing.T) {
	cfg := config.Default(t.TempDir())
	cfg.NodeName = "node"
	p := pki.New(cfg)
	if _, err := p.Ensure(); err != nil {
		t.Fatal(err)
	}
	k := New(cfg, p)
	kc := loadConfiguration(t, k)
	if kc.NodeStatusUpdateFrequency.Duration >= heartbeatTimeout {
		t.Fatalf("nodeStatusUpdateFrequency %s: the test expects one shorter than the heartbeat's timeout", kc.NodeStatusUpdateFrequency.Duration)
	}
	deps := &kubeletpkg.Dependencies{}
	if err := k.clients(kc, deps); err != nil {
		t.Fatal(err)
	}
	if got := deps.HeartbeatClient.CoreV1().RESTClient().(*rest.RESTClient).Client.Timeout; got != heartbeatTimeout {
		t.Errorf("heartbeat timeout %s, want %s", got, heartbeatTimeout)
	}
	api := deps.KubeClient.CoreV1().RESTClient().(*rest.RESTClient)
	if api.Client.Timeout != 0 {
		t.Errorf("API client timeout %s, want none (the pod source watches through it)", api.Client.Timeout)
	}
	if got := api.GetRateLimiter().QPS(); got != float32(kc.KubeAPIQPS) {
		t.Errorf("API client QPS %v, want the kubelet's %d", got, kc.KubeAPIQPS)
	}
	if got := deps.EventClient.(*typedcorev1.CoreV1Client).RESTClient().(*rest.RESTClient).GetRateLimiter().QPS(); got != float32(kc.EventRecordQPS) {
		t.Errorf("event client QPS %v, want the kubelet's %d", got, kc.EventRecordQPS)
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

// The kubelet's events pass until its context ends, and are dropped after.
func TestUntilDoneDropsEventsOnceStopping(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	fake := record.NewFakeRecorder(10)
	r := untilDone{ctx: ctx, EventRecorder: fake}
	pod := &corev1.Pod{}
	r.Event(pod, corev1.EventTypeNormal, "Started", "started")
	r.Eventf(pod, corev1.EventTypeNormal, "Pulled", "pulled %s", "image")
	r.AnnotatedEventf(pod, nil, corev1.EventTypeNormal, "Created", "created %d", 1)
	cancel()
	r.Event(pod, corev1.EventTypeNormal, "Killing", "stopping")
	r.Eventf(pod, corev1.EventTypeNormal, "Killing", "stopping %s", "container")
	r.AnnotatedEventf(pod, nil, corev1.EventTypeNormal, "Killing", "stopping %d", 2)
	close(fake.Events)
	var got []string
	for e := range fake.Events {
		got = append(got, e)
	}
	want := []string{"Normal Started started", "Normal Pulled pulled image", "Normal Created created 1"}
	if !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}
