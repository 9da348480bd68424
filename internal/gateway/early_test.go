package gateway

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
)

// TestStartingLocalPodServesOnceItsSocketsListen: a new pod of the
// gateway's node takes the new deployment's requests as soon as workerd
// listens on its sockets, before the kubelet reports it Ready; until then
// the previous deployment answers. A pod that was Ready once and is not any
// more, or an old one, waits for the kubelet.
func TestStartingLocalPodServesOnceItsSocketsListen(t *testing.T) {
	old := newBackend(t, "v1")
	root := t.TempDir()
	dir := filepath.Join(root, "pods", "uid-new", "volumes", "kubernetes.io~empty-dir", apiv1.SocketVolume)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const port = 18080

	rel := release("hello", apiv1.VersionTraffic{VersionID: v2ID, Percentage: 100})
	rel.Spec.Deployments = append(rel.Spec.Deployments, apiv1.ReleaseDeployment{ID: "d-old", Versions: []apiv1.VersionTraffic{{VersionID: v1ID, Percentage: 100}}})
	scheme := runtime.NewScheme()
	if err := apiv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(rel).Build()
	pods := &fakePods{}
	changes := &Changes{}
	// As in octo's daemon, the node started a while ago: a pod created
	// since is not one of an earlier run, though the kubelet has not
	// reported its containers yet.
	gw := New(Options{Accounts: store.StaticAccounts{account}, Reader: c, Pods: pods, LocalSockets: NodeSockets(root, "node-a"), Changes: changes,
		NodeStarted: time.Now().Add(-time.Minute)})
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	e := &env{t: t, gw: gw, k8s: c, pods: pods, srv: srv}
	host := "hello.octo.workers.localhost:8787"
	backend := func() string {
		t.Helper()
		resp, body := e.do(http.MethodGet, host, "/", nil, nil)
		if body == "unix" {
			return "unix"
		}
		return e.echoed(resp, body).Backend
	}

	oldPod := readyPod("old", map[string]int{v1ID: old.port()})
	newPod := readyPod("new", map[string]int{v2ID: port})
	newPod.UID, newPod.Spec.NodeName = types.UID("uid-new"), "node-a"
	newPod.CreationTimestamp = metav1.NewTime(time.Now())
	newPod.Spec.Volumes = []corev1.Volume{{Name: apiv1.SocketVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	newPod.Status = corev1.PodStatus{Phase: corev1.PodPending}
	set := func(ps ...corev1.Pod) { pods.set(ps...); changes.PodsChanged() }
	set(oldPod, newPod)

	if got := backend(); got != "v1" {
		t.Fatalf("new pod not listening yet: backend %q, want the previous deployment (v1)", got)
	}

	// workerd listens: the new pod answers within a recheck, though the
	// kubelet has not reported it Ready.
	t.Chdir(dir)
	ln, err := net.Listen("unix", workerd.UnixSocketPath(".", port))
	if err != nil {
		t.Fatal(err)
	}
	unix := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "unix") }))
	unix.Listener = ln
	unix.Start()
	t.Cleanup(unix.Close)
	deadline := time.Now().Add(2 * time.Second)
	for backend() != "unix" {
		if time.Now().After(deadline) {
			t.Fatal("the new pod listening on its socket never got the request")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// Ready, then not Ready any more (wedged): back to the kubelet's word.
	ready := newPod
	ready.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.1",
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	set(oldPod, ready)
	if got := backend(); got != "unix" {
		t.Fatalf("ready new pod: backend %q, want unix", got)
	}
	set(oldPod, newPod)
	time.Sleep(2 * earlyRecheck)
	if got := backend(); got != "v1" {
		t.Fatalf("pod no longer ready: backend %q, want v1 (a pod once Ready waits for the kubelet)", got)
	}

	// An old pod never seen Ready does not qualify either, listening or not.
	agedDir := filepath.Join(root, "pods", "uid-aged", "volumes", "kubernetes.io~empty-dir", apiv1.SocketVolume)
	if err := os.MkdirAll(agedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(agedDir)
	ln2, err := net.Listen("unix", workerd.UnixSocketPath(".", port))
	if err != nil {
		t.Fatal(err)
	}
	unix2 := httptest.NewUnstartedServer(unix.Config.Handler)
	unix2.Listener = ln2
	unix2.Start()
	t.Cleanup(unix2.Close)
	aged := newPod
	aged.UID = "uid-aged"
	aged.CreationTimestamp = metav1.NewTime(time.Now().Add(-2 * earlyWindow))
	set(oldPod, aged)
	if got := backend(); got != "v1" {
		t.Fatalf("old pod not ready: backend %q, want v1", got)
	}
}

// TestLoadLearnsTheHealthAddressLater: a pod first seen without an IP (routed
// to before the kubelet reported it) gets its health worker's address once
// it has one, so a stall in it is still found.
func TestLoadLearnsTheHealthAddressLater(t *testing.T) {
	gw := New(Options{})
	p := readyPod("new", map[string]int{v1ID: 8081})
	p.UID = "uid-1"
	p.Status = corev1.PodStatus{Phase: corev1.PodPending}
	p.Spec.Containers = []corev1.Container{{Name: "workerd", Ports: []corev1.ContainerPort{{Name: healthPortName, ContainerPort: 8000}}}}
	if h := gw.load(&p).healthAddr(); h != "" {
		t.Fatalf("health address %q before the pod has an IP", h)
	}
	p.Status.PodIP = "10.42.0.7"
	if h := gw.load(&p).healthAddr(); h != "10.42.0.7:8000" {
		t.Fatalf("health address %q, want 10.42.0.7:8000 once the pod has its IP", h)
	}
}
