package gateway

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// TestLocalPodOverUnixSocket: a pod on the gateway's node is reached on the
// unix socket of the port in its socket volume; a pod of another node on
// podIP:port.
func TestLocalPodOverUnixSocket(t *testing.T) {
	tcp := newBackend(t, "tcp")
	port := tcp.port()
	// A kubelet root as deep as real ones: the socket's full path is longer
	// than a unix socket address may be (108 bytes).
	root := filepath.Join(t.TempDir(), strings.Repeat("deep", 20))
	dir := filepath.Join(root, "pods", "uid-1", "volumes", "kubernetes.io~empty-dir", apiv1.SocketVolume)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	ln, err := net.Listen("unix", workerd.UnixSocketPath(".", port))
	if err != nil {
		t.Fatal(err)
	}
	unix := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "unix "+r.Host)
	}))
	unix.Listener = ln
	unix.Start()
	t.Cleanup(unix.Close)

	e, p := newLocalEnv(t, root, port, time.Time{})
	pods := e.pods
	pods.set(p)
	host := "hello.octo.workers.localhost:8787"
	if resp, body := e.do(http.MethodGet, host, "/", nil, nil); resp.StatusCode != 200 || body != "unix "+host {
		t.Fatalf("local pod: %d %q, want its unix socket to answer", resp.StatusCode, body)
	}

	// Its socket gone (an image from before the sockets, a restart under
	// way): the pod network still reaches it.
	unix.Close()
	if resp, body := e.do(http.MethodGet, host, "/", nil, nil); resp.StatusCode != 200 || e.echoed(resp, body).Backend != "tcp" {
		t.Fatalf("local pod without its socket: %d %q, want podIP:port", resp.StatusCode, body)
	}

	p.Spec.NodeName = "node-b"
	p.UID = "uid-2"
	pods.set(p)
	if resp, body := e.do(http.MethodGet, host, "/", nil, nil); resp.StatusCode != 200 || e.echoed(resp, body).Backend != "tcp" {
		t.Fatalf("pod of another node: %d %q, want podIP:%s", resp.StatusCode, body, strconv.Itoa(port))
	}
}

// TestPodOfAnEarlierRunWaitsForTheKubelet: after `octo up` on a data dir
// with Workers, the pods' objects still show the IP and Ready status of the
// run before, and the node may have given that IP to another pod. Such a
// pod gets no request until the kubelet reports its new containers; then it
// is reached, at its new IP when its socket is missing.
func TestPodOfAnEarlierRunWaitsForTheKubelet(t *testing.T) {
	tcp := newBackend(t, "tcp")
	port := tcp.port()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "pods", "uid-1", "volumes", "kubernetes.io~empty-dir", apiv1.SocketVolume), 0o755); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	e, p := newLocalEnv(t, root, port, started)
	pods := e.pods
	// The earlier run's IP is another pod's now, which serves on the same
	// port.
	other, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	otherPod := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "another pod's Worker")
	}))
	otherPod.Listener = other
	otherPod.Start()
	t.Cleanup(otherPod.Close)
	p.Status.PodIP = "127.0.0.2"
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "workerd", State: corev1.ContainerState{
		Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(started.Add(-time.Hour))}}}}
	pods.set(p)
	host := "hello.octo.workers.localhost:8787"
	if resp, body := e.do(http.MethodGet, host, "/", nil, nil); resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(body, "another pod") {
		t.Fatalf("pod of the earlier run: %d %q, want 503 and no request to its old IP", resp.StatusCode, body)
	}

	// The kubelet restarted it: new containers, a new IP.
	p.Status.PodIP = "127.0.0.1"
	p.Status.ContainerStatuses[0].State.Running.StartedAt = metav1.NewTime(started.Add(time.Second))
	pods.set(p)
	if resp, body := e.do(http.MethodGet, host, "/", nil, nil); resp.StatusCode != 200 || e.echoed(resp, body).Backend != "tcp" {
		t.Fatalf("pod reported again: %d %q, want its new IP to answer", resp.StatusCode, body)
	}
}

// newLocalEnv serves the release "hello" (v1ID) through a gateway whose
// node "node-a" keeps its pods under root and started at nodeStarted, and
// returns a ready pod of that node with v1ID on port, its socket volume
// under root (not yet listed: pods.set it).
func newLocalEnv(t *testing.T, root string, port int, nodeStarted time.Time) (*env, corev1.Pod) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := apiv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(release("hello", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100})).Build()
	pods := &fakePods{}
	gw := New(Options{Accounts: store.StaticAccounts{account}, Reader: c, Pods: pods, LocalSockets: NodeSockets(root, "node-a"), NodeStarted: nodeStarted})
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	p := readyPod("octo-1", map[string]int{v1ID: port})
	p.UID, p.Spec.NodeName = types.UID("uid-1"), "node-a"
	p.Spec.Volumes = []corev1.Volume{{Name: apiv1.SocketVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	return &env{t: t, gw: gw, k8s: c, pods: pods, srv: srv}, p
}
