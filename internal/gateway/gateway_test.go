package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	randv2 "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
)

const (
	acctID = "0123456789abcdef0123456789abcdef"
	v1ID   = "11111111-1111-4111-8111-111111111111"
	v2ID   = "22222222-2222-4222-8222-222222222222"
	v3ID   = "33333333-3333-4333-8333-333333333333"
)

var account = store.Account{ID: acctID, Name: "octo", Subdomain: "octo", Namespace: "octo"}

// fakePods is a settable PodLister.
type fakePods struct {
	mu   sync.Mutex
	pods []corev1.Pod
}

func (f *fakePods) AccountPods(_ context.Context, ns, a string) ([]corev1.Pod, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []corev1.Pod
	for _, p := range f.pods {
		if p.Namespace == ns && p.Labels[apiv1.LabelAccount] == a {
			out = append(out, p)
		}
	}
	return out, nil
}

func (f *fakePods) set(pods ...corev1.Pod) { f.mu.Lock(); f.pods = pods; f.mu.Unlock() }

// backend is an httptest server standing for one workerd socket: it
// answers with its name and echoes what it received.
type testBackend struct {
	name string
	srv  *httptest.Server
	mu   sync.Mutex
	hits int
}

func newBackend(t testing.TB, name string) *testBackend {
	b := &testBackend{name: name}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.hits++
		b.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		h := map[string]string{}
		for k := range r.Header {
			h[strings.ToLower(k)] = r.Header.Get(k)
		}
		w.Header().Set("X-Backend", name)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"backend": name, "method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery,
			"host": r.Host, "body": string(body), "headers": h,
		})
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *testBackend) port() int { return b.srv.Listener.Addr().(*net.TCPAddr).Port }

func (b *testBackend) count() int { b.mu.Lock(); defer b.mu.Unlock(); return b.hits }

// readyPod is a ready pod on 127.0.0.1 serving versions on ports.
func readyPod(name string, sockets map[string]int) corev1.Pod {
	ann, _ := json.Marshal(sockets)
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "octo",
			Labels:      map[string]string{apiv1.LabelAccount: acctID, "api.cf-worker/bundle": "octo"},
			Annotations: map[string]string{apiv1.AnnotationSockets: string(ann)},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: "127.0.0.1",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

func release(script string, versions ...apiv1.VersionTraffic) *apiv1.WorkerRelease {
	rel := &apiv1.WorkerRelease{
		ObjectMeta: metav1.ObjectMeta{Name: store.ObjectName(script), Namespace: "octo", Labels: map[string]string{apiv1.LabelAccount: acctID}},
		Spec:       apiv1.WorkerReleaseSpec{AccountID: acctID, ScriptName: script},
	}
	if len(versions) > 0 {
		rel.Spec.Deployments = []apiv1.ReleaseDeployment{{ID: "d-" + script, Versions: versions}}
	}
	return rel
}

type env struct {
	t    testing.TB
	gw   *Gateway
	k8s  client.Client
	pods *fakePods
	srv  *httptest.Server
}

func newEnv(t testing.TB, rnd func(int) int, objs ...client.Object) *env {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := apiv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	pods := &fakePods{}
	gw := New(Options{Accounts: store.StaticAccounts{account}, Reader: c, Pods: pods, EdgePort: 8787, Rand: rnd})
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	return &env{t: t, gw: gw, k8s: c, pods: pods, srv: srv}
}

// do sends a request for host through the gateway.
func (e *env) do(method, host, path string, body []byte, hdr http.Header) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

type echoed struct {
	Backend string            `json:"backend"`
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Query   string            `json:"query"`
	Host    string            `json:"host"`
	Body    string            `json:"body"`
	Headers map[string]string `json:"headers"`
}

func (e *env) echoed(resp *http.Response, body string) echoed {
	e.t.Helper()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var out echoed
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		e.t.Fatalf("%v: %s", err, body)
	}
	return out
}

func TestHandles(t *testing.T) {
	g := New(Options{})
	for host, want := range map[string]bool{
		"hello.octo.workers.localhost:8787": true,
		"hello.octo.workers.localhost":      true,
		"HELLO.Octo.Workers.Localhost.":     true,
		"hello.octo.workers.dev:443":        true,
		"octo.workers.dev":                  true,
		"workers.localhost":                 false,
		"127.0.0.1:8787":                    false,
		"localhost:8787":                    false,
		"example.com":                       false,
		"[::1]:8787":                        false,
	} {
		if got := g.Handles(host); got != want {
			t.Errorf("Handles(%q) = %v, want %v", host, got, want)
		}
	}
	if u := URL("hello", "octo", 8787); u != "http://hello.octo.workers.localhost:8787/" {
		t.Errorf("URL = %s", u)
	}
}

func TestRoutingByHost(t *testing.T) {
	hello, api := newBackend(t, "hello-v1"), newBackend(t, "api-v3")
	e := newEnv(t, nil,
		release("hello", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100}),
		release("api", apiv1.VersionTraffic{VersionID: v3ID, Percentage: 100}))
	e.pods.set(readyPod("octo-1", map[string]int{v1ID: hello.port(), v3ID: api.port()}))

	hdr := http.Header{"X-Custom": {"a"}, "Cf-Connecting-Ip": {"6.6.6.6"}, "X-Forwarded-For": {"9.9.9.9"}}
	resp, body := e.do(http.MethodPost, "hello.octo.workers.localhost:8787", "/some/path?x=1&y=%2F", []byte("payload"), hdr)
	got := e.echoed(resp, body)
	if got.Backend != "hello-v1" || got.Method != "POST" || got.Path != "/some/path" || got.Query != "x=1&y=%2F" || got.Body != "payload" {
		t.Fatalf("echoed %+v", got)
	}
	if got.Host != "hello.octo.workers.localhost:8787" {
		t.Errorf("Host %q not preserved", got.Host)
	}
	h := got.Headers
	if h["x-custom"] != "a" || h["cf-connecting-ip"] != "127.0.0.1" || h["x-forwarded-proto"] != "http" ||
		h["cf-worker"] != "hello" || h["x-forwarded-for"] != "9.9.9.9, 127.0.0.1" || h["cf-visitor"] != `{"scheme":"http"}` {
		t.Errorf("headers %v", h)
	}
	if !strings.HasSuffix(h["cf-ray"], "-OCTO") || len(h["cf-ray"]) != 21 || resp.Header.Get("Cf-Ray") != h["cf-ray"] {
		t.Errorf("cf-ray %q / response %q", h["cf-ray"], resp.Header.Get("Cf-Ray"))
	}
	if resp.Header.Get("X-Backend") != "hello-v1" {
		t.Errorf("response headers %v", resp.Header)
	}
	resp, body = e.do(http.MethodGet, "api.octo.workers.dev", "/", nil, nil)
	if got := e.echoed(resp, body); got.Backend != "api-v3" {
		t.Fatalf("api went to %s", got.Backend)
	}
}

func TestPercentageSplit(t *testing.T) {
	b1, b2 := newBackend(t, "v1"), newBackend(t, "v2")
	r := randv2.New(randv2.NewPCG(7, 11))
	var mu sync.Mutex
	e := newEnv(t, func(n int) int { mu.Lock(); defer mu.Unlock(); return r.IntN(n) },
		release("hello", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 30}, apiv1.VersionTraffic{VersionID: v2ID, Percentage: 70}))
	e.pods.set(readyPod("octo-1", map[string]int{v1ID: b1.port(), v2ID: b2.port()}))
	const n = 1000
	for range n {
		resp, body := e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, nil)
		e.echoed(resp, body)
	}
	c1, c2 := b1.count(), b2.count()
	if c1+c2 != n || c1 < 250 || c1 > 350 {
		t.Fatalf("v1 got %d, v2 got %d of %d; want 30%% ± 5 points", c1, c2, n)
	}
	t.Logf("v1 %d, v2 %d", c1, c2)
}

func TestFallbackToAnotherVersionOfTheDeployment(t *testing.T) {
	b1 := newBackend(t, "v1")
	e := newEnv(t, nil,
		release("hello", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 50}, apiv1.VersionTraffic{VersionID: v2ID, Percentage: 50}))
	// Only v1 is running so far.
	e.pods.set(readyPod("octo-1", map[string]int{v1ID: b1.port()}))
	for range 20 {
		resp, body := e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, nil)
		if got := e.echoed(resp, body); got.Backend != "v1" {
			t.Fatal(got.Backend)
		}
	}
}

// A new deployment whose pods are not ready yet: the deployment it replaced
// keeps answering, so a redeploy drops no request.
func TestPreviousDeploymentServesDuringRollout(t *testing.T) {
	b1, b2 := newBackend(t, "v1"), newBackend(t, "v2")
	rel := release("hello", apiv1.VersionTraffic{VersionID: v2ID, Percentage: 100})
	rel.Spec.Deployments = append(rel.Spec.Deployments, apiv1.ReleaseDeployment{ID: "d-old", Versions: []apiv1.VersionTraffic{{VersionID: v1ID, Percentage: 100}}})
	e := newEnv(t, nil, rel)
	e.pods.set(readyPod("old", map[string]int{v1ID: b1.port()}))
	for range 10 {
		resp, body := e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, nil)
		if got := e.echoed(resp, body); got.Backend != "v1" {
			t.Fatalf("before the new pod is ready: backend %q, want the previous deployment's v1", got.Backend)
		}
	}
	e.pods.set(readyPod("old", map[string]int{v1ID: b1.port()}), readyPod("new", map[string]int{v2ID: b2.port()}))
	for range 10 {
		resp, body := e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, nil)
		if got := e.echoed(resp, body); got.Backend != "v2" {
			t.Fatalf("after the new pod is ready: backend %q, want v2", got.Backend)
		}
	}
}

func TestPreviewHost(t *testing.T) {
	b1, b2, b3 := newBackend(t, "v1"), newBackend(t, "v2"), newBackend(t, "v3")
	uploaded := &apiv1.WorkerVersion{
		ObjectMeta: metav1.ObjectMeta{Name: "hello-v3", Namespace: "octo", Labels: map[string]string{apiv1.LabelAccount: acctID, apiv1.LabelScript: "hello"}},
		Spec:       apiv1.WorkerVersionSpec{AccountID: acctID, ScriptName: "hello", VersionID: v3ID, Number: 3},
	}
	rel := release("hello", apiv1.VersionTraffic{VersionID: v2ID, Percentage: 100})
	rel.Spec.Deployments = append(rel.Spec.Deployments, apiv1.ReleaseDeployment{ID: "old", Versions: []apiv1.VersionTraffic{{VersionID: v1ID, Percentage: 100}}})
	e := newEnv(t, nil, rel, uploaded)
	e.pods.set(readyPod("octo-1", map[string]int{v1ID: b1.port(), v2ID: b2.port(), v3ID: b3.port()}))

	for host, want := range map[string]string{
		"hello.octo.workers.localhost:8787":          "v2",
		"11111111-hello.octo.workers.localhost:8787": "v1", // an older deployment's version
		"33333333-hello.octo.workers.localhost:8787": "v3", // uploaded, never deployed
		"22222222-hello.octo.workers.localhost":      "v2",
	} {
		resp, body := e.do(http.MethodGet, host, "/", nil, nil)
		if got := e.echoed(resp, body); got.Backend != want {
			t.Errorf("%s went to %s, want %s", host, got.Backend, want)
		}
	}
	resp, body := e.do(http.MethodGet, "44444444-hello.octo.workers.localhost:8787", "/", nil, nil)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "no version starting with 44444444") {
		t.Errorf("unknown preview = %d %s", resp.StatusCode, body)
	}
	// A preview never falls back to another version.
	e.pods.set(readyPod("octo-1", map[string]int{v2ID: b2.port()}))
	resp, body = e.do(http.MethodGet, "11111111-hello.octo.workers.localhost:8787", "/", nil, nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("preview of a version no pod serves = %d %s", resp.StatusCode, body)
	}
}

func TestNotFoundPage(t *testing.T) {
	e := newEnv(t, nil,
		release("hello", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100}),
		release("api", apiv1.VersionTraffic{VersionID: v3ID, Percentage: 100}),
		release("draft")) // never deployed
	for _, host := range []string{"nope.octo.workers.localhost:8787", "hello.other.workers.localhost:8787", "octo.workers.localhost:8787", "a.b.octo.workers.localhost:8787", "draft.octo.workers.localhost:8787"} {
		resp, body := e.do(http.MethodGet, host, "/", nil, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s: %d", host, resp.StatusCode)
		}
		if !strings.Contains(body, "No Worker is deployed at "+host) ||
			!strings.Contains(body, "Deployed: http://api.octo.workers.localhost:8787/ http://hello.octo.workers.localhost:8787/") ||
			!strings.Contains(body, "octo url <script>") || strings.Contains(body, "http://draft.") {
			t.Errorf("%s: page %q", host, body)
		}
	}
	resp, body := e.do(http.MethodGet, "nope.octo.workers.localhost:8787", "/", nil, http.Header{"Accept": {"text/html,*/*"}})
	if resp.StatusCode != 404 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, `<a href="http://hello.octo.workers.localhost:8787/">`) {
		t.Errorf("html page %d %q", resp.StatusCode, body)
	}
}

// TestWaitsForAPod: with StartWait, a request that finds no pod waits for
// one (a first deploy, a pod being replaced) instead of failing; past
// StartWait it gets the 503.
func TestWaitsForAPod(t *testing.T) {
	b1 := newBackend(t, "v1")
	e := newEnv(t, nil, release("hello", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100}))
	e.gw.startWait = 5 * time.Second
	go func() {
		time.Sleep(300 * time.Millisecond)
		e.pods.set(readyPod("octo-1", map[string]int{v1ID: b1.port()}))
	}()
	t0 := time.Now()
	resp, body := e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `"backend":"v1"`) || time.Since(t0) < 300*time.Millisecond {
		t.Fatalf("%d %q after %s, want v1 once the pod is ready", resp.StatusCode, body, time.Since(t0))
	}
	e.pods.set()
	e.gw.startWait = 200 * time.Millisecond
	if resp, _ := e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("no pod within StartWait: %d, want 503", resp.StatusCode)
	}
}

func TestUnavailableWhileNothingServes(t *testing.T) {
	b1 := newBackend(t, "v1")
	e := newEnv(t, nil, release("hello", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100}))
	notReady := readyPod("octo-1", map[string]int{v1ID: b1.port()})
	notReady.Status.Conditions[0].Status = corev1.ConditionFalse
	terminating := readyPod("octo-2", map[string]int{v1ID: b1.port()})
	terminating.DeletionTimestamp = &metav1.Time{}
	otherVersion := readyPod("octo-3", map[string]int{v2ID: b1.port()})
	for _, pods := range [][]corev1.Pod{nil, {notReady, terminating, otherVersion}} {
		e.pods.set(pods...)
		resp, body := e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, nil)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" ||
			strings.TrimSpace(body) != "worker hello is starting; retry in a moment" {
			t.Fatalf("%d %q %q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	if b1.count() != 0 {
		t.Fatal("a pod that is not ready got traffic")
	}
}

func TestRetryOnDeadPod(t *testing.T) {
	alive := newBackend(t, "alive")
	dead := newBackend(t, "dead")
	deadPort := dead.port()
	dead.srv.Close() // connection refused, like a pod that just terminated
	// Rand 0: the first version and the first pod — the dead one.
	e := newEnv(t, func(int) int { return 0 }, release("hello", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100}))
	e.pods.set(readyPod("dead", map[string]int{v1ID: deadPort}), readyPod("alive", map[string]int{v1ID: alive.port()}))

	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodDelete} {
		resp, body := e.do(m, "hello.octo.workers.localhost:8787", "/", nil, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Backend") != "alive" {
			t.Fatalf("%s: %d %s", m, resp.StatusCode, body)
		}
	}
	// A POST is not retried: 502.
	before := alive.count()
	resp, body := e.do(http.MethodPost, "hello.octo.workers.localhost:8787", "/", []byte("x"), nil)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "worker hello did not answer") {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}
	if alive.count() != before {
		t.Fatal("POST was retried")
	}
}

func TestSocketsAnnotationCache(t *testing.T) {
	g := New(Options{})
	a := g.parseSockets(`{"` + v1ID + `":8081}`)
	b := g.parseSockets(`{"` + v1ID + `":8081}`)
	if a[v1ID] != 8081 || len(g.sockets) != 1 || b[v1ID] != 8081 {
		t.Fatal(a, b)
	}
	if g.parseSockets("not json") != nil {
		t.Fatal("bad annotation parsed")
	}
	if strconv.Itoa(hostPort("x.y.workers.localhost:9", 1)) != "9" || hostPort("x.y.workers.localhost", 1) != 1 {
		t.Fatal("hostPort")
	}
}

func TestTailResolver(t *testing.T) {
	v := func(name, script, id string) *apiv1.WorkerVersion {
		return &apiv1.WorkerVersion{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "octo"},
			Spec:       apiv1.WorkerVersionSpec{AccountID: acctID, ScriptName: script, VersionID: id},
		}
	}
	e := newEnv(t, nil, v("hello-v1", "hello", v1ID), v("my-app-v1", "my_app", v2ID))
	resolve := TailResolver(e.k8s)
	for svc, want := range map[string][3]string{
		"hello-11111111":                         {acctID, "hello", v1ID},
		"my-app-22222222":                        {acctID, "my_app", v2ID},
		"hello-11111111111141118111111111111111": {acctID, "hello", v1ID},
	} {
		a, s, id, ok := resolve(svc)
		if !ok || [3]string{a, s, id} != want {
			t.Errorf("%s → %s %s %s %v", svc, a, s, id, ok)
		}
		if _, _, _, ok := resolve(svc); !ok {
			t.Errorf("%s: memoised answer lost", svc)
		}
	}
	for _, svc := range []string{"hello-22222222", "other-11111111", "hello", "octo-health"} {
		if _, _, _, ok := resolve(svc); ok {
			t.Errorf("%s resolved", svc)
		}
	}
}

// TestTracedTwin: the requests of a tailed script go to its version's traced
// twin (port + workerd.TracedPortOffset), the others to the plain Worker.
func TestTracedTwin(t *testing.T) {
	twin := newBackend(t, "hello-v1-traced")
	port := twin.port() - workerd.TracedPortOffset
	if port < 1024 {
		t.Skipf("ephemeral port %d leaves no room below it for the offset", twin.port())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Skipf("port %d is taken: %v", port, err)
	}
	plain := &testBackend{name: "hello-v1", srv: httptest.NewUnstartedServer(newBackend(t, "hello-v1").srv.Config.Handler)}
	plain.srv.Listener.Close()
	plain.srv.Listener = ln
	plain.srv.Start()
	t.Cleanup(plain.srv.Close)
	e := newEnv(t, nil, release("hello", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100}))
	e.pods.set(readyPod("octo-1", map[string]int{v1ID: port}))

	tailed := false
	e.gw.watched = func(account, script string) bool { return tailed && account == acctID && script == "hello" }
	resp, body := e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, nil)
	if got := e.echoed(resp, body); got.Backend != "hello-v1" {
		t.Errorf("untailed: served by %q, want the plain worker", got.Backend)
	}
	tailed = true
	resp, body = e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, nil)
	if got := e.echoed(resp, body); got.Backend != "hello-v1-traced" {
		t.Errorf("tailed: served by %q, want the traced twin", got.Backend)
	}
}

// TestResourceLimitError: a process that dies under a long request answers
// Cloudflare's 1102; one that dies at once is a plain 502.
func TestResourceLimitError(t *testing.T) {
	die := func(after time.Duration) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(after)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close() // the process is killed: no answer
			}
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	slow, fast := die(ResourceLimitAfter+100*time.Millisecond), die(0)
	port := func(s *httptest.Server) int { return s.Listener.Addr().(*net.TCPAddr).Port }
	e := newEnv(t, nil,
		release("spin", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100}),
		release("crash", apiv1.VersionTraffic{VersionID: v3ID, Percentage: 100}))
	e.pods.set(readyPod("octo-1", map[string]int{v1ID: port(slow), v3ID: port(fast)}))

	resp, body := e.do(http.MethodGet, "spin.octo.workers.localhost:8787", "/", nil, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "1102") {
		t.Errorf("runaway request: %d %q, want 503 with error code 1102", resp.StatusCode, body)
	}
	resp, body = e.do(http.MethodGet, "crash.octo.workers.localhost:8787", "/", nil, nil)
	if resp.StatusCode != http.StatusBadGateway || strings.Contains(body, "1102") {
		t.Errorf("immediate failure: %d %q, want a plain 502", resp.StatusCode, body)
	}
}

// TestOnlyTheAccountsNamespace: a pod in another namespace that carries the
// account's label (anyone who may create pods there) gets no traffic.
func TestOnlyTheAccountsNamespace(t *testing.T) {
	real, evil := newBackend(t, "real"), newBackend(t, "evil")
	e := newEnv(t, nil, release("hello", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100}))
	impostor := readyPod("impostor", map[string]int{v1ID: evil.port()})
	impostor.Namespace = "tenant-b"
	e.pods.set(impostor)
	if resp, body := e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, nil); resp.StatusCode != http.StatusServiceUnavailable || evil.count() != 0 {
		t.Fatalf("only an impostor pod: %d %q, %d requests reached it; want 503 and none", resp.StatusCode, body, evil.count())
	}
	e.pods.set(impostor, readyPod("octo-1", map[string]int{v1ID: real.port()}))
	for range 20 {
		resp, body := e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, nil)
		if got := e.echoed(resp, body); got.Backend != "real" {
			t.Fatalf("a request went to %s", got.Backend)
		}
	}
	if evil.count() != 0 {
		t.Errorf("%d requests reached the impostor pod", evil.count())
	}
}

// TestDuplicateClaimsAreRefused: two WorkerAccounts claiming one subdomain
// or one account ID are not served by whichever sorts first.
func TestDuplicateClaimsAreRefused(t *testing.T) {
	b := newBackend(t, "v1")
	for _, tc := range []struct {
		name  string
		other store.Account
		want  string
	}{
		{"same-subdomain", store.Account{ID: "0123456789abcdef0123456789abcdef", Subdomain: "octo", Namespace: "tenant-b"}, "workers subdomain"},
		{"same-account-id", store.Account{ID: acctID, Subdomain: "other", Namespace: "tenant-b"}, "account " + acctID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, release("hello", apiv1.VersionTraffic{VersionID: v1ID, Percentage: 100}))
			e.gw.accounts = store.StaticAccounts{account, tc.other}
			e.pods.set(readyPod("octo-1", map[string]int{v1ID: b.port()}))
			resp, body := e.do(http.MethodGet, "hello.octo.workers.localhost:8787", "/", nil, nil)
			if resp.StatusCode != http.StatusConflict || !strings.Contains(body, tc.want) || !strings.Contains(body, "tenant-b") {
				t.Fatalf("answer %d %q, want 409 naming the %s and the namespaces", resp.StatusCode, body, tc.want)
			}
		})
	}
}

// A cluster's gateway answers under its own domain only.
func TestHandlesHostSuffixes(t *testing.T) {
	g := New(Options{HostSuffixes: []string{"Workers.Example.com."}})
	for host, want := range map[string]bool{
		"hello.octo.workers.example.com":     true,
		"hello.octo.workers.example.com:443": true,
		"hello.octo.workers.localhost":       false,
		"workers.example.com":                false,
	} {
		if got := g.Handles(host); got != want {
			t.Errorf("Handles(%q) = %v, want %v", host, got, want)
		}
	}
}
