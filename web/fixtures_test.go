package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/metrics"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/store/storetest"
	"github.com/octohq/octo/internal/tail"
	"github.com/octohq/octo/internal/workerlogs"
)

// The fixture: the default account with two workers, e2e-esm (two
// versions, the second active) and e2e-vars (one version with a secret),
// a second account, builds, a bundle with pods and events, and KV.
const (
	testPort     = 8787
	testAPIToken = "api-token-0123456789"
	// testS3Secret is the S3 secret key in the world's `octo env` lines:
	// like the API token, no answer may hold it.
	testS3Secret = "S3-secret-key-never-shown-0123456789abcd"
	testDashTok  = "dash-token-abcdef"
	// testLoginKey signs the world's login tokens (32 bytes).
	testLoginKey = "login-key-0123456789abcdef-01234"
	acct         = "0123456789abcdef0123456789abcdef"
	acct2        = "fedcba9876543210fedcba9876543210"
	ns           = store.DefaultNamespace
	ns2          = "team"
	esmV1        = "11111111-1111-4111-8111-111111111111"
	esmV2        = "22222222-2222-4222-8222-222222222222"
	varsV1       = "33333333-3333-4333-8333-333333333333"
	// secretValue is the value of e2e-vars' secret: it must never appear in
	// anything the dashboard answers.
	secretValue = "s3cr3t-value-never-shown"
	kvNS        = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
)

// TestMain runs the package's tests with a real S3 store behind the KV views.
func TestMain(m *testing.M) { os.Exit(storetest.RunWithS3(m, func(*store.BlobStore) {})) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s, err := store.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func version(script, id string, number int64, created time.Time, annotations map[string]string, bindings ...apiv1.WorkerBinding) *apiv1.WorkerVersion {
	return &apiv1.WorkerVersion{
		ObjectMeta: metav1.ObjectMeta{Name: store.VersionObjectName(script, number), Namespace: ns,
			Labels: map[string]string{apiv1.LabelAccount: acct, apiv1.LabelScript: store.ObjectName(script)}},
		Spec: apiv1.WorkerVersionSpec{
			AccountID: acct, ScriptName: script, VersionID: id, Number: number, MainModule: "index.js",
			Modules:           []apiv1.WorkerModule{{Name: "index.js", Type: apiv1.ModuleESModule, Size: 120, SHA256: strings.Repeat("a", 64)}},
			Bindings:          bindings,
			CompatibilityDate: "2025-01-01", Annotations: annotations, Source: "wrangler",
			CreatedAt: metav1.NewTime(created), StartupTimeMs: 12,
		},
		Status: apiv1.WorkerVersionStatus{Phase: apiv1.WorkerVersionReady},
	}
}

func release(script string, deployments ...apiv1.ReleaseDeployment) *apiv1.WorkerRelease {
	return &apiv1.WorkerRelease{
		ObjectMeta: metav1.ObjectMeta{Name: store.ObjectName(script), Namespace: ns,
			Labels: map[string]string{apiv1.LabelAccount: acct, apiv1.LabelScript: store.ObjectName(script)}},
		Spec: apiv1.WorkerReleaseSpec{AccountID: acct, ScriptName: script, Deployments: deployments},
		Status: apiv1.WorkerReleaseStatus{Conditions: []metav1.Condition{{
			Type: apiv1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Served", Message: "served by 1 pod",
			LastTransitionTime: metav1.NewTime(t0),
		}}},
	}
}

// withAssets gives v static assets (3 files, a single-page application,
// an ASSETS binding).
func withAssets(v *apiv1.WorkerVersion) *apiv1.WorkerVersion {
	v.Spec.Assets = &apiv1.VersionAssets{Manifest: strings.Repeat("c", 64), Files: 3, NotFoundHandling: "single-page-application", Binding: "ASSETS"}
	return v
}

// withCron gives rel a cron trigger and two recorded runs, newest first.
func withCron(rel *apiv1.WorkerRelease) *apiv1.WorkerRelease {
	rel.Spec.Schedules = []apiv1.CronTrigger{{Cron: "*/5 * * * *", CreatedOn: metav1.NewTime(t0)}}
	rel.Status.Cron = &apiv1.CronStatus{LastScheduledTime: &metav1.Time{Time: t0.Add(10 * time.Minute)}, Runs: []apiv1.CronRun{
		{Cron: "*/5 * * * *", ScheduledTime: metav1.NewTime(t0.Add(10 * time.Minute)), VersionID: varsV1, Outcome: "exception", DurationMillis: 12},
		{Cron: "*/5 * * * *", ScheduledTime: metav1.NewTime(t0.Add(5 * time.Minute)), VersionID: varsV1, Outcome: "ok", DurationMillis: 3},
	}}
	return rel
}

func deployment(id string, at time.Time, msg string, traffic ...apiv1.VersionTraffic) apiv1.ReleaseDeployment {
	d := apiv1.ReleaseDeployment{ID: id, CreatedOn: metav1.NewTime(at), Source: "wrangler", AuthorEmail: "dev@octo.localhost",
		Strategy: apiv1.DeploymentStrategyPercentage, Versions: traffic}
	if msg != "" {
		d.Annotations = map[string]string{apiv1.AnnotationMessage: msg}
	}
	return d
}

func fixtureObjects() []client.Object {
	bundleLabels := map[string]string{apiv1.LabelBundle: "octo", apiv1.LabelAccount: acct}
	started, finished := metav1.NewTime(t0.Add(3*time.Minute)), metav1.NewTime(t0.Add(3*time.Minute+3*time.Second))
	failedStart := metav1.NewTime(t0.Add(time.Minute))
	return []client.Object{
		&apiv1.WorkerAccount{ObjectMeta: metav1.ObjectMeta{Name: acct, Namespace: ns},
			Spec: apiv1.WorkerAccountSpec{WorkerBundleName: "octo", DisplayName: "octo", Subdomain: "octo"}},
		&apiv1.WorkerAccount{ObjectMeta: metav1.ObjectMeta{Name: acct2, Namespace: ns2},
			Spec: apiv1.WorkerAccountSpec{WorkerBundleName: "team"}},
		version("e2e-esm", esmV1, 1, t0, map[string]string{apiv1.AnnotationMessage: "first", apiv1.AnnotationTriggeredBy: "upload"}),
		version("e2e-esm", esmV2, 2, t0.Add(2*time.Minute), map[string]string{apiv1.AnnotationMessage: "second", apiv1.AnnotationTag: "v2-tag", apiv1.AnnotationTriggeredBy: "upload"}),
		release("e2e-esm",
			deployment("d2222222-2222-4222-8222-222222222222", t0.Add(2*time.Minute), "", apiv1.VersionTraffic{VersionID: esmV2, Percentage: 100}),
			deployment("d1111111-1111-4111-8111-111111111111", t0, "", apiv1.VersionTraffic{VersionID: esmV1, Percentage: 100})),
		withAssets(version("e2e-vars", varsV1, 1, t0.Add(time.Minute), nil,
			apiv1.WorkerBinding{Name: "GREETING", Type: apiv1.BindingPlainText, Text: "hello"},
			apiv1.WorkerBinding{Name: "CONF", Type: apiv1.BindingJSON, JSON: &apiextensionsv1.JSON{Raw: []byte(`{"a":1}`)}},
			apiv1.WorkerBinding{Name: "MYKV", Type: apiv1.BindingKV, NamespaceID: kvNS},
			apiv1.WorkerBinding{Name: "API_KEY", Type: apiv1.BindingSecretText, SecretRef: &apiv1.SecretKeyRef{Name: store.SecretName("e2e-vars"), Key: "API_KEY"}})),
		withCron(release("e2e-vars", deployment("d3333333-3333-4333-8333-333333333333", t0.Add(time.Minute), "", apiv1.VersionTraffic{VersionID: varsV1, Percentage: 100}))),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: store.SecretName("e2e-vars"), Namespace: ns},
			Data: map[string][]byte{"API_KEY": []byte(secretValue)}},
		&apiv1.JobBuilder{
			ObjectMeta: metav1.ObjectMeta{Name: "octo-build-b", Namespace: ns, Labels: bundleLabels, CreationTimestamp: metav1.NewTime(t0.Add(3 * time.Minute))},
			Spec: apiv1.JobBuilderSpec{AccountID: acct, BundleName: "octo", BaseImage: "base", TargetImage: "127.0.0.1:5000/octo/" + acct,
				Inputs: []apiv1.BuildInput{{VersionName: "e2e-esm-v2", ScriptName: "e2e-esm", VersionID: esmV2, Digest: "sha256:" + strings.Repeat("1", 64)},
					{VersionName: "e2e-vars-v1", ScriptName: "e2e-vars", VersionID: varsV1, Digest: "sha256:" + strings.Repeat("2", 64)}}},
			Status: apiv1.JobBuilderStatus{Phase: apiv1.JobBuilderSucceeded, Digest: "sha256:" + strings.Repeat("b", 64),
				Image: "127.0.0.1:5000/octo/" + acct + "@sha256:" + strings.Repeat("b", 64), StartedAt: &started, FinishedAt: &finished},
		},
		&apiv1.JobBuilder{
			ObjectMeta: metav1.ObjectMeta{Name: "octo-build-a", Namespace: ns, Labels: bundleLabels, CreationTimestamp: metav1.NewTime(t0.Add(time.Minute))},
			Spec: apiv1.JobBuilderSpec{AccountID: acct, BundleName: "octo", BaseImage: "base", TargetImage: "127.0.0.1:5000/octo/" + acct,
				Inputs: []apiv1.BuildInput{{VersionName: "e2e-esm-v1", ScriptName: "e2e-esm", VersionID: esmV1, Digest: "sha256:" + strings.Repeat("3", 64)}}},
			Status: apiv1.JobBuilderStatus{Phase: apiv1.JobBuilderFailed, StartedAt: &failedStart, Message: "push: registry unavailable"},
		},
		&apiv1.WorkerBundle{
			ObjectMeta: metav1.ObjectMeta{Name: "octo", Namespace: ns},
			Spec: apiv1.WorkerBundleSpec{AccountID: acct, Workers: []apiv1.BundleWorker{
				{ScriptName: "e2e-esm", VersionID: esmV2, VersionName: "e2e-esm-v2", Port: 8001},
				{ScriptName: "e2e-vars", VersionID: varsV1, VersionName: "e2e-vars-v1", Port: 8002}}},
			Status: apiv1.WorkerBundleStatus{JobBuilderName: "octo-build-b", ReadyReplicas: 1,
				Image: "127.0.0.1:5000/octo/" + acct + "@sha256:" + strings.Repeat("b", 64),
				Conditions: []metav1.Condition{
					{Type: apiv1.ConditionBuilt, Status: metav1.ConditionTrue, Reason: "Built", LastTransitionTime: metav1.NewTime(t0)},
					{Type: apiv1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Ready", LastTransitionTime: metav1.NewTime(t0)}}},
		},
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "octo-7d9f-abcde", Namespace: ns, Labels: bundleLabels},
			Spec: corev1.PodSpec{NodeName: "octo", Containers: []corev1.Container{{Name: "workerd", Image: "x",
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("272Mi")}}}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.88.0.7", StartTime: &metav1.Time{Time: t0.Add(4 * time.Minute)},
				ContainerStatuses: []corev1.ContainerStatus{{Name: "workerd", Ready: true, RestartCount: 2,
					State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
		},
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "octo-5c4b-fghij", Namespace: ns, Labels: bundleLabels},
			Spec:       corev1.PodSpec{NodeName: "octo", Containers: []corev1.Container{{Name: "workerd", Image: "x"}}},
			Status: corev1.PodStatus{Phase: corev1.PodPending,
				ContainerStatuses: []corev1.ContainerStatus{{Name: "workerd", RestartCount: 5,
					State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}},
		},
		// Not a bundle pod: not shown.
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "unrelated", Namespace: ns}},
		event("ev1", "Pod", "octo-5c4b-fghij", corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container workerd", t0.Add(6*time.Minute), 4),
		event("ev2", "WorkerBundle", "octo", corev1.EventTypeNormal, "BuildRequested", "JobBuilder octo-build-b builds 2 workers", t0.Add(3*time.Minute), 1),
		event("ev3", "Pod", "unrelated", corev1.EventTypeNormal, "Pulled", "not a bundle pod", t0.Add(7*time.Minute), 1),
		event("ev4", "ConfigMap", "x", corev1.EventTypeNormal, "Other", "not octo's", t0.Add(8*time.Minute), 1),
	}
}

func event(name, kind, obj, typ, reason, msg string, at time.Time, count int32) *corev1.Event {
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: ns},
		InvolvedObject: corev1.ObjectReference{Kind: kind, Name: obj, Namespace: ns},
		Type:           typ, Reason: reason, Message: msg, Count: count, LastTimestamp: metav1.NewTime(at),
	}
}

// kvFixture is the content of the e2e-kv namespace of the default account.
var kvFixture = map[string][]byte{
	"config/theme": []byte("dark"),
	"config/limit": []byte("42"),
	"greeting":     []byte("hello from KV"),
	"big":          []byte(strings.Repeat("0123456789abcdef", 640)), // 10 KiB
	"blob":         {0x00, 0x01, 0xfe, 0xff},
}

// world is a dashboard on the fixture, mounted on an echo server the way
// the edge mounts it.
type world struct {
	c     client.Client
	st    *store.Store
	blobs *store.BlobStore
	// kvNS is the ID of the default account's KV namespace "e2e-kv".
	kvNS string
	// d1DB is the UUID of the default account's D1 database "e2e-db".
	d1DB string
	// writes counts the writes to the cluster's objects.
	writes atomic.Int64
	hub    *tail.Hub
	d      *Dashboard
	e      *echo.Echo
	env    []string
	stat   Status
	// clock is the dashboard's time (unix nanoseconds); see now and advance.
	clock atomic.Int64
	// cookie is the value of a logged-in session cookie.
	cookie string
	// metrics holds e2e-esm's requests (metricsFixture).
	metrics *metrics.Recorder
	// usage is the CPU and memory of bundle octo's pods (metricsFixture).
	usage *metrics.Usage
	// logs holds e2e-esm's kept invocations (logsFixture).
	logs *workerlogs.Store
}

// logsFixture keeps two invocations of e2e-esm: v2 printed "hello marker"
// a minute ago, v1 threw two minutes ago.
func (w *world) logsFixture(t testing.TB) {
	w.logs = workerlogs.New(t.TempDir(), 0, w.now, nil)
	msg, _ := json.Marshal("hello marker")
	for _, ev := range []tail.Event{
		{Account: acct, ScriptName: "e2e-esm", Outcome: "exception", EventTimestamp: w.now().Add(-2 * time.Minute).UnixMilli(),
			ScriptVersion: &tail.ScriptVersion{ID: esmV1}, Exceptions: []tail.Exception{{Name: "Error", Message: "boom"}},
			Event: json.RawMessage(`{"request":{"method":"GET","url":"http://e2e-esm.octo.workers.localhost/boom"}}`)},
		{Account: acct, ScriptName: "e2e-esm", Outcome: "ok", EventTimestamp: w.now().Add(-time.Minute).UnixMilli(),
			ScriptVersion: &tail.ScriptVersion{ID: esmV2}, Logs: []tail.Log{{Level: "log", Message: []json.RawMessage{msg}}},
			Event: json.RawMessage(`{"request":{"method":"GET","url":"http://e2e-esm.octo.workers.localhost/"},"response":{"status":200}}`)},
	} {
		if err := w.logs.Keep(ev); err != nil {
			t.Fatal(err)
		}
	}
}

// metricsFixture records e2e-esm's requests a minute before the
// dashboard's time: v2 answered 5 with 200 and 2 with 500, v1 3 with 200.
func (w *world) metricsFixture() {
	at := w.now().Add(-time.Minute)
	w.metrics = metrics.New(0, func() time.Time { return at })
	for _, r := range []struct {
		version string
		status  int
		n       int
	}{{esmV2, 200, 5}, {esmV2, 500, 2}, {esmV1, 200, 3}} {
		for range r.n {
			w.metrics.Observe(metrics.Key{Account: acct, Script: "e2e-esm", Version: r.version}, r.status, 3*time.Millisecond)
		}
	}
	// Two samples of the minute: 3 s of CPU (5 % of a core), 150 MiB at most.
	w.usage = metrics.NewUsage(0, func() time.Time { return at })
	w.usage.Observe(metrics.UsageKey{Account: acct, Bundle: "octo"}, 1, 120<<20)
	w.usage.Observe(metrics.UsageKey{Account: acct, Bundle: "octo"}, 2, 150<<20)
	w.usage.Observe(metrics.UsageKey{Account: "other", Bundle: "other"}, 7, 10<<20)
}

func allReady() Status {
	parts := []Part{}
	for _, n := range []string{"pod-network", "containerd", "kine", "s3", "registry", "kube-apiserver", "kube-controller-manager",
		"kube-scheduler", "kubelet", "kube-proxy", "edge", "api", "gateway", "pod-api", "operators"} {
		p := Part{Name: n, State: ReadyState}
		switch n {
		case "edge":
			p.Endpoint = "http://127.0.0.1:8787"
		case "api":
			p.Endpoint = "http://127.0.0.1:8787/client/v4"
		case "gateway":
			p.Endpoint = "http://*.octo.workers.localhost:8787"
		case "s3":
			p.Endpoint = "http://127.0.0.1:9000"
		case "registry":
			p.Endpoint = "127.0.0.1:5000"
		}
		parts = append(parts, p)
	}
	return Status{State: ReadyState, Version: "v0.test", StartedAt: t0, Parts: parts}
}

func newWorld(t testing.TB, port int) *world {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w := &world{hub: tail.New(ctx, tail.Options{}), stat: allReady(), blobs: storetest.NewBucket(t),
		env: []string{"export CLOUDFLARE_API_BASE_URL='http://127.0.0.1:8787/client/v4'", "export CLOUDFLARE_API_TOKEN='" + testAPIToken + "'",
			"export CLOUDFLARE_ACCOUNT_ID='" + acct + "'", "export AWS_ACCESS_KEY_ID='OCTOACCESSKEY0123456'",
			"export AWS_SECRET_ACCESS_KEY='" + testS3Secret + "'"}}
	w.clock.Store(t0.Add(10 * time.Minute).UnixNano())
	count := func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		w.writes.Add(1)
		return c.Create(ctx, obj, opts...)
	}
	w.c = fake.NewClientBuilder().WithScheme(mustScheme(t)).WithObjects(fixtureObjects()...).
		WithInterceptorFuncs(interceptor.Funcs{
			Create: count,
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				w.writes.Add(1)
				return c.Update(ctx, obj, opts...)
			},
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				w.writes.Add(1)
				return c.Delete(ctx, obj, opts...)
			},
		}).Build()
	w.st = store.New(store.Options{Client: w.c, Blobs: w.blobs, AuthorEmail: "dev@octo.localhost", D1Dir: t.TempDir()})
	t.Cleanup(func() { _ = w.st.D1().Close() })
	kvNS, err := w.st.KV().CreateNamespace(ctx, acct, "e2e-kv")
	if err != nil {
		t.Fatal(err)
	}
	w.kvNS = kvNS.ID
	for k, v := range kvFixture {
		if err := w.st.KV().Put(ctx, acct, w.kvNS, k, store.KVEntry{Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	w.r2Fixture(t)
	w.d1DB = w.d1Fixture(t)
	w.metricsFixture()
	w.logsFixture(t)
	d, err := New(Options{
		Status: func() Status { return w.stat }, Reader: w.c, Store: w.st,
		DefaultAccount: store.Account{ID: acct, Subdomain: "octo"}, APIURL: "http://127.0.0.1:8787/client/v4",
		PodMemory: func(context.Context) (map[string]uint64, error) {
			return map[string]uint64{ns + "/octo-7d9f-abcde": 140 << 20}, nil
		},
		Tail: w.hub, EdgePort: port, Env: func() []string { return w.env }, Token: testDashTok,
		LoginKey: []byte(testLoginKey), Now: w.now,
		Metrics: func(_ context.Context, account, script string, from, to time.Time) ([]metrics.Point, error) {
			return w.metrics.Range(account, script, from, to), nil
		},
		Usage: func(_ context.Context, account, bundle string, from, to time.Time) ([]metrics.UsageMinute, error) {
			return w.usage.Range(account, bundle, from, to), nil
		},
		Logs: func(_ context.Context, account, script string, q workerlogs.Query) ([]workerlogs.Entry, error) {
			return w.logs.Search(account, script, q)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	w.d = d
	w.e = echo.New()
	d.Register(w.e)
	// As the edge does (edge.errorHandler): the dashboard renders the
	// errors under its prefix.
	w.e.HTTPErrorHandler = func(err error, c echo.Context) {
		if strings.HasPrefix(c.Request().URL.Path, d.ErrorPrefix()) {
			d.RenderError(err, c)
			return
		}
		w.e.DefaultHTTPErrorHandler(err, c)
	}
	w.cookie = w.login(t)
	return w
}

// now is the dashboard's clock.
func (w *world) now() time.Time { return time.Unix(0, w.clock.Load()).UTC() }

// advance moves the dashboard's clock.
func (w *world) advance(d time.Duration) { w.clock.Add(int64(d)) }

// loginToken mints a login token as `octo dashboard` does, at the world's time.
func (w *world) loginToken(t testing.TB) string {
	t.Helper()
	tok, err := LoginToken([]byte(testLoginKey), w.now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// login exchanges a fresh login token for a session and returns the cookie.
func (w *world) login(t testing.TB) string {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, LoginPath+"?token="+w.loginToken(t), nil)
	r.Host = fmt.Sprintf("127.0.0.1:%d", w.d.opts.EdgePort)
	rec := httptest.NewRecorder()
	w.e.ServeHTTP(rec, r)
	for _, c := range rec.Result().Cookies() {
		if c.Name == SessionCookie && rec.Code == http.StatusSeeOther {
			return c.Value
		}
	}
	t.Fatalf("login = %d %s, no session cookie", rec.Code, rec.Body)
	return ""
}

// state is what a refused request must leave unchanged: the number of writes
// to the cluster and every object in the S3 bucket.
func (w *world) state(t testing.TB) string {
	t.Helper()
	keys, err := w.blobs.List(context.Background(), "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(w.writes.Load(), keys)
}

// kvValue reads a value of the e2e-kv namespace from the store.
func (w *world) kvValue(t testing.TB, key string) string {
	t.Helper()
	e, err := w.st.KV().Get(context.Background(), acct, w.kvNS, key)
	if err != nil {
		t.Fatalf("KV get %q: %v", key, err)
	}
	return string(e.Value)
}

// r2Fixture is the default account's R2 bucket "e2e-assets": two objects at
// the top, two under docs/, an image with custom metadata.
var r2Fixture = map[string]string{
	"index.html":     "<h1>hello from R2</h1>",
	"notes.txt":      "plain notes",
	"docs/a.md":      "# A",
	"docs/deep/b.md": "# B",
	"img/logo.png":   "\x89PNG\r\n\x1a\n\x00\x00",
}

// r2Fixture creates the bucket e2e-assets with r2Fixture, and an empty
// bucket e2e-empty.
func (w *world) r2Fixture(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	r2 := w.st.R2()
	for _, b := range []string{"e2e-assets", "e2e-empty"} {
		if _, err := r2.CreateBucket(ctx, acct, b, ""); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range r2Fixture {
		opts := store.R2PutOptions{}
		if strings.HasSuffix(k, ".html") {
			opts.HTTP = store.R2HTTPMetadata{ContentType: "text/html"}
		}
		if k == "img/logo.png" {
			opts.HTTP = store.R2HTTPMetadata{ContentType: "image/png"}
			opts.Custom = map[string]string{"author": "octo"}
		}
		if _, err := r2.Put(ctx, acct, "e2e-assets", k, strings.NewReader(v), int64(len(v)), opts); err != nil {
			t.Fatal(err)
		}
	}
}

// d1Fixture creates the D1 database e2e-db: a table of three users and an
// empty table, and returns its UUID.
func (w *world) d1Fixture(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	db, err := w.st.D1().Create(ctx, acct, "e2e-db")
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.st.D1().Query(ctx, acct, db.UUID, []store.D1Statement{{SQL: `CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
		CREATE TABLE audit (at TEXT, what TEXT);
		INSERT INTO users (name) VALUES ('ada'), ('grace'), ('linus')`}})
	if err != nil {
		t.Fatal(err)
	}
	return db.UUID
}
