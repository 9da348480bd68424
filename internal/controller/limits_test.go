package controller

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/event"

	apiv1 "github.com/octohq/octo/api/v1"
)

func TestLivenessFailureThreshold(t *testing.T) {
	for _, c := range []struct {
		cpu  time.Duration
		want int32
	}{
		{apiv1.DefaultCPULimit, 31},
		{5 * time.Second, 6},
		{2 * time.Second, 3},
		{2500 * time.Millisecond, 4},
		{time.Millisecond, 2},
		{apiv1.MaxCPULimit, 301},
	} {
		if got := LivenessFailureThreshold(c.cpu); got != c.want {
			t.Errorf("LivenessFailureThreshold(%v) = %d, want %d", c.cpu, got, c.want)
		}
	}
}

// withCPU gives v limits.cpu_ms = ms.
func withCPU(v *apiv1.WorkerVersion, ms int64) *apiv1.WorkerVersion {
	v.Spec.Limits = &apiv1.VersionLimits{CPUMs: ms}
	return v
}

// The liveness probe of a pod waits out the largest CPU limit of the
// versions it serves, the default for those without limits.
func TestLivenessFollowsCPULimit(t *testing.T) {
	socks := []socket{{ScriptName: "a", VersionID: id1, Port: 8081}, {ScriptName: "b", VersionID: id2, Port: 8082}}
	b := &apiv1.WorkerBundle{}
	for _, c := range []struct {
		name     string
		versions map[string]*apiv1.WorkerVersion
		want     int32
	}{
		{"no limits", map[string]*apiv1.WorkerVersion{id1: workerVersion(acct, "a", 1, id1), id2: workerVersion(acct, "b", 1, id2)}, 31},
		{"2 s and 5 s", map[string]*apiv1.WorkerVersion{id1: withCPU(workerVersion(acct, "a", 1, id1), 2000), id2: withCPU(workerVersion(acct, "b", 1, id2), 5000)}, 6},
		{"50 ms and the default", map[string]*apiv1.WorkerVersion{id1: withCPU(workerVersion(acct, "a", 1, id1), 50), id2: workerVersion(acct, "b", 1, id2)}, 31},
		{"5 min and a missing version", map[string]*apiv1.WorkerVersion{id1: withCPU(workerVersion(acct, "a", 1, id1), 300000)}, 301},
		{"a missing version only", map[string]*apiv1.WorkerVersion{}, 31},
	} {
		p := container(b, "img", socks, c.versions).LivenessProbe
		if p == nil || p.FailureThreshold != c.want || p.PeriodSeconds != 1 || p.TerminationGracePeriodSeconds == nil || *p.TerminationGracePeriodSeconds != 1 {
			t.Errorf("%s: liveness probe %+v, want failure threshold %d", c.name, p, c.want)
		}
	}
	if p := container(b, "img", nil, nil).LivenessProbe; p.FailureThreshold != 31 {
		t.Errorf("no workers: failure threshold %d, want 31", p.FailureThreshold)
	}

	// Through the bundle reconciler: a bundle holding versions with cpu_ms
	// 2000 and 5000.
	v1 := withCPU(workerVersion(acct, "fast", 1, id1), 2000)
	v2 := withCPU(workerVersion(acct, "slow", 1, id2), 5000)
	e := newEnv(t, account(acct, "b1"), v1, v2,
		release(acct, "fast", deployment(uuidN("dddddddd", 1), traffic(id1, 100))),
		release(acct, "slow", deployment(uuidN("dddddddd", 2), traffic(id2, 100))))
	bundle := e.converge(acct)
	var dep appsv1.Deployment
	e.get(WorkloadName(bundle.Name), &dep)
	if p := dep.Spec.Template.Spec.Containers[0].LivenessProbe; p == nil || p.FailureThreshold != 6 {
		t.Errorf("liveness probe %+v, want failure threshold 6", p)
	}
	// The pods name each version's own limit for the gateway.
	want := `{"` + id1 + `":2000,"` + id2 + `":5000}`
	if got := dep.Spec.Template.Annotations[apiv1.AnnotationCPULimits]; got != want {
		t.Errorf("cpu-limits annotation %s, want %s", got, want)
	}
	if l := cpuLimits(socks, map[string]*apiv1.WorkerVersion{id1: workerVersion(acct, "a", 1, id1)}); l != nil {
		t.Errorf("versions without limits: %v, want no annotation", l)
	}
}

// While the gateway marks a pod of the bundle as stalled, its Deployment
// runs one more replica; unmarked, it goes back.
func TestStalledPodSurge(t *testing.T) {
	e := newEnv(t, account(acct, "b1"), workerVersion(acct, "hello", 1, id1),
		release(acct, "hello", deployment(uuidN("dddddddd", 1), traffic(id1, 100))))
	e.converge(acct)
	replicasOf := func() int32 {
		t.Helper()
		var dep appsv1.Deployment
		e.get("b1", &dep)
		return *dep.Spec.Replicas
	}
	setStalled := func(pod string, spec *int32) {
		t.Helper()
		var b apiv1.WorkerBundle
		e.get("b1", &b)
		if pod == "" {
			delete(b.Annotations, apiv1.AnnotationStalledPod)
		} else {
			metav1.SetMetaDataAnnotation(&b.ObjectMeta, apiv1.AnnotationStalledPod, pod)
		}
		b.Spec.Replicas = spec
		e.update(&b)
		e.reconcileBundle("b1")
	}
	if n := replicasOf(); n != 1 {
		t.Fatalf("replicas %d, want 1", n)
	}
	for _, c := range []struct {
		pod  string
		spec *int32
		want int32
	}{
		{"b1-5d8f9c7b6-x2x7q", nil, 2},
		{"", nil, 1},
		{"b1-5d8f9c7b6-x2x7q", ptr.To(int32(3)), 4},
		{"b1-5d8f9c7b6-abcde", ptr.To(int32(3)), 4},
		{"", ptr.To(int32(3)), 3},
		{"b1-5d8f9c7b6-x2x7q", ptr.To(int32(0)), 0}, // scaled to zero: nothing to relieve
	} {
		setStalled(c.pod, c.spec)
		if n := replicasOf(); n != c.want {
			t.Errorf("stalled pod %q, spec.replicas %v: Deployment replicas %d, want %d", c.pod, ptr.Deref(c.spec, -1), n, c.want)
		}
	}
	// The surge replica counts in the bundle's readiness.
	setStalled("b1-5d8f9c7b6-x2x7q", nil)
	e.rollOut("b1")
	e.reconcileBundle("b1")
	var b apiv1.WorkerBundle
	e.get("b1", &b)
	if b.Status.ReadyReplicas != 2 {
		t.Errorf("ready replicas %d, want 2", b.Status.ReadyReplicas)
	}
}

// The bundle controller reconciles when the stalled-pod annotation changes,
// not when any other annotation does.
func TestStalledPodPredicate(t *testing.T) {
	bundle := func(annotations map[string]string) *apiv1.WorkerBundle {
		return &apiv1.WorkerBundle{ObjectMeta: metav1.ObjectMeta{Name: "b1", Namespace: ns, Annotations: annotations}}
	}
	p := stalledPodChanged()
	for _, c := range []struct {
		name     string
		old, new map[string]string
		want     bool
	}{
		{"set", nil, map[string]string{apiv1.AnnotationStalledPod: "pod-a"}, true},
		{"removed", map[string]string{apiv1.AnnotationStalledPod: "pod-a"}, nil, true},
		{"another pod", map[string]string{apiv1.AnnotationStalledPod: "pod-a"}, map[string]string{apiv1.AnnotationStalledPod: "pod-b"}, true},
		{"unchanged", map[string]string{apiv1.AnnotationStalledPod: "pod-a"}, map[string]string{apiv1.AnnotationStalledPod: "pod-a", "other": "x"}, false},
		{"other annotation", nil, map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}, false},
		{"other annotation removed", map[string]string{"other": "x"}, nil, false},
	} {
		if got := p.Update(event.UpdateEvent{ObjectOld: bundle(c.old), ObjectNew: bundle(c.new)}); got != c.want {
			t.Errorf("%s: Update = %v, want %v", c.name, got, c.want)
		}
	}
	if p.Create(event.CreateEvent{Object: bundle(map[string]string{apiv1.AnnotationStalledPod: "pod-a"})}) ||
		p.Delete(event.DeleteEvent{Object: bundle(nil)}) || p.Generic(event.GenericEvent{Object: bundle(nil)}) {
		t.Error("the predicate passes events other than updates")
	}
}
