package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/builder"
)

const (
	ns       = "octo"
	registry = "127.0.0.1:5050"
	podHost  = "10.42.0.1:8787"
	baseRef  = registry + "/octo/workerd@sha256:" + "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0"
)

// fakeBuilder records builds and fails the versions listed in fail.
type fakeBuilder struct {
	mu     sync.Mutex
	builds []builder.BuildRequest
	fail   map[string]string // version ID -> workerd's message
	err    error
}

func (f *fakeBuilder) EnsureBase(context.Context) (string, error) { return baseRef, nil }

func (f *fakeBuilder) Build(_ context.Context, req builder.BuildRequest) (builder.BuildResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.builds = append(f.builds, req)
	if f.err != nil {
		return builder.BuildResult{}, f.err
	}
	res := builder.BuildResult{Ports: map[string]int{}, Duration: 12 * time.Millisecond}
	h := sha256.New()
	fmt.Fprintln(h, req.BaseImage)
	for _, w := range req.Workers {
		id := w.Version.Spec.VersionID
		if msg, bad := f.fail[id]; bad {
			res.Failed = append(res.Failed, apiv1.FailedWorker{ScriptName: w.Version.Spec.ScriptName, VersionID: id, Message: msg})
			continue
		}
		res.Ports[id] = w.Port
		fmt.Fprintln(h, id, w.Port)
	}
	res.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	res.Image = req.Repository + "@" + res.Digest
	return res, nil
}

func (f *fakeBuilder) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.builds)
}

// env is a fake cluster with the three reconcilers.
type env struct {
	t       *testing.T
	c       client.Client
	rec     *record.FakeRecorder
	b       *fakeBuilder
	account *AccountReconciler
	bundle  *BundleReconciler
	jb      *JobBuilderReconciler
	now     time.Time
	uid     int
}

func newEnv(t *testing.T, objs ...client.Object) *env {
	t.Helper()
	s, err := Scheme()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, rec: record.NewFakeRecorder(10000), b: &fakeBuilder{fail: map[string]string{}},
		now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	// The fake client sets neither UIDs nor creation times; the API server does.
	stamp := func(obj client.Object) {
		if obj.GetUID() == "" {
			e.uid++
			obj.SetUID(types.UID(fmt.Sprintf("uid-%04d", e.uid)))
		}
		if ts := obj.GetCreationTimestamp(); ts.IsZero() {
			e.now = e.now.Add(time.Second)
			obj.SetCreationTimestamp(metav1.NewTime(e.now))
		}
	}
	for _, o := range objs {
		stamp(o)
	}
	e.c = fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).
		WithStatusSubresource(&apiv1.WorkerAccount{}, &apiv1.WorkerBundle{}, &apiv1.WorkerRelease{}, &apiv1.WorkerVersion{},
			&apiv1.JobBuilder{}, &appsv1.Deployment{}, &corev1.Service{}).
		WithInterceptorFuncs(interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				stamp(obj)
				e.admit(obj, nil)
				return c.Create(ctx, obj, opts...)
			},
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				e.admit(obj, e.stored(ctx, c, obj))
				return c.Update(ctx, obj, opts...)
			},
			Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
				old := e.stored(ctx, c, obj)
				err := c.Patch(ctx, obj, patch, opts...)
				if err == nil {
					e.admit(obj, old)
				}
				return err
			},
			SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
				e.admit(obj, e.stored(ctx, c, obj))
				return c.SubResource(sub).Update(ctx, obj, opts...)
			},
		}).Build()
	opts := Options{Builder: e.b, Registry: registry, PodHost: podHost, GatewayPort: 8787}
	if err := opts.defaults(); err != nil {
		t.Fatal(err)
	}
	e.account = &AccountReconciler{Client: e.c, Scheme: s, Recorder: e.rec, Options: opts, Now: func() time.Time { return e.now }}
	e.bundle = &BundleReconciler{Client: e.c, Scheme: s, Recorder: e.rec, Options: opts}
	e.jb = &JobBuilderReconciler{Client: e.c, APIReader: e.c, Scheme: s, Recorder: e.rec, Options: opts, Now: func() time.Time { return e.now }}
	return e
}

// stored returns the stored version of obj, or nil.
func (e *env) stored(ctx context.Context, c client.Reader, obj client.Object) client.Object {
	old := obj.DeepCopyObject().(client.Object)
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), old); err != nil {
		return nil
	}
	return old
}

// admit fails the test when obj (an update of old, unless nil) would not
// pass the CRD's validation.
func (e *env) admit(obj, old client.Object) {
	gvk, err := apiutil.GVKForObject(obj, e.c.Scheme())
	if err != nil || gvk.Group != apiv1.Group {
		return
	}
	var o any
	if old != nil {
		o = old
	}
	if errs := crdSchemas.check(e.t, gvk.Kind, obj, o); len(errs) > 0 {
		e.t.Errorf("%s %s would be refused by the API server: %v", gvk.Kind, obj.GetName(), errs.ToAggregate())
	}
}

func req(name string) ctrl.Request {
	return ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}
}

func (e *env) reconcileAccount(name string) ctrl.Result {
	e.t.Helper()
	res, err := e.account.Reconcile(context.Background(), req(name))
	if err != nil {
		e.t.Fatalf("account %s: %v", name, err)
	}
	return res
}

func (e *env) reconcileBundle(name string) ctrl.Result {
	e.t.Helper()
	res, err := e.bundle.Reconcile(context.Background(), req(name))
	if err != nil {
		e.t.Fatalf("bundle %s: %v", name, err)
	}
	return res
}

func (e *env) reconcileJobBuilder(name string) ctrl.Result {
	e.t.Helper()
	res, err := e.jb.Reconcile(context.Background(), req(name))
	if err != nil {
		e.t.Fatalf("jobbuilder %s: %v", name, err)
	}
	return res
}

// converge runs the reconcilers in the order the watches would until the
// account's bundle is built and rolled out (the Deployment's status is
// faked as rolled out).
func (e *env) converge(account string) *apiv1.WorkerBundle {
	e.t.Helper()
	e.reconcileAccount(account)
	var a apiv1.WorkerAccount
	e.get(account, &a)
	bname := BundleName(&a)
	e.buildAndRollOut(bname)
	e.reconcileAccount(account)
	var b apiv1.WorkerBundle
	e.get(bname, &b)
	return &b
}

// buildAndRollOut runs a bundle's build and rollout (the Deployment's
// status faked as rolled out).
func (e *env) buildAndRollOut(bundle string) {
	e.t.Helper()
	e.reconcileBundle(bundle)
	var b apiv1.WorkerBundle
	e.get(bundle, &b)
	e.reconcileJobBuilder(b.Status.JobBuilderName)
	e.reconcileBundle(bundle)
	e.rollOut(bundle)
	e.reconcileBundle(bundle)
}

// rollOut fakes the Deployment controller: every replica updated and ready.
func (e *env) rollOut(bundle string) {
	e.t.Helper()
	var dep appsv1.Deployment
	e.get(WorkloadName(bundle), &dep)
	n := *dep.Spec.Replicas
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
	if err := e.c.Status().Update(context.Background(), &dep); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) get(name string, obj client.Object) {
	e.t.Helper()
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, obj); err != nil {
		e.t.Fatalf("get %T %s: %v", obj, name, err)
	}
}

func (e *env) create(obj client.Object) {
	e.t.Helper()
	if err := e.c.Create(context.Background(), obj); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) update(obj client.Object) {
	e.t.Helper()
	if err := e.c.Update(context.Background(), obj); err != nil {
		e.t.Fatal(err)
	}
}

// events drains the recorded events.
func (e *env) events() []string {
	var out []string
	for {
		select {
		case ev := <-e.rec.Events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

func (e *env) jobBuilders(bundle string) []string {
	e.t.Helper()
	var list apiv1.JobBuilderList
	if err := e.c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, jb := range list.Items {
		if jb.Spec.BundleName == bundle {
			names = append(names, jb.Name)
		}
	}
	sort.Strings(names)
	return names
}

// Objects.

func account(name, bundle string) *apiv1.WorkerAccount {
	return &apiv1.WorkerAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: apiv1.WorkerAccountSpec{WorkerBundleName: bundle, Subdomain: "dev"}}
}

func uuidN(prefix string, n int) string {
	return fmt.Sprintf("%s-0000-4000-8000-%012d", prefix, n)
}

func workerVersion(acct, script string, number int64, id string, bindings ...apiv1.WorkerBinding) *apiv1.WorkerVersion {
	prefix := fmt.Sprintf("accounts/%s/workers/%s/versions/%s/", acct, script, id)
	return &apiv1.WorkerVersion{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-v%d", strings.ReplaceAll(script, "_", "-"), number), Namespace: ns,
			Labels: map[string]string{apiv1.LabelAccount: acct, "api.cf-worker/script": script}},
		Spec: apiv1.WorkerVersionSpec{
			AccountID: acct, ScriptName: script, VersionID: id, Number: number,
			Storage:    apiv1.WorkerVersionStorage{Bucket: "octo", Prefix: prefix},
			MainModule: "index.js",
			Modules:    []apiv1.WorkerModule{{Name: "index.js", Type: apiv1.ModuleESModule, Key: prefix + "modules/index.js", SHA256: strings.Repeat("0", 64)}},
			Bindings:   bindings,
			CreatedAt:  metav1.NewTime(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)),
		},
	}
}

func deployment(id string, traffic ...apiv1.VersionTraffic) apiv1.ReleaseDeployment {
	return apiv1.ReleaseDeployment{ID: id, Strategy: apiv1.DeploymentStrategyPercentage, Versions: traffic,
		CreatedOn: metav1.NewTime(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC))}
}

func traffic(id string, pct int32) apiv1.VersionTraffic {
	return apiv1.VersionTraffic{VersionID: id, Percentage: pct}
}

func release(acct, script string, deployments ...apiv1.ReleaseDeployment) *apiv1.WorkerRelease {
	return &apiv1.WorkerRelease{
		ObjectMeta: metav1.ObjectMeta{Name: strings.ReplaceAll(script, "_", "-"), Namespace: ns,
			Labels: map[string]string{apiv1.LabelAccount: acct}},
		Spec: apiv1.WorkerReleaseSpec{AccountID: acct, ScriptName: script, Deployments: deployments},
	}
}

// workersOf lists a bundle's workers as "script/versionID:port".
func workersOf(b *apiv1.WorkerBundle) []string {
	var out []string
	for _, w := range b.Spec.Workers {
		out = append(out, fmt.Sprintf("%s/%s:%d", w.ScriptName, w.VersionID, w.Port))
	}
	return out
}

func equalStrings(a, b []string) bool { return slices.Equal(a, b) }
