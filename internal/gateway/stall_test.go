package gateway

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	apiv1 "github.com/octohq/octo/api/v1"
)

// stallablePod is a ready pod whose Worker and health worker can be made to
// hang, as a workerd whose event loop a request blocks.
type stallablePod struct {
	worker *testBackend
	health *httptest.Server
	mu     sync.Mutex
	hang   chan struct{} // non-nil: health requests wait for it to close
}

func newStallablePod(t *testing.T, name string) *stallablePod {
	s := &stallablePod{worker: newBackend(t, name)}
	s.health = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		h := s.hang
		s.mu.Unlock()
		if h != nil {
			select {
			case <-h:
			case <-r.Context().Done():
				return
			}
		}
		_, _ = w.Write([]byte("ok\n"))
	}))
	t.Cleanup(s.health.Close)
	return s
}

func (s *stallablePod) setHang(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on && s.hang == nil {
		s.hang = make(chan struct{})
	}
	if !on && s.hang != nil {
		close(s.hang)
		s.hang = nil
	}
}

func (s *stallablePod) pod(name string) corev1.Pod {
	p := readyPod(name, map[string]int{v1ID: s.worker.port()})
	p.Annotations[apiv1.AnnotationBundleName] = "octo"
	p.Spec.Containers = []corev1.Container{{Name: "workerd", Ports: []corev1.ContainerPort{
		{Name: healthPortName, ContainerPort: int32(s.health.Listener.Addr().(*net.TCPAddr).Port)},
	}}}
	return p
}

// TestStalledPodIsAvoidedAndReported: a pod with a request in flight whose
// health worker stops answering is reported (its bundle gets a surge pod)
// and avoided while another pod serves the version; it is cleared when it
// answers again.
func TestStalledPodIsAvoidedAndReported(t *testing.T) {
	a, b := newStallablePod(t, "a"), newStallablePod(t, "b")
	unblock := make(chan struct{})
	a.worker.srv.Config.Handler = hangingHandler(a.worker.srv.Config.Handler, unblock) // before any request
	e := newEnv(t, func(int) int { return 0 }, release("hello", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100}))
	type mark struct {
		ns, bundle, pod string
		stalled         bool
	}
	marks := make(chan mark, 8)
	e.gw.stallReporter = func(_ context.Context, ns, bundle, pod string, stalled bool) error {
		marks <- mark{ns, bundle, pod, stalled}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.gw.WatchStalls(ctx)
	host := "hello.octo.workers.localhost"

	// Pod a alone; a request hangs in it and its health worker is silent.
	e.pods.set(a.pod("octo-a"))
	if got := e.echoed(e.do(http.MethodGet, host, "/", nil, nil)); got.Backend != "a" {
		t.Fatalf("first request went to %s", got.Backend)
	}
	a.setHang(true)
	go func() { _, _ = http.DefaultClient.Do(hostRequest(t, e.srv.URL+"/spin", host)) }()
	select {
	case m := <-marks:
		if m != (mark{"octo", "octo", "octo-a", true}) {
			t.Fatalf("marked %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stalled pod was not reported")
	}

	// The surge pod b is ready: requests avoid a, though rand picks it.
	e.pods.set(a.pod("octo-a"), b.pod("octo-b"))
	for range 5 {
		if got := e.echoed(e.do(http.MethodGet, host, "/", nil, nil)); got.Backend != "b" {
			t.Fatalf("a request went to the stalled pod %s", got.Backend)
		}
	}

	// a answers again: cleared.
	a.setHang(false)
	close(unblock)
	select {
	case m := <-marks:
		if m != (mark{"octo", "octo", "octo-a", false}) {
			t.Fatalf("cleared %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the recovered pod was not cleared")
	}
	if got := e.echoed(e.do(http.MethodGet, host, "/", nil, nil)); got.Backend != "a" {
		t.Fatalf("after recovery the request went to %s", got.Backend)
	}
}

// hangingHandler holds requests for /spin until release closes.
func hangingHandler(next http.Handler, release chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/spin" {
			<-release
		}
		next.ServeHTTP(w, r)
	})
}

func hostRequest(t *testing.T, url, host string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	return req
}

// TestOverdueRequestEndsItsPod: in a stalled pod, a request that has run for
// its version's CPU limit (the pod's cpu-limits annotation) ends the pod,
// and the bundle's mark goes with it.
func TestOverdueRequestEndsItsPod(t *testing.T) {
	a := newStallablePod(t, "a")
	unblock := make(chan struct{})
	a.worker.srv.Config.Handler = hangingHandler(a.worker.srv.Config.Handler, unblock)
	e := newEnv(t, nil, release("hello", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100}),
		release("quick", apiv1.VersionTraffic{VersionID: v2ID, Percentage: 100}))
	marks := make(chan bool, 8)
	e.gw.stallReporter = func(_ context.Context, _, _, pod string, stalled bool) error {
		if pod != "octo-a" {
			t.Errorf("reported pod %q", pod)
		}
		marks <- stalled
		return nil
	}
	killed := make(chan string, 1)
	e.gw.kill = func(_ context.Context, ns, name, uid string) error {
		killed <- ns + "/" + name + "/" + uid
		a.setHang(false)
		close(unblock) // the process dies: its requests end
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.gw.WatchStalls(ctx)
	p := a.pod("octo-a")
	p.UID = "uid-a"
	p.Annotations[apiv1.AnnotationCPULimits] = `{"` + v1ID + `":1200,"` + v2ID + `":100}`
	p.Annotations[apiv1.AnnotationSockets] = `{"` + v1ID + `":` + strconv.Itoa(a.worker.port()) + `,"` + v2ID + `":` + strconv.Itoa(a.worker.port()) + `}`
	e.pods.set(p)
	time.Sleep(time.Second) // the pod has been idle: nothing finished lately
	a.setHang(true)
	start := time.Now()
	go func() {
		_, _ = http.DefaultClient.Do(hostRequest(t, e.srv.URL+"/spin", "hello.octo.workers.localhost"))
	}()
	select {
	case m := <-marks:
		if !m {
			t.Fatal("cleared before it was marked")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stalled pod was not reported")
	}
	// A request of a version with a 100 ms limit queues behind the
	// blocking one: its wait is not its CPU, it must not end the pod.
	go func() {
		_, _ = http.DefaultClient.Do(hostRequest(t, e.srv.URL+"/spin", "quick.octo.workers.localhost"))
	}()
	select {
	case k := <-killed:
		if k != "octo/octo-a/uid-a" {
			t.Fatalf("ended %s", k)
		}
		if took := time.Since(start); took < 1200*time.Millisecond {
			t.Errorf("ended after %s, before the version's limit of 1.2 s", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pod was not ended at its request's CPU limit")
	}
	select {
	case m := <-marks:
		if m {
			t.Fatal("after ending the pod it was marked again")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the mark stayed after the pod was ended")
	}
}

// TestBundleStallsClearsOnlyItsOwnMark: a pod clears the bundle's mark only
// when the mark names it; ClearStalls removes the marks a previous run left.
func TestBundleStallsClearsOnlyItsOwnMark(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := apiv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	b := &apiv1.WorkerBundle{}
	b.Namespace, b.Name = "octo", "octo"
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(b).Build()
	report := BundleStalls(c)
	ctx := context.Background()
	mark := func() string {
		var got apiv1.WorkerBundle
		if err := c.Get(ctx, client.ObjectKeyFromObject(b), &got); err != nil {
			t.Fatal(err)
		}
		return got.Annotations[apiv1.AnnotationStalledPod]
	}
	for _, step := range []struct {
		pod     string
		stalled bool
		want    string
	}{
		{"pod-a", true, "pod-a"},
		{"pod-b", true, "pod-b"},  // a second pod stalls
		{"pod-a", false, "pod-b"}, // the first recovers: the second's mark stays
		{"pod-b", false, ""},
		{"pod-c", true, "pod-c"},
	} {
		if err := report(ctx, "octo", "octo", step.pod, step.stalled); err != nil {
			t.Fatal(err)
		}
		if got := mark(); got != step.want {
			t.Fatalf("after %s stalled=%v the mark is %q, want %q", step.pod, step.stalled, got, step.want)
		}
	}
	// A replicated gateway keeps the mark of a pod that exists (another
	// gateway's), and clears that of a pod that is gone.
	if err := c.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "octo", Name: "pod-c"}}); err != nil {
		t.Fatal(err)
	}
	if err := ClearStalls(ctx, c, true); err != nil {
		t.Fatal(err)
	}
	if got := mark(); got != "pod-c" {
		t.Errorf("a replicated gateway cleared the mark of a pod that exists: %q", got)
	}
	if err := c.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "octo", Name: "pod-c"}}); err != nil {
		t.Fatal(err)
	}
	if err := ClearStalls(ctx, c, true); err != nil {
		t.Fatal(err)
	}
	if got := mark(); got != "" {
		t.Errorf("a replicated gateway kept the mark of a pod that is gone: %q", got)
	}
	if err := report(ctx, "octo", "octo", "pod-c", true); err != nil {
		t.Fatal(err)
	}
	if err := ClearStalls(ctx, c, false); err != nil {
		t.Fatal(err)
	}
	if got := mark(); got != "" {
		t.Errorf("after ClearStalls the mark is %q", got)
	}
	if err := report(ctx, "octo", "gone", "pod-a", true); err != nil {
		t.Errorf("a deleted bundle: %v", err)
	}
}
