package daemon

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/warmstart"
	"github.com/octohq/octo/internal/workerd"
)

const testAccount = "0123456789abcdef0123456789abcdef"

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := apiv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func testRelease(script string, versions ...string) *apiv1.WorkerRelease {
	rel := &apiv1.WorkerRelease{ObjectMeta: metav1.ObjectMeta{Name: script, Namespace: "octo"},
		Spec: apiv1.WorkerReleaseSpec{AccountID: testAccount, ScriptName: script}}
	d := apiv1.ReleaseDeployment{ID: "d-" + script}
	for _, v := range versions {
		d.Versions = append(d.Versions, apiv1.VersionTraffic{VersionID: v, Percentage: 100 / int32(len(versions))})
	}
	rel.Spec.Deployments = []apiv1.ReleaseDeployment{d, {ID: "old", Versions: []apiv1.VersionTraffic{{VersionID: "v-old", Percentage: 100}}}}
	return rel
}

func testVersion(script, id string, bindings ...apiv1.WorkerBinding) *apiv1.WorkerVersion {
	return &apiv1.WorkerVersion{ObjectMeta: metav1.ObjectMeta{Name: script + "-" + id, Namespace: "octo"},
		Spec: apiv1.WorkerVersionSpec{AccountID: testAccount, ScriptName: script, VersionID: id, Number: 1, MainModule: "index.js",
			Modules: []apiv1.WorkerModule{{Name: "index.js", Type: apiv1.ModuleESModule}}, Bindings: bindings}}
}

func testAccountObject(id, namespace, subdomain string) *apiv1.WorkerAccount {
	return &apiv1.WorkerAccount{ObjectMeta: metav1.ObjectMeta{Name: id, Namespace: namespace}, Spec: apiv1.WorkerAccountSpec{Subdomain: subdomain}}
}

// TestServedVersions: the snapshot holds the versions of the active
// deployments the loader can run, not the older deployments' nor those
// with a KV binding, nor another script's version under a borrowed ID;
// each under its account's subdomain, lower-case, unless two accounts
// claim that subdomain.
func TestServedVersions(t *testing.T) {
	kv := apiv1.WorkerBinding{Name: "KV", Type: apiv1.BindingKV, NamespaceID: "ns"}
	shared := testRelease("shared", "v-shared")
	shared.Spec.AccountID = "claims-twice"
	sharedVersion := testVersion("shared", "v-shared")
	sharedVersion.Spec.AccountID = "claims-twice"
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(
		testAccountObject(testAccount, "octo", "Demo"),
		testAccountObject("claims-twice", "a", "same"), testAccountObject("also-claims", "b", "same"),
		testRelease("hello", "v-hello-a", "v-hello-b"), testVersion("hello", "v-hello-a"), testVersion("hello", "v-hello-b"), testVersion("hello", "v-old"),
		testRelease("kv", "v-kv"), testVersion("kv", "v-kv", kv),
		testRelease("thief", "v-other"), testVersion("other", "v-other"),
		shared, sharedVersion,
	).Build()
	got, versions, err := servedVersions(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	want := []warmstart.Entry{
		{Account: testAccount, Subdomain: "demo", Script: "hello", Version: "v-hello-a"},
		{Account: testAccount, Subdomain: "demo", Script: "hello", Version: "v-hello-b"},
		{Account: "claims-twice", Script: "shared", Version: "v-shared"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("served %+v, want %+v", got, want)
	}
	if versions["v-hello-b"] == nil || len(versions) != 3 {
		t.Fatalf("versions by ID %v, want the three served", versions)
	}
}

// TestPodsServe: the warm-start hosts retire only once every Workers pod
// is Ready with containers started in this run.
func TestPodsServe(t *testing.T) {
	started := time.Now().Add(-time.Minute).Truncate(time.Second)
	pod := func(name string, ready bool, since time.Time) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "octo", Labels: map[string]string{apiv1.LabelAccount: testAccount}}}
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(since)}}}}
		return p
	}
	for _, tc := range []struct {
		name string
		pods []client.Object
		want bool
	}{
		{"every pod of this run ready", []client.Object{pod("a", true, started.Add(time.Second)), pod("b", true, started)}, true},
		{"a pod not ready", []client.Object{pod("a", true, started.Add(time.Second)), pod("b", false, started.Add(time.Second))}, false},
		{"a pod still shows the earlier run", []client.Object{pod("a", true, started.Add(-time.Hour))}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(tc.pods...).Build()
			got, err := podsServe(context.Background(), c, started)
			if err != nil || got != tc.want {
				t.Fatalf("podsServe = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestPodsAfterWarmStart: while warm-start hosts serve, the kubelet's pods
// are held until octo is ready; without hosts they are not held.
func TestPodsAfterWarmStart(t *testing.T) {
	if !workerd.Embedded() {
		t.Skip("built without workerd: run `make workerd` first")
	}
	bin, err := workerd.Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	hostsOf := func(t *testing.T, entries []warmstart.Entry) (*early, *warmstart.Hosts) {
		t.Helper()
		s := warmstart.Snapshot{Dir: filepath.Join(t.TempDir(), "warm")}
		code := func(context.Context, warmstart.Entry) (workerd.LoaderCode, error) {
			return workerd.LoaderCode{CompatibilityDate: "2026-01-01", MainModule: "index.js", Modules: []workerd.LoaderModule{
				{Name: "index.js", Type: "js", Text: `export default { fetch() { return new Response("hi"); } };`}}}, nil
		}
		if _, _, err := s.Update(t.Context(), entries, code); err != nil {
			t.Fatal(err)
		}
		h := warmstart.NewHosts(warmstart.Options{Snapshot: s, Bin: func(context.Context) (string, error) { return bin, nil },
			Sandbox: workerd.Sandbox{AllowNoCgroup: true, Memory: 256 << 20}})
		e := startEarly(h)
		if err := h.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Stop(context.Background()) })
		e.finish(h.Ready(t.Context()))
		return e, h
	}
	held := func(hold func(context.Context) error, ctx context.Context) <-chan error {
		out := make(chan error, 1)
		go func() { out <- hold(ctx) }()
		return out
	}

	e, h := hostsOf(t, nil)
	if err := podsAfterWarmStart(e, h, make(chan struct{}))(t.Context()); err != nil {
		t.Fatalf("without hosts: %v, want the pods at once", err)
	}

	e, h = hostsOf(t, []warmstart.Entry{{Account: testAccount, Script: "hi", Version: "00000000-0000-4000-8000-000000000001"}})
	if len(h.Sockets()) == 0 {
		t.Fatal("the hosts do not serve")
	}
	ready := make(chan struct{})
	done := held(podsAfterWarmStart(e, h, ready), t.Context())
	select {
	case err := <-done:
		t.Fatalf("the pods were released before octo was ready (%v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(ready)
	if err := <-done; err != nil {
		t.Fatalf("once ready: %v, want the pods released", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done = held(podsAfterWarmStart(e, h, make(chan struct{})), ctx)
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a stopping kubelet got its pods")
	}
}
