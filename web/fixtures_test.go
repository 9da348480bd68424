package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/octohq/octo/internal/fakecf"
	apiv1 "github.com/octohq/octo/internal/operators/api/v1"
	"github.com/octohq/octo/internal/tail"
)

// The fixture: the default account with two workers, e2e-esm (two
// versions, the second active) and e2e-vars (one version with a secret),
// a second account, builds, a bundle with pods and events, and KV.
const (
	testPort     = 8787
	testAPIToken = "api-token-0123456789"
	testDashTok  = "dash-token-abcdef"
	acct         = "0123456789abcdef0123456789abcdef"
	acct2        = "fedcba9876543210fedcba9876543210"
	ns           = fakecf.DefaultNamespace
	ns2          = "team"
	esmV1        = "11111111-1111-4111-8111-111111111111"
	esmV2        = "22222222-2222-4222-8222-222222222222"
	varsV1       = "33333333-3333-4333-8333-333333333333"
	// secretValue is the value of e2e-vars' secret: it must never appear in
	// anything the dashboard answers.
	secretValue = "s3cr3t-value-never-shown"
	kvNS        = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s, err := fakecf.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func version(script, id string, number int64, created time.Time, annotations map[string]string, bindings ...apiv1.WorkerBinding) *apiv1.WorkerVersion {
	return &apiv1.WorkerVersion{
		ObjectMeta: metav1.ObjectMeta{Name: fakecf.VersionObjectName(script, number), Namespace: ns,
			Labels: map[string]string{fakecf.LabelAccount: acct, fakecf.LabelScript: fakecf.ObjectName(script)}},
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
		ObjectMeta: metav1.ObjectMeta{Name: fakecf.ObjectName(script), Namespace: ns,
			Labels: map[string]string{fakecf.LabelAccount: acct, fakecf.LabelScript: fakecf.ObjectName(script)}},
		Spec: apiv1.WorkerReleaseSpec{AccountID: acct, ScriptName: script, Deployments: deployments},
		Status: apiv1.WorkerReleaseStatus{Conditions: []metav1.Condition{{
			Type: apiv1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Served", Message: "served by 1 pod",
			LastTransitionTime: metav1.NewTime(t0),
		}}},
	}
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
	bundleLabels := map[string]string{LabelBundle: "octo", fakecf.LabelAccount: acct}
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
		version("e2e-vars", varsV1, 1, t0.Add(time.Minute), nil,
			apiv1.WorkerBinding{Name: "GREETING", Type: apiv1.BindingPlainText, Text: "hello"},
			apiv1.WorkerBinding{Name: "CONF", Type: apiv1.BindingJSON, JSON: &apiextensionsv1.JSON{Raw: []byte(`{"a":1}`)}},
			apiv1.WorkerBinding{Name: "MYKV", Type: apiv1.BindingKV, NamespaceID: kvNS},
			apiv1.WorkerBinding{Name: "API_KEY", Type: apiv1.BindingSecretText, SecretRef: &apiv1.SecretKeyRef{Name: fakecf.SecretName("e2e-vars"), Key: "API_KEY"}}),
		release("e2e-vars", deployment("d3333333-3333-4333-8333-333333333333", t0.Add(time.Minute), "", apiv1.VersionTraffic{VersionID: varsV1, Percentage: 100})),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fakecf.SecretName("e2e-vars"), Namespace: ns},
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
			Spec:       corev1.PodSpec{NodeName: "octo", Containers: []corev1.Container{{Name: "workerd", Image: "x"}}},
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

// apiCall is one request the stub API received.
type apiCall struct {
	Method, Path, RawPath, Query, Auth, ContentType, Body string
}

// stubAPI stands in for the Cloudflare API handler: it checks the bearer
// token, records every call and implements the few routes the dashboard
// uses on the fake client (deployments, delete) and an in-memory KV, with
// the API's envelope and error codes.
type stubAPI struct {
	c client.Client

	mu    sync.Mutex
	calls []apiCall
	kv    map[string]map[string][]byte // namespace → key → value
}

func newStubAPI(c client.Client) *stubAPI {
	return &stubAPI{c: c, kv: map[string]map[string][]byte{kvNS: {
		"config/theme": []byte("dark"),
		"config/limit": []byte("42"),
		"greeting":     []byte("hello from KV"),
		"big":          []byte(strings.Repeat("0123456789abcdef", 640)), // 10 KiB
		"blob":         {0x00, 0x01, 0xfe, 0xff},
	}}}
}

func (s *stubAPI) lastCall() apiCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.calls) == 0 {
		return apiCall{}
	}
	return s.calls[len(s.calls)-1]
}

func envelopeOK(w http.ResponseWriter, result any, info any) {
	w.Header().Set("Content-Type", "application/json")
	m := map[string]any{"success": true, "errors": []any{}, "messages": []any{}, "result": result}
	if info != nil {
		m["result_info"] = info
	}
	_ = json.NewEncoder(w).Encode(m)
}

func envelopeErr(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"success": false, "errors": []any{map[string]any{"code": code, "message": msg}}, "messages": []any{}, "result": nil})
}

func (s *stubAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.calls = append(s.calls, apiCall{Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(), Query: r.URL.RawQuery,
		Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type"), Body: string(body)})
	s.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+testAPIToken {
		envelopeErr(w, http.StatusBadRequest, fakecf.CodeAuthentication, "Authentication error")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), fakecf.BasePath+"/accounts/")
	if !ok {
		envelopeErr(w, http.StatusNotFound, 7003, "No route for that URI")
		return
	}
	account, rest, _ := strings.Cut(rest, "/")
	if account != acct && account != acct2 {
		envelopeErr(w, http.StatusNotFound, 7003, "Could not route to /accounts/"+account)
		return
	}
	seg := strings.Split(rest, "/")
	ctx := r.Context()
	switch {
	case len(seg) == 4 && seg[0] == "workers" && seg[1] == "scripts" && seg[3] == "deployments" && r.Method == http.MethodPost:
		s.postDeployment(ctx, w, seg[2], body)
	case len(seg) == 3 && seg[0] == "workers" && seg[1] == "scripts" && r.Method == http.MethodDelete:
		s.deleteScript(ctx, w, seg[2])
	case rest == "storage/kv/namespaces" && r.Method == http.MethodGet:
		out := []map[string]any{}
		if account == acct {
			out = append(out, map[string]any{"id": kvNS, "title": "e2e-kv", "supports_url_encoding": true})
		}
		envelopeOK(w, out, map[string]any{"page": 1, "per_page": 1000, "count": len(out), "total_count": len(out)})
	case len(seg) >= 5 && strings.Join(seg[:3], "/") == "storage/kv/namespaces":
		s.kvRoute(w, r, seg[3], seg[4:], body)
	default:
		envelopeErr(w, http.StatusNotFound, 7003, "No route for that URI")
	}
}

func (s *stubAPI) postDeployment(ctx context.Context, w http.ResponseWriter, script string, body []byte) {
	var req struct {
		Strategy string `json:"strategy"`
		Versions []struct {
			VersionID  string `json:"version_id"`
			Percentage *int   `json:"percentage"`
		} `json:"versions"`
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		envelopeErr(w, http.StatusBadRequest, fakecf.CodeBadRequest, "invalid JSON body")
		return
	}
	var rel apiv1.WorkerRelease
	if err := s.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: fakecf.ObjectName(script)}, &rel); err != nil {
		envelopeErr(w, http.StatusNotFound, fakecf.CodeNotFound, "This Worker does not exist on your account.")
		return
	}
	var vs apiv1.WorkerVersionList
	_ = s.c.List(ctx, &vs, client.InNamespace(ns))
	sum := 0
	var traffic []apiv1.VersionTraffic
	for _, v := range req.Versions {
		if !slices.ContainsFunc(vs.Items, func(x apiv1.WorkerVersion) bool {
			return x.Spec.ScriptName == script && x.Spec.VersionID == v.VersionID
		}) {
			envelopeErr(w, http.StatusNotFound, fakecf.CodeVersionNotFound, fmt.Sprintf("version %s of script %q not found", v.VersionID, script))
			return
		}
		sum += *v.Percentage
		traffic = append(traffic, apiv1.VersionTraffic{VersionID: v.VersionID, Percentage: int32(*v.Percentage)})
	}
	if sum != 100 {
		envelopeErr(w, http.StatusBadRequest, fakecf.CodeBadDeployment, fmt.Sprintf("the percentages of a deployment must add up to 100, not %d", sum))
		return
	}
	d := deployment(fmt.Sprintf("dddddddd-dddd-4ddd-8ddd-%012d", len(rel.Spec.Deployments)+1), time.Now().UTC(), req.Annotations[apiv1.AnnotationMessage], traffic...)
	rel.Spec.PushDeployment(d)
	if err := s.c.Update(ctx, &rel); err != nil {
		envelopeErr(w, http.StatusInternalServerError, fakecf.CodeInternal, err.Error())
		return
	}
	envelopeOK(w, map[string]any{"id": d.ID, "versions": req.Versions}, nil)
}

func (s *stubAPI) deleteScript(ctx context.Context, w http.ResponseWriter, script string) {
	var rel apiv1.WorkerRelease
	if err := s.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: fakecf.ObjectName(script)}, &rel); err != nil {
		envelopeErr(w, http.StatusNotFound, fakecf.CodeNotFound, "This Worker does not exist on your account.")
		return
	}
	_ = s.c.Delete(ctx, &rel)
	var vs apiv1.WorkerVersionList
	_ = s.c.List(ctx, &vs, client.InNamespace(ns))
	for i := range vs.Items {
		if vs.Items[i].Spec.ScriptName == script {
			_ = s.c.Delete(ctx, &vs.Items[i])
		}
	}
	envelopeOK(w, nil, nil)
}

func (s *stubAPI) kvRoute(w http.ResponseWriter, r *http.Request, nsID string, seg []string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	store, ok := s.kv[nsID]
	if !ok {
		envelopeErr(w, http.StatusNotFound, fakecf.CodeKVNotFound, "namespace not found")
		return
	}
	if len(seg) == 1 && seg[0] == "keys" && r.Method == http.MethodGet {
		var names []string
		for k := range store {
			if strings.HasPrefix(k, r.URL.Query().Get("prefix")) {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		out := []map[string]any{}
		for _, n := range names {
			out = append(out, map[string]any{"name": n})
		}
		envelopeOK(w, out, map[string]any{"count": len(out), "cursor": ""})
		return
	}
	if len(seg) != 2 || seg[0] != "values" {
		envelopeErr(w, http.StatusNotFound, 7003, "No route for that URI")
		return
	}
	key, err := url.PathUnescape(seg[1])
	if err != nil {
		envelopeErr(w, http.StatusBadRequest, fakecf.CodeBadRequest, "bad key")
		return
	}
	switch r.Method {
	case http.MethodGet:
		v, ok := store[key]
		if !ok {
			envelopeErr(w, http.StatusNotFound, fakecf.CodeKVKeyNotFound, "key not found")
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(v)
	case http.MethodPut:
		store[key] = body
		envelopeOK(w, nil, nil)
	case http.MethodDelete:
		delete(store, key)
		envelopeOK(w, nil, nil)
	}
}

// world is a dashboard on the fixture, mounted on an echo server the way
// the edge mounts it.
type world struct {
	c    client.Client
	api  *stubAPI
	hub  *tail.Hub
	d    *Dashboard
	e    *echo.Echo
	env  []string
	stat Status
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
	c := fake.NewClientBuilder().WithScheme(mustScheme(t)).WithObjects(fixtureObjects()...).Build()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w := &world{c: c, api: newStubAPI(c), hub: tail.New(ctx, tail.Options{}), stat: allReady(),
		env: []string{"export CLOUDFLARE_API_BASE_URL='http://127.0.0.1:8787/client/v4'", "export CLOUDFLARE_API_TOKEN='" + testAPIToken + "'",
			"export CLOUDFLARE_ACCOUNT_ID='" + acct + "'"}}
	d, err := New(Options{
		Status: func() Status { return w.stat }, Reader: c,
		API:  API{Handler: w.api, Token: testAPIToken, AccountID: acct, Subdomain: "octo"},
		Tail: w.hub, EdgePort: port, Env: func() []string { return w.env }, Token: testDashTok,
		Now: func() time.Time { return t0.Add(10 * time.Minute) },
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
	return w
}

// echoWithAPI is an echo server with the stub API mounted under /client/v4,
// as the edge mounts the real one.
func echoWithAPI(api http.Handler) *echo.Echo {
	e := echo.New()
	e.Any(fakecf.BasePath+"/*", echo.WrapHandler(api))
	return e
}
