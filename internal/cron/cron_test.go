package cron

import (
	"context"
	"encoding/json"
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
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/builder"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
)

const (
	testAccount = "0123456789abcdef0123456789abcdef"
	testScript  = "ticker"
	testVersion = "aaaaaaaa-0000-4000-8000-000000000001"
	testNS      = "default"
)

var t0 = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

// call is one request a fake pod received.
type call struct {
	addr                           string
	version, script, cron, at, trc string
}

// fakePods answers scheduled runs for every pod address: the test's
// transport sends each dial to it and records the address asked for.
type fakePods struct {
	mu    sync.Mutex
	calls []call
	// answer decides the reply to a call: status, body, whether the pod
	// lacks the version (LoaderFailedHeader).
	answer func(c call) (int, string, bool)
	srv    *httptest.Server
}

func newFakePods(t *testing.T) *fakePods {
	f := &fakePods{answer: func(call) (int, string, bool) { return 200, `{"outcome":"ok","noRetry":false}`, false }}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := call{addr: r.Host, version: r.Header.Get(workerd.LoaderVersionHeader), script: r.Header.Get(workerd.LoaderScriptHeader),
			cron: r.Header.Get(workerd.ScheduledCronHeader), at: r.Header.Get(workerd.ScheduledTimeHeader), trc: r.Header.Get(workerd.LoaderTraceHeader)}
		if r.URL.Path != workerd.ScheduledPath || r.Method != http.MethodPost {
			http.Error(w, "bad path", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.calls = append(f.calls, c)
		answer := f.answer
		f.mu.Unlock()
		status, body, missing := answer(c)
		if missing {
			w.Header().Set(workerd.LoaderFailedHeader, "1")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakePods) transport() http.RoundTripper {
	addr := f.srv.Listener.Addr().String()
	return &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
}

func (f *fakePods) got() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

type env struct {
	t     *testing.T
	c     client.Client
	pods  *fakePods
	now   time.Time
	watch bool
}

func newEnv(t *testing.T, loadable bool, objs ...client.Object) *env {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := apiv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	rel := &apiv1.WorkerRelease{
		ObjectMeta: metav1.ObjectMeta{Name: testScript, Namespace: testNS},
		Spec: apiv1.WorkerReleaseSpec{AccountID: testAccount, ScriptName: testScript,
			Deployments: []apiv1.ReleaseDeployment{{ID: "dddddddd-0000-4000-8000-000000000001", CreatedOn: metav1.NewTime(t0.Add(-time.Hour)),
				Versions: []apiv1.VersionTraffic{{VersionID: testVersion, Percentage: 100}}}},
			Schedules: []apiv1.CronTrigger{{Cron: "*/5 * * * *", CreatedOn: metav1.NewTime(t0.Add(-time.Hour))}}},
	}
	v := &apiv1.WorkerVersion{
		ObjectMeta: metav1.ObjectMeta{Name: testScript + "-v1", Namespace: testNS,
			Labels: map[string]string{apiv1.LabelAccount: testAccount, apiv1.LabelScript: store.ObjectName(testScript)}},
		Spec: apiv1.WorkerVersionSpec{AccountID: testAccount, ScriptName: testScript, VersionID: testVersion, Number: 1, MainModule: "index.js",
			Modules: []apiv1.WorkerModule{{Name: "index.js", Type: apiv1.ModuleESModule}}},
	}
	if !loadable {
		v.Spec.Bindings = []apiv1.WorkerBinding{{Name: "KV", Type: apiv1.BindingKV, NamespaceID: testAccount}}
	}
	c := fake.NewClientBuilder().WithScheme(s).WithStatusSubresource(&apiv1.WorkerRelease{}).
		WithObjects(append([]client.Object{rel, v}, objs...)...).Build()
	return &env{t: t, c: c, pods: newFakePods(t), now: t0}
}

// readyPod is a Ready pod of the account at ip with sockets.
func readyPod(name, ip string, sockets map[string]int) *corev1.Pod {
	b, _ := json.Marshal(sockets)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, Labels: map[string]string{apiv1.LabelAccount: testAccount},
			Annotations: map[string]string{apiv1.AnnotationSockets: string(b)}},
		Status: corev1.PodStatus{PodIP: ip, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

func (e *env) scheduler() *Scheduler {
	return New(Options{Client: e.c, Transport: e.pods.transport(), Now: func() time.Time { return e.now },
		Watched:    func(account, script string) bool { return e.watch && account == testAccount && script == testScript },
		WaitForPod: 300 * time.Millisecond})
}

// tick runs one Tick and waits for its runs.
func (e *env) tick(s *Scheduler) {
	e.t.Helper()
	if err := s.Tick(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	s.wg.Wait()
}

func (e *env) status() *apiv1.CronStatus {
	e.t.Helper()
	var rel apiv1.WorkerRelease
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: testNS, Name: testScript}, &rel); err != nil {
		e.t.Fatal(err)
	}
	if rel.Status.Cron == nil {
		return &apiv1.CronStatus{}
	}
	return rel.Status.Cron
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// TestFiresOnceAndRecords: a due run reaches the trigger Worker of the pod
// that runs the version, once, and is recorded; a restart does not repeat
// it, and runs only the latest time missed meanwhile, once.
func TestFiresOnceAndRecords(t *testing.T) {
	e := newEnv(t, false, readyPod("p1", "10.42.0.7", map[string]int{testVersion: 8081}))
	s := e.scheduler()
	e.now = t0.Add(30 * time.Second) // 10:00 is due
	e.tick(s)
	e.tick(s)
	calls := e.pods.got()
	want := call{addr: "10.42.0.7:" + strconv.Itoa(builder.TriggerPort), version: testVersion, script: testScript, cron: "*/5 * * * *", at: ms(t0)}
	if len(calls) != 1 || calls[0] != want {
		t.Fatalf("calls = %+v, want one %+v", calls, want)
	}
	st := e.status()
	if st.LastScheduledTime == nil || !st.LastScheduledTime.Time.Equal(t0) || len(st.Runs) != 1 ||
		st.Runs[0].Outcome != "ok" || st.Runs[0].VersionID != testVersion || !st.Runs[0].ScheduledTime.Time.Equal(t0) {
		t.Fatalf("status = %+v", st)
	}

	// A restart within the minute fires nothing.
	e.tick(e.scheduler())
	if n := len(e.pods.got()); n != 1 {
		t.Fatalf("a restart fired again: %d calls", n)
	}
	// Down from 10:00:30 to 10:17: 10:05, 10:10 and 10:15 were missed;
	// only 10:15 runs, once.
	e.now = t0.Add(17 * time.Minute)
	s = e.scheduler()
	e.tick(s)
	e.tick(s)
	calls = e.pods.got()
	if len(calls) != 2 || calls[1].at != ms(t0.Add(15*time.Minute)) {
		t.Fatalf("after the restart calls = %+v, want one more for 10:15", calls)
	}
	if st := e.status(); len(st.Runs) != 2 || !st.Runs[0].ScheduledTime.Time.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("runs = %+v, want 10:15 first", st.Runs)
	}
}

// TestNewTriggerDoesNotFireThePast: a trigger fires from the minute after
// it was made, not for times before.
func TestNewTriggerDoesNotFireThePast(t *testing.T) {
	e := newEnv(t, false, readyPod("p1", "10.42.0.7", map[string]int{testVersion: 8081}))
	var rel apiv1.WorkerRelease
	ctx := context.Background()
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: testNS, Name: testScript}, &rel); err != nil {
		t.Fatal(err)
	}
	rel.Spec.Schedules = []apiv1.CronTrigger{{Cron: "0 * * * *", CreatedOn: metav1.NewTime(t0.Add(2 * time.Minute))}}
	if err := e.c.Update(ctx, &rel); err != nil {
		t.Fatal(err)
	}
	s := e.scheduler()
	e.now = t0.Add(59 * time.Minute)
	e.tick(s)
	if calls := e.pods.got(); len(calls) != 0 {
		t.Fatalf("fired %+v for a time before the trigger existed", calls)
	}
	e.now = t0.Add(time.Hour + time.Second)
	e.tick(s)
	if calls := e.pods.got(); len(calls) != 1 || calls[0].at != ms(t0.Add(time.Hour)) || calls[0].cron != "0 * * * *" {
		t.Fatalf("calls = %+v, want 11:00", calls)
	}
}

// TestTargets: where a run goes, as the gateway routes a request.
func TestTargets(t *testing.T) {
	trigger := strconv.Itoa(builder.TriggerPort)
	for _, tc := range []struct {
		name             string
		watch, loadable  bool
		pods             []client.Object
		wantAddr, wantTr string
		missing          map[string]bool // addr+trace → the pod lacks it
	}{
		{name: "static", pods: []client.Object{readyPod("p1", "10.0.0.1", map[string]int{testVersion: 8081, workerd.LoaderWorkerName: 8079})},
			wantAddr: "10.0.0.1:" + trigger},
		{name: "traced static goes to the twin", watch: true, pods: []client.Object{readyPod("p1", "10.0.0.1", map[string]int{testVersion: 8081})},
			wantAddr: "10.0.0.1:" + trigger, wantTr: testScript},
		{name: "traced without a twin falls back to the Worker", watch: true, pods: []client.Object{readyPod("p1", "10.0.0.1", map[string]int{testVersion: 8081})},
			missing: map[string]bool{"10.0.0.1:" + trigger + "/" + testScript: true}, wantAddr: "10.0.0.1:" + trigger},
		{name: "traced loadable goes to the loader host", watch: true, loadable: true,
			pods:     []client.Object{readyPod("p1", "10.0.0.1", map[string]int{testVersion: 8081, workerd.LoaderWorkerName: 8079})},
			wantAddr: "10.0.0.1:8079", wantTr: testScript},
		{name: "a version no pod runs yet goes to a loader host", loadable: true,
			pods:     []client.Object{readyPod("old", "10.0.0.2", map[string]int{"bbbbbbbb-0000-4000-8000-000000000002": 8081, workerd.LoaderWorkerName: 8079})},
			wantAddr: "10.0.0.2:8079"},
		{name: "a pod that is not Ready gets nothing", pods: []client.Object{
			func() *corev1.Pod {
				p := readyPod("p0", "10.0.0.9", map[string]int{testVersion: 8081})
				p.Status.Conditions[0].Status = corev1.ConditionFalse
				return p
			}(), readyPod("p1", "10.0.0.1", map[string]int{testVersion: 8081})},
			wantAddr: "10.0.0.1:" + trigger},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.loadable, tc.pods...)
			e.watch = tc.watch
			e.pods.answer = func(c call) (int, string, bool) {
				if tc.missing[c.addr+"/"+c.trc] {
					return 404, "not here", true
				}
				return 200, `{"outcome":"ok","noRetry":false}`, false
			}
			e.now = t0.Add(time.Second)
			e.tick(e.scheduler())
			calls := e.pods.got()
			if len(calls) == 0 {
				t.Fatal("no call")
			}
			last := calls[len(calls)-1]
			if last.addr != tc.wantAddr || last.trc != tc.wantTr || last.version != testVersion {
				t.Errorf("run went to %+v, want %s traced %q", last, tc.wantAddr, tc.wantTr)
			}
			if st := e.status(); len(st.Runs) != 1 || st.Runs[0].Outcome != "ok" {
				t.Errorf("runs = %+v", st.Runs)
			}
		})
	}
}

// TestUnreachableAndNoRepeat: without a pod the run is recorded as
// unreachable after WaitForPod; a run that failed after it was sent (the
// pod answered 500) is not sent again.
func TestUnreachableAndNoRepeat(t *testing.T) {
	e := newEnv(t, false)
	e.now = t0.Add(time.Second)
	e.tick(e.scheduler())
	st := e.status()
	if len(st.Runs) != 1 || st.Runs[0].Outcome != OutcomeUnreachable || st.Runs[0].Message == "" {
		t.Fatalf("runs = %+v, want one unreachable with a message", st.Runs)
	}

	e = newEnv(t, false, readyPod("p1", "10.0.0.1", map[string]int{testVersion: 8081}), readyPod("p2", "10.0.0.2", map[string]int{testVersion: 8081}))
	e.pods.answer = func(call) (int, string, bool) { return 500, "worker died", false }
	e.now = t0.Add(time.Second)
	e.tick(e.scheduler())
	if calls := e.pods.got(); len(calls) != 1 {
		t.Fatalf("calls = %+v, want exactly one: a sent run is never sent again", calls)
	}
	if st := e.status(); len(st.Runs) != 1 || st.Runs[0].Outcome != OutcomeUnreachable {
		t.Fatalf("runs = %+v", st.Runs)
	}
}

// TestRunsAreBounded: status keeps the newest MaxCronRuns runs.
func TestRunsAreBounded(t *testing.T) {
	e := newEnv(t, false, readyPod("p1", "10.0.0.1", map[string]int{testVersion: 8081}))
	s := e.scheduler()
	for i := range apiv1.MaxCronRuns + 3 {
		e.now = t0.Add(time.Duration(i)*5*time.Minute + time.Second)
		e.tick(s)
	}
	st := e.status()
	if len(st.Runs) != apiv1.MaxCronRuns || !st.Runs[0].ScheduledTime.Time.Equal(t0.Add(time.Duration(apiv1.MaxCronRuns+2)*5*time.Minute)) {
		t.Fatalf("%d runs, newest %v", len(st.Runs), st.Runs[0].ScheduledTime)
	}
}

// TestLateTickLosesNoRun: once running, a tick that comes late (a busy
// process) fires every time due since the last one; only the first tick
// after a start fires the latest missed time alone.
func TestLateTickLosesNoRun(t *testing.T) {
	e := newEnv(t, false, readyPod("p1", "10.42.0.7", map[string]int{testVersion: 8081}))
	var rel apiv1.WorkerRelease
	ctx := context.Background()
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: testNS, Name: testScript}, &rel); err != nil {
		t.Fatal(err)
	}
	rel.Spec.Schedules = []apiv1.CronTrigger{{Cron: "* * * * *", CreatedOn: metav1.NewTime(t0.Add(-time.Hour))}}
	if err := e.c.Update(ctx, &rel); err != nil {
		t.Fatal(err)
	}
	s := e.scheduler()
	e.now = t0.Add(time.Second)
	e.tick(s) // the start: 10:00 only
	e.now = t0.Add(3*time.Minute + time.Second)
	e.tick(s) // late: 10:01, 10:02 and 10:03
	var got []string
	for _, c := range e.pods.got() {
		got = append(got, c.at)
	}
	want := []string{ms(t0), ms(t0.Add(time.Minute)), ms(t0.Add(2 * time.Minute)), ms(t0.Add(3 * time.Minute))}
	if len(got) != len(want) {
		t.Fatalf("fired %v, want %v", got, want)
	}
	seen := map[string]bool{}
	for _, g := range got {
		seen[g] = true
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("time %s not fired (fired %v)", w, got)
		}
	}
}
