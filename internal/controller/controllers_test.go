package controller

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/builder"
	"github.com/octohq/octo/internal/workerd"
)

// TestLoaderSocketAnnotated: a pod advertises the loader host only when
// its image has one (apiv1.AnnotationLoaderPort on the JobBuilder that
// built it); images built before the loader keep their static twins.
func TestLoaderSocketAnnotated(t *testing.T) {
	b := &apiv1.WorkerBundle{ObjectMeta: metav1.ObjectMeta{Name: "octo", Namespace: "octo"}, Spec: apiv1.WorkerBundleSpec{AccountID: acct}}
	socks := []socket{{ScriptName: "hello", VersionID: "11111111-0000-4000-8000-000000000001", VersionName: "hello-v1", Port: 8081}}
	for name, c := range map[string]struct {
		annotations map[string]string
		want        map[string]int32
	}{
		"with loader":   {map[string]string{apiv1.AnnotationLoaderPort: "8079"}, map[string]int32{socks[0].VersionID: 8081, workerd.LoaderWorkerName: builder.LoaderPort}},
		"before loader": {nil, map[string]int32{socks[0].VersionID: 8081}},
		"bad value":     {map[string]string{apiv1.AnnotationLoaderPort: "70000"}, map[string]int32{socks[0].VersionID: 8081}},
	} {
		jb := &apiv1.JobBuilder{ObjectMeta: metav1.ObjectMeta{Annotations: c.annotations}, Status: apiv1.JobBuilderStatus{Image: "img"}}
		var dep appsv1.Deployment
		mutateDeployment(&dep, b, jb, socks, nil, nil)
		var got map[string]int32
		if err := json.Unmarshal([]byte(dep.Spec.Template.Annotations[apiv1.AnnotationSockets]), &got); err != nil || !equalPorts(got, c.want) {
			t.Errorf("%s: sockets %v, want %v", name, got, c.want)
		}
	}
}

const acct = "0123456789abcdef0123456789abcdef"

var (
	id1 = uuidN("11111111", 1)
	id2 = uuidN("22222222", 2)
	id3 = uuidN("33333333", 3)
	id4 = uuidN("44444444", 4)
)

func TestAccountBuildsBundle(t *testing.T) {
	v1 := workerVersion(acct, "hello", 1, id1)
	v2 := workerVersion(acct, "hello", 2, id2)
	rel := release(acct, "hello", deployment(uuidN("dddddddd", 1), traffic(id1, 30), traffic(id2, 70)))
	otherV := workerVersion("otheraccount", "other", 1, uuidN("99999999", 1))
	otherRel := release("otheraccount", "other", deployment(uuidN("dddddddd", 9), traffic(otherV.Spec.VersionID, 100)))
	e := newEnv(t, account(acct, "b1"), v1, v2, rel, otherV, otherRel)

	e.reconcileAccount(acct)
	var b apiv1.WorkerBundle
	e.get("b1", &b)
	if got, want := workersOf(&b), []string{"hello/" + id1 + ":8081", "hello/" + id2 + ":8082"}; !equalStrings(got, want) {
		t.Errorf("workers %v, want %v", got, want)
	}
	if ref := metav1.GetControllerOf(&b); ref == nil || ref.Kind != "WorkerAccount" || ref.Name != acct {
		t.Errorf("bundle controller %+v, want the account", ref)
	}
	if b.Spec.AccountID != acct || b.Labels[apiv1.LabelAccount] != acct {
		t.Errorf("bundle account %q labels %v", b.Spec.AccountID, b.Labels)
	}
	var a apiv1.WorkerAccount
	e.get(acct, &a)
	if a.Status.BundleName != "b1" || a.Status.Subdomain != "dev" || meta.IsStatusConditionTrue(a.Status.Conditions, apiv1.ConditionReady) {
		t.Errorf("account status %+v", a.Status)
	}

	// Idempotent: nothing changes on a second pass.
	rv := b.ResourceVersion
	e.reconcileAccount(acct)
	e.get("b1", &b)
	if b.ResourceVersion != rv {
		t.Errorf("second reconcile rewrote the bundle")
	}

	// A preview upload (not deployed) joins the bundle on the next free port.
	e.create(workerVersion(acct, "hello", 3, id3))
	e.reconcileAccount(acct)
	e.get("b1", &b)
	if got, want := workersOf(&b), []string{"hello/" + id1 + ":8081", "hello/" + id2 + ":8082", "hello/" + id3 + ":8083"}; !equalStrings(got, want) {
		t.Errorf("after upload: workers %v, want %v", got, want)
	}

	// A new deployment: version 3 only. The change only removes workers,
	// so they linger (nothing rolls out: wrangler's upload-then-deploy costs
	// one rollout) until Options.Linger after the bundle's last change; then
	// 1 and 2 leave and 3 keeps its port.
	e.get("hello", rel)
	rel.Spec.PushDeployment(deployment(uuidN("dddddddd", 2), traffic(id3, 100)))
	e.update(rel)
	rv = b.ResourceVersion
	e.reconcileAccount(acct)
	e.get("b1", &b)
	if b.ResourceVersion != rv {
		t.Errorf("after deploy: the bundle was rewritten (workers %v); its removed workers should linger", workersOf(&b))
	}
	e.now = e.now.Add(DefaultLinger)
	e.reconcileAccount(acct)
	e.get("b1", &b)
	if got, want := workersOf(&b), []string{"hello/" + id3 + ":8083"}; !equalStrings(got, want) {
		t.Errorf("after deploy and linger: workers %v, want %v", got, want)
	}
	// Version 4 uploaded: the lowest free port.
	e.create(workerVersion(acct, "hello", 4, id4))
	e.reconcileAccount(acct)
	e.get("b1", &b)
	if got, want := workersOf(&b), []string{"hello/" + id3 + ":8083", "hello/" + id4 + ":8081"}; !equalStrings(got, want) {
		t.Errorf("after second upload: workers %v, want %v", got, want)
	}
	evs := strings.Join(e.events(), "\n")
	if !strings.Contains(evs, "BundleCreated") || !strings.Contains(evs, "BundleUpdated") {
		t.Errorf("events:\n%s", evs)
	}
}

func TestBundleBuildAndDeploy(t *testing.T) {
	// The layout of earlier releases (key = binding name) keeps its variables.
	secret := apiv1.WorkerBinding{Name: "API_KEY", Type: apiv1.BindingSecretText, SecretRef: &apiv1.SecretKeyRef{Name: "hello-secrets", Key: "API_KEY"}}
	v1 := workerVersion(acct, "hello", 1, id1, secret)
	v2 := workerVersion(acct, "hello", 2, id2, secret, apiv1.WorkerBinding{Name: "TOKEN", Type: apiv1.BindingSecretText})
	bad := workerVersion(acct, "broken", 1, id3)
	e := newEnv(t, account(acct, "b1"), v1, v2, bad,
		release(acct, "hello", deployment(uuidN("dddddddd", 1), traffic(id1, 30), traffic(id2, 70))),
		release(acct, "broken", deployment(uuidN("dddddddd", 2), traffic(id3, 100))))
	e.b.fail[id3] = "Uncaught SyntaxError: Unexpected end of input at index.js:1:27"

	e.reconcileAccount(acct)
	e.reconcileBundle("b1")
	var b apiv1.WorkerBundle
	e.get("b1", &b)
	jbs := e.jobBuilders("b1")
	if len(jbs) != 1 || b.Status.JobBuilderName != jbs[0] || !strings.HasPrefix(jbs[0], "b1-") || len(jbs[0]) != len("b1-")+8 {
		t.Fatalf("JobBuilders %v, status.jobBuilderName %q", jbs, b.Status.JobBuilderName)
	}
	var jb apiv1.JobBuilder
	e.get(jbs[0], &jb)
	if ref := metav1.GetControllerOf(&jb); ref == nil || ref.Kind != "WorkerBundle" || ref.Name != "b1" {
		t.Errorf("JobBuilder controller %+v", ref)
	}
	if jb.Spec.BaseImage != baseRef || jb.Spec.TargetImage != registry+"/octo/accounts/"+acct || len(jb.Spec.Inputs) != 3 {
		t.Errorf("JobBuilder spec %+v", jb.Spec)
	}
	if c := meta.FindStatusCondition(b.Status.Conditions, apiv1.ConditionBuilt); c == nil || c.Status != metav1.ConditionFalse || c.Reason != "Building" {
		t.Errorf("Built condition %+v", c)
	}
	// No image yet: no Deployment.
	var dep appsv1.Deployment
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "b1"}, &dep); !apierrors.IsNotFound(err) {
		t.Errorf("Deployment before any build: %v", err)
	}

	// The build.
	e.reconcileJobBuilder(jb.Name)
	e.get(jb.Name, &jb)
	if jb.Status.Phase != apiv1.JobBuilderSucceeded || jb.Status.Image == "" || !strings.HasPrefix(jb.Status.Digest, "sha256:") ||
		jb.Status.StartedAt == nil || jb.Status.FinishedAt == nil || !strings.Contains(jb.Status.Message, "built 2 of 3 workers") ||
		!strings.Contains(jb.Status.Message, "SyntaxError") {
		t.Errorf("JobBuilder status %+v", jb.Status)
	}
	if req := e.b.builds[0]; req.KVAddress != podHost || req.TailAddress != podHost || req.BaseImage != baseRef ||
		req.Repository != jb.Spec.TargetImage || req.SecretEnv == nil {
		t.Errorf("build request %+v", req)
	}
	var vbad, vgood apiv1.WorkerVersion
	e.get(bad.Name, &vbad)
	e.get(v1.Name, &vgood)
	if c := meta.FindStatusCondition(vbad.Status.Conditions, apiv1.ConditionValidated); c == nil || c.Status != metav1.ConditionFalse ||
		!strings.Contains(c.Message, "SyntaxError") || vbad.Status.Phase != apiv1.WorkerVersionFailed {
		t.Errorf("failed version status %+v", vbad.Status)
	}
	if !meta.IsStatusConditionTrue(vgood.Status.Conditions, apiv1.ConditionValidated) || vgood.Status.Phase != apiv1.WorkerVersionReady {
		t.Errorf("good version status %+v", vgood.Status)
	}
	// Terminal: reconciling again builds nothing.
	e.reconcileJobBuilder(jb.Name)
	if n := e.b.count(); n != 1 {
		t.Errorf("%d builds, want 1", n)
	}

	// The workload.
	e.reconcileBundle("b1")
	e.get("b1", &b)
	if b.Status.Image != jb.Status.Image || b.Status.Digest != jb.Status.Digest || len(b.Status.FailedWorkers) != 1 ||
		b.Status.FailedWorkers[0].VersionID != id3 || !strings.Contains(b.Status.FailedWorkers[0].Message, "SyntaxError") {
		t.Errorf("bundle status %+v", b.Status)
	}
	e.get("b1", &dep)
	checkDeployment(t, &dep, &b, jb.Status.Image, map[string]int32{id1: 8082, id2: 8083})
	if !strings.Contains(dep.Spec.Template.Annotations[apiv1.AnnotationSockets], id1) || strings.Contains(dep.Spec.Template.Annotations[apiv1.AnnotationSockets], id3) {
		t.Errorf("sockets annotation %s", dep.Spec.Template.Annotations[apiv1.AnnotationSockets])
	}
	env := dep.Spec.Template.Spec.Containers[0].Env
	wantEnv := map[string]corev1.SecretKeySelector{
		builder.SecretEnv("hello", "API_KEY"): {LocalObjectReference: corev1.LocalObjectReference{Name: "hello-secrets"}, Key: "API_KEY", Optional: ptr.To(true)},
		builder.SecretEnv("hello", "TOKEN"):   {LocalObjectReference: corev1.LocalObjectReference{Name: "hello-secrets"}, Key: "TOKEN", Optional: ptr.To(true)},
	}
	if len(env) != len(wantEnv) {
		t.Errorf("env %+v", env)
	}
	for _, ev := range env {
		want, ok := wantEnv[ev.Name]
		if !ok || ev.ValueFrom == nil || ev.ValueFrom.SecretKeyRef == nil || ev.ValueFrom.SecretKeyRef.Name != want.Name ||
			ev.ValueFrom.SecretKeyRef.Key != want.Key || !*ev.ValueFrom.SecretKeyRef.Optional {
			t.Errorf("env %s = %+v", ev.Name, ev.ValueFrom)
		}
	}
	var svc corev1.Service
	e.get("b1", &svc)
	checkService(t, &svc, &b, []int32{8080})

	if c := meta.FindStatusCondition(b.Status.Conditions, apiv1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse || c.Reason != "RollingOut" {
		t.Errorf("Ready before the pods are up: %+v", c)
	}
	e.rollOut("b1")
	e.reconcileBundle("b1")
	e.get("b1", &b)
	if !meta.IsStatusConditionTrue(b.Status.Conditions, apiv1.ConditionReady) || !meta.IsStatusConditionTrue(b.Status.Conditions, apiv1.ConditionBuilt) ||
		!meta.IsStatusConditionTrue(b.Status.Conditions, apiv1.ConditionAvailable) || b.Status.ReadyReplicas != 1 {
		t.Errorf("bundle status after rollout %+v", b.Status)
	}
	// The account and the releases learn.
	e.reconcileAccount(acct)
	var a apiv1.WorkerAccount
	e.get(acct, &a)
	if !meta.IsStatusConditionTrue(a.Status.Conditions, apiv1.ConditionReady) {
		t.Errorf("account status %+v", a.Status)
	}
	var hello, broken apiv1.WorkerRelease
	e.get("hello", &hello)
	e.get("broken", &broken)
	if !meta.IsStatusConditionTrue(hello.Status.Conditions, apiv1.ConditionReady) || hello.Status.ActiveDeploymentID != uuidN("dddddddd", 1) ||
		hello.Status.URL != "http://hello.dev.workers.localhost:8787" {
		t.Errorf("hello release status %+v", hello.Status)
	}
	if c := meta.FindStatusCondition(broken.Status.Conditions, apiv1.ConditionReady); c == nil || c.Reason != "VersionFailed" || !strings.Contains(c.Message, "SyntaxError") {
		t.Errorf("broken release status %+v", broken.Status)
	}

	// Idempotent: nothing is written again.
	rvs := map[string]string{}
	e.get("b1", &dep)
	e.get("b1", &svc)
	e.get("b1", &b)
	rvs["dep"], rvs["svc"], rvs["bundle"] = dep.ResourceVersion, svc.ResourceVersion, b.ResourceVersion
	e.reconcileAccount(acct)
	e.reconcileBundle("b1")
	e.get("b1", &dep)
	e.get("b1", &svc)
	e.get("b1", &b)
	if dep.ResourceVersion != rvs["dep"] || svc.ResourceVersion != rvs["svc"] || b.ResourceVersion != rvs["bundle"] {
		t.Errorf("a no-op reconcile wrote objects: %v -> dep %s svc %s bundle %s", rvs, dep.ResourceVersion, svc.ResourceVersion, b.ResourceVersion)
	}

	// A drifted Deployment is put back.
	dep.Spec.Template.Spec.Containers[0].Image = "nginx"
	dep.Spec.Template.Spec.Containers[0].ReadinessProbe = nil
	e.update(&dep)
	e.reconcileBundle("b1")
	e.get("b1", &dep)
	checkDeployment(t, &dep, &b, jb.Status.Image, map[string]int32{id1: 8082, id2: 8083})

	// A new deployment: the old image keeps serving until the new build is
	// done, then the Deployment rolls to it.
	oldImage := jb.Status.Image
	v3 := workerVersion(acct, "hello", 3, id4)
	e.create(v3)
	e.get("hello", &hello)
	hello.Spec.PushDeployment(deployment(uuidN("dddddddd", 3), traffic(id4, 100)))
	e.update(&hello)
	e.reconcileAccount(acct)
	e.reconcileBundle("b1")
	e.get("b1", &b)
	if b.Status.JobBuilderName == jb.Name || b.Status.Image != oldImage {
		t.Errorf("during the build: jobBuilder %s image %s", b.Status.JobBuilderName, b.Status.Image)
	}
	if c := meta.FindStatusCondition(b.Status.Conditions, apiv1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse || c.Reason != "Building" {
		t.Errorf("Ready during the build: %+v", c)
	}
	e.get("b1", &dep)
	if dep.Spec.Template.Spec.Containers[0].Image != oldImage {
		t.Errorf("Deployment changed before the build finished")
	}
	e.reconcileJobBuilder(b.Status.JobBuilderName)
	e.reconcileBundle("b1")
	e.get("b1", &b)
	e.get("b1", &dep)
	if b.Status.Image == oldImage || dep.Spec.Template.Spec.Containers[0].Image != b.Status.Image {
		t.Errorf("after the build: bundle image %s, Deployment image %s (old %s)", b.Status.Image, dep.Spec.Template.Spec.Containers[0].Image, oldImage)
	}
	// id1 and id2 left the bundle; broken (id3) kept its port and still
	// fails; id4 took the lowest free port.
	var ports map[string]int32
	_ = json.Unmarshal([]byte(dep.Spec.Template.Annotations[apiv1.AnnotationSockets]), &ports)
	want := map[string]int32{id4: 8082}
	if got := workersOf(&b); !equalStrings(got, []string{"broken/" + id3 + ":8081", "hello/" + id4 + ":8082"}) {
		t.Errorf("workers %v", got)
	}
	if !equalPorts(ports, want) {
		t.Errorf("sockets annotation %v, want %v", ports, want)
	}
	if ev := strings.Join(e.events(), "\n"); !strings.Contains(ev, "WorkerFailed") || !strings.Contains(ev, "RollingOut") || !strings.Contains(ev, "BuildRequested") {
		t.Errorf("events:\n%s", ev)
	}
}

func equalPorts(a, b map[string]int32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func checkDeployment(t *testing.T, dep *appsv1.Deployment, b *apiv1.WorkerBundle, image string, sockets map[string]int32) {
	t.Helper()
	if ref := metav1.GetControllerOf(dep); ref == nil || ref.Kind != "WorkerBundle" || ref.Name != b.Name {
		t.Errorf("Deployment controller %+v", ref)
	}
	if *dep.Spec.Replicas != 1 || dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType ||
		dep.Spec.Strategy.RollingUpdate.MaxSurge.IntValue() != 1 || dep.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("replicas/strategy %v %+v", *dep.Spec.Replicas, dep.Spec.Strategy)
	}
	tpl := dep.Spec.Template
	if tpl.Labels[apiv1.LabelBundle] != b.Name || tpl.Labels[apiv1.LabelAccount] != b.Spec.AccountID || dep.Spec.Selector.MatchLabels[apiv1.LabelBundle] != b.Name {
		t.Errorf("labels %v selector %v", tpl.Labels, dep.Spec.Selector)
	}
	var got map[string]int32
	if err := json.Unmarshal([]byte(tpl.Annotations[apiv1.AnnotationSockets]), &got); err != nil || !equalPorts(got, sockets) {
		t.Errorf("sockets annotation %q, want %v", tpl.Annotations[apiv1.AnnotationSockets], sockets)
	}
	if len(tpl.Spec.Containers) != 1 {
		t.Fatalf("containers %+v", tpl.Spec.Containers)
	}
	c := tpl.Spec.Containers[0]
	if c.Name != "workerd" || c.Image != image || len(c.Command) != 0 || len(c.Args) != 0 {
		t.Errorf("container %s image %s command %v", c.Name, c.Image, c.Command)
	}
	// The unix sockets' volume, mounted where the config puts them; the
	// pods name their bundle for the gateway.
	if vs := dep.Spec.Template.Spec.Volumes; len(vs) != 1 || vs[0].Name != apiv1.SocketVolume || vs[0].EmptyDir == nil ||
		len(c.VolumeMounts) != 1 || c.VolumeMounts[0].Name != apiv1.SocketVolume || c.VolumeMounts[0].MountPath != "/run/octo" {
		t.Errorf("socket volume %+v mounted %+v", vs, c.VolumeMounts)
	}
	if got := dep.Spec.Template.Annotations[apiv1.AnnotationBundleName]; got != b.Name {
		t.Errorf("pods name bundle %q, want %q", got, b.Name)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Port.IntValue() != 8080 || p.PeriodSeconds != 1 {
		t.Errorf("readiness probe %+v", p)
	}
	if l := c.Lifecycle; l == nil || l.PreStop == nil || l.PreStop.Sleep == nil || l.PreStop.Sleep.Seconds != 2 {
		t.Errorf("lifecycle %+v", l)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Port.IntValue() != 8080 || p.PeriodSeconds != 1 || p.FailureThreshold != 31 ||
		p.TerminationGracePeriodSeconds == nil || *p.TerminationGracePeriodSeconds != 1 {
		t.Errorf("liveness probe %+v", p)
	}
	if p := c.LivenessProbe; p == nil || p.InitialDelaySeconds != int32(2+len(sockets)/50) {
		t.Errorf("liveness probe starts after %+v, want 2 s + 1 s per 50 workers", p)
	}
	if c.StartupProbe != nil {
		t.Errorf("startup probe %+v: it would delay readiness by up to its period", c.StartupProbe)
	}
	// 64 MiB + 4 MiB and 256 MiB + 8 MiB per worker.
	n := int64(len(sockets))
	if c.Resources.Requests.Cpu().Cmp(resource.MustParse("10m")) != 0 || c.Resources.Requests.Memory().Value() != (64+4*n)<<20 ||
		c.Resources.Limits.Memory().Value() != (256+8*n)<<20 {
		t.Errorf("resources for %d workers: %+v", n, c.Resources)
	}
	sc := c.SecurityContext
	if sc == nil || !*sc.RunAsNonRoot || *sc.RunAsUser != 65534 || !*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil ||
		len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
		*sc.AllowPrivilegeEscalation {
		t.Errorf("security context %+v", sc)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		if len(p.Name) > 15 {
			t.Errorf("port name %q longer than 15", p.Name)
		}
		ports[p.Name] = p.ContainerPort
	}
	if ports["health"] != 8080 || len(ports) != len(sockets)+1 {
		t.Errorf("container ports %v", c.Ports)
	}
	for _, p := range sockets {
		if ports[PortName(p)] != p {
			t.Errorf("no container port %d in %v", p, c.Ports)
		}
	}
}

func checkService(t *testing.T, svc *corev1.Service, b *apiv1.WorkerBundle, ports []int32) {
	t.Helper()
	if ref := metav1.GetControllerOf(svc); ref == nil || ref.Kind != "WorkerBundle" || ref.Name != b.Name {
		t.Errorf("Service controller %+v", ref)
	}
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || svc.Spec.Selector[apiv1.LabelBundle] != b.Name || len(svc.Spec.Ports) != len(ports) {
		t.Errorf("Service spec %+v", svc.Spec)
	}
	for i, p := range svc.Spec.Ports {
		if i < len(ports) && (p.Port != ports[i] || p.TargetPort.IntValue() != int(ports[i]) || len(p.Name) > 15) {
			t.Errorf("Service port %+v, want %d", p, ports[i])
		}
	}
}

func TestSampleAccount(t *testing.T) {
	data, err := os.ReadFile("../../api/v1/testdata/workeraccount-sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var a apiv1.WorkerAccount
	if err := yaml.UnmarshalStrict(data, &a); err != nil {
		t.Fatal(err)
	}
	a.Namespace = ns
	id := a.Name
	va := workerVersion(id, "selected", 1, id1)
	vb := workerVersion(id, "unselected", 1, id2)
	ra := release(id, "selected", deployment(uuidN("dddddddd", 1), traffic(id1, 100)))
	ra.Labels["accounts"] = "1234"
	rb := release(id, "unselected", deployment(uuidN("dddddddd", 2), traffic(id2, 100)))
	e := newEnv(t, &a, va, vb, ra, rb)

	b := e.converge(id)
	if b.Name != "worker-bundle-name" {
		t.Fatalf("bundle %s", b.Name)
	}
	if got, want := workersOf(b), []string{"selected/" + id1 + ":8081"}; !equalStrings(got, want) {
		t.Errorf("workers %v, want %v (the selector leaves out %s)", got, want, rb.Name)
	}
	if b.Spec.PodTemplate.ImagePullSecret != "insert-secret-here" {
		t.Errorf("bundle pod template %+v", b.Spec.PodTemplate)
	}
	var dep appsv1.Deployment
	e.get(WorkloadName(b.Name), &dep)
	if ps := dep.Spec.Template.Spec.ImagePullSecrets; len(ps) != 1 || ps[0].Name != "insert-secret-here" {
		t.Errorf("imagePullSecrets %+v", ps)
	}
	if !meta.IsStatusConditionTrue(b.Status.Conditions, apiv1.ConditionReady) {
		t.Errorf("bundle not ready: %+v", b.Status.Conditions)
	}
	var got apiv1.WorkerAccount
	e.get(id, &got)
	if !meta.IsStatusConditionTrue(got.Status.Conditions, apiv1.ConditionReady) || got.Status.BundleName != "worker-bundle-name" {
		t.Errorf("account status %+v", got.Status)
	}

	// podTemplate.resources replace the defaults.
	e.get(id, &got)
	got.Spec.PodTemplate.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}
	e.update(&got)
	e.converge(id)
	e.get(WorkloadName(b.Name), &dep)
	if r := dep.Spec.Template.Spec.Containers[0].Resources; r.Limits.Memory().Cmp(resource.MustParse("1Gi")) != 0 || len(r.Requests) != 0 {
		t.Errorf("resources %+v", r)
	}
}

func TestJobBuilderRetention(t *testing.T) {
	e := newEnv(t, account(acct, "b1"), release(acct, "hello"))
	var images []string
	for i := 1; i <= 6; i++ {
		id := uuidN("abcdef00", i)
		e.create(workerVersion(acct, "hello", int64(i), id))
		b := e.converge(acct)
		images = append(images, b.Status.Image)
		if got := len(e.jobBuilders("b1")); got > KeepJobBuilders {
			t.Errorf("after %d builds: %d JobBuilders, want at most %d", i, got, KeepJobBuilders)
		}
	}
	var b apiv1.WorkerBundle
	e.get("b1", &b)
	jbs := e.jobBuilders("b1")
	found := false
	for _, n := range jbs {
		found = found || n == b.Status.JobBuilderName
	}
	if !found || len(jbs) != KeepJobBuilders {
		t.Errorf("JobBuilders %v, current %s", jbs, b.Status.JobBuilderName)
	}
	for i := 1; i < len(images); i++ {
		if images[i] == images[i-1] {
			t.Errorf("build %d has the same image as build %d", i+1, i)
		}
	}
}

// TestSecretsPinnedPerVersion: versions that pin different values of one
// secret (store.VersionSecretKey) each get a variable of their own, read from
// their own key, through a gradual deployment and a rollback.
func TestSecretsPinnedPerVersion(t *testing.T) {
	bind := func(key string) apiv1.WorkerBinding {
		return apiv1.WorkerBinding{Name: "API_KEY", Type: apiv1.BindingSecretText, SecretRef: &apiv1.SecretKeyRef{Name: "hello-secrets", Key: key}}
	}
	// What two secret puts leave: each version reads the key of its value.
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hello-secrets", Namespace: ns},
		Data: map[string][]byte{"API_KEY.v1": []byte("old"), "API_KEY.v2": []byte("new")}}
	rel := release(acct, "hello", deployment(uuidN("dddddddd", 1), traffic(id1, 50), traffic(id2, 50)))
	e := newEnv(t, account(acct, "b1"), sec, rel,
		workerVersion(acct, "hello", 1, id1, bind("API_KEY.v1")), workerVersion(acct, "hello", 2, id2, bind("API_KEY.v2")))
	env1, env2 := builder.SecretEnv("hello", "API_KEY.v1"), builder.SecretEnv("hello", "API_KEY.v2")
	if env1 == env2 {
		t.Fatalf("one variable %s for both versions", env1)
	}
	// podEnv is the pods' environment as the kubelet resolves it.
	podEnv := func() map[string]string {
		t.Helper()
		b := e.converge(acct)
		var dep appsv1.Deployment
		e.get(WorkloadName(b.Name), &dep)
		out := map[string]string{}
		for _, ev := range dep.Spec.Template.Spec.Containers[0].Env {
			if ev.ValueFrom == nil || ev.ValueFrom.SecretKeyRef == nil || ev.ValueFrom.SecretKeyRef.Name != sec.Name {
				t.Errorf("env %s = %+v, want a key of %s", ev.Name, ev.ValueFrom, sec.Name)
				continue
			}
			out[ev.Name] = string(sec.Data[ev.ValueFrom.SecretKeyRef.Key])
		}
		return out
	}
	if got, want := podEnv(), map[string]string{env1: "old", env2: "new"}; !maps.Equal(got, want) {
		t.Errorf("gradual deployment: env %v, want %v", got, want)
	}
	// Version 2 at 100 %, then a rollback to version 1: it reads its own value again.
	for i, id := range []string{id2, id1} {
		e.get("hello", rel)
		rel.Spec.PushDeployment(deployment(uuidN("dddddddd", i+2), traffic(id, 100)))
		e.update(rel)
		got := podEnv()
		if id == id1 && got[env1] != "old" {
			t.Errorf("after the rollback to version 1: env %v, want %s=old", got, env1)
		}
		if got[env2] != "new" { // version 2 is deployed, then the latest (a preview)
			t.Errorf("env %v, want %s=new", got, env2)
		}
	}
}

func TestBuildFailureKeepsServing(t *testing.T) {
	e := newEnv(t, account(acct, "b1"), workerVersion(acct, "hello", 1, id1),
		release(acct, "hello", deployment(uuidN("dddddddd", 1), traffic(id1, 100))))
	b := e.converge(acct)
	good := b.Status.Image

	e.b.err = errors.New("push 127.0.0.1:5050/octo/accounts/x: connection refused")
	e.create(workerVersion(acct, "hello", 2, id2))
	e.reconcileAccount(acct)
	e.reconcileBundle("b1")
	e.get("b1", b)
	name := b.Status.JobBuilderName
	res := e.reconcileJobBuilder(name)
	var jb apiv1.JobBuilder
	e.get(name, &jb)
	if jb.Status.Phase != apiv1.JobBuilderFailed || !strings.Contains(jb.Status.Message, "connection refused") || res.RequeueAfter <= 0 ||
		jb.Annotations[apiv1.AnnotationBuildAttempts] != "1" {
		t.Errorf("failed build: status %+v, requeue %v, annotations %v", jb.Status, res, jb.Annotations)
	}
	e.reconcileBundle("b1")
	e.get("b1", b)
	var dep appsv1.Deployment
	e.get("b1", &dep)
	if b.Status.Image != good || dep.Spec.Template.Spec.Containers[0].Image != good {
		t.Errorf("after a failed build: bundle image %s, Deployment %s; want the old %s", b.Status.Image, dep.Spec.Template.Spec.Containers[0].Image, good)
	}
	if c := meta.FindStatusCondition(b.Status.Conditions, apiv1.ConditionBuilt); c == nil || c.Reason != "BuildFailed" || !strings.Contains(c.Message, "connection refused") {
		t.Errorf("Built %+v", c)
	}
	// Too early to retry.
	if res := e.reconcileJobBuilder(name); res.RequeueAfter <= 0 || e.b.count() != 2 {
		t.Errorf("early retry: %v, %d builds", res, e.b.count())
	}
	// Retries with backoff until MaxBuildAttempts.
	for i := 2; i <= DefaultMaxBuildAttempts; i++ {
		e.now = e.now.Add(time.Hour)
		e.reconcileJobBuilder(name)
	}
	e.now = e.now.Add(time.Hour)
	if res := e.reconcileJobBuilder(name); res.RequeueAfter != 0 || e.b.count() != 1+DefaultMaxBuildAttempts {
		t.Errorf("after %d attempts: %v, %d builds", DefaultMaxBuildAttempts, res, e.b.count())
	}
	// The registry is back and the next change builds.
	e.b.err = nil
	e.create(workerVersion(acct, "hello", 3, id3))
	b = e.converge(acct)
	if b.Status.Image == good || !meta.IsStatusConditionTrue(b.Status.Conditions, apiv1.ConditionReady) {
		t.Errorf("after recovery: %+v", b.Status)
	}
}

func TestNames(t *testing.T) {
	for in, want := range map[string]string{"octo": "octo", "worker-bundle-name": "worker-bundle-name"} {
		if got := WorkloadName(in); got != want {
			t.Errorf("WorkloadName(%q) = %q", in, got)
		}
	}
	for _, in := range []string{"1abc", "a.b.c", strings.Repeat("x", 100)} {
		got := WorkloadName(in)
		if !dns1035.MatchString(got) || len(got) > 63 {
			t.Errorf("WorkloadName(%q) = %q: not a DNS-1035 label", in, got)
		}
	}
	if got := apiv1.BundleLabelValue(strings.Repeat("y", 100)); len(got) > 63 {
		t.Errorf("BundleLabelValue too long: %q", got)
	}
	if got := PortName(65535); got != "w65535" {
		t.Errorf("PortName = %q", got)
	}
	s := SocketsAnnotation(map[string]int32{id2: 8082, id1: 8081})
	if s != `{"`+id1+`":8081,"`+id2+`":8082}` {
		t.Errorf("SocketsAnnotation = %s", s)
	}
}

func TestAccountEdgeCases(t *testing.T) {
	// A deployment naming a version that does not exist: the bundle runs
	// the remaining version, and the account reports the missing one.
	v1 := workerVersion(acct, "hello", 1, id1)
	e := newEnv(t, account(acct, "b1"), v1,
		release(acct, "hello", deployment(uuidN("dddddddd", 1), traffic(id1, 40), traffic(id2, 60))))
	e.reconcileAccount(acct)
	var b apiv1.WorkerBundle
	e.get("b1", &b)
	if got, want := workersOf(&b), []string{"hello/" + id1 + ":8081"}; !equalStrings(got, want) {
		t.Errorf("workers %v, want %v", got, want)
	}
	if ev := strings.Join(e.events(), "\n"); !strings.Contains(ev, "VersionMissing") {
		t.Errorf("events:\n%s", ev)
	}

	// The account names another bundle: the old one goes.
	var a apiv1.WorkerAccount
	e.get(acct, &a)
	a.Spec.WorkerBundleName = "b2"
	e.update(&a)
	e.reconcileAccount(acct)
	var b2 apiv1.WorkerBundle
	e.get("b2", &b2)
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "b1"}, &b); !apierrors.IsNotFound(err) {
		t.Errorf("old bundle still there: %v", err)
	}
	if got := workersOf(&b2); len(got) != 1 {
		t.Errorf("new bundle workers %v", got)
	}

	// A bundle of that name that another account controls is left alone.
	other := account("otheraccount", "b2")
	e.create(other)
	if _, err := e.account.Reconcile(context.Background(), req("otheraccount")); err == nil || !strings.Contains(err.Error(), "controlled by") {
		t.Errorf("reconcile of an account whose bundle belongs to another = %v", err)
	}
	e.get("b2", &b2)
	if ref := metav1.GetControllerOf(&b2); ref == nil || ref.Name != acct {
		t.Errorf("bundle controller changed to %+v", ref)
	}

	// An invalid selector is reported, not retried.
	e.get(acct, &a)
	a.Spec.WorkerReleaseSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: "Bogus"}}}
	e.update(&a)
	e.reconcileAccount(acct)
	e.get(acct, &a)
	if c := meta.FindStatusCondition(a.Status.Conditions, apiv1.ConditionReady); c == nil || c.Reason != "InvalidSelector" {
		t.Errorf("Ready %+v", c)
	}
}

// staleClient answers Gets of one JobBuilder with an old copy, as a lagging
// informer cache would.
type staleClient struct {
	client.Client
	stale *apiv1.JobBuilder
}

func (s staleClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if jb, ok := obj.(*apiv1.JobBuilder); ok && key.Name == s.stale.Name {
		s.stale.DeepCopyInto(jb)
		return nil
	}
	return s.Client.Get(ctx, key, obj, opts...)
}

func TestJobBuilderStaleCache(t *testing.T) {
	e := newEnv(t, account(acct, "b1"), workerVersion(acct, "hello", 1, id1),
		release(acct, "hello", deployment(uuidN("dddddddd", 1), traffic(id1, 100))))
	b := e.converge(acct)
	var jb apiv1.JobBuilder
	e.get(b.Status.JobBuilderName, &jb)
	stale := jb.DeepCopy()
	stale.Status.Phase = apiv1.JobBuilderBuilding
	stale.ResourceVersion = "1"
	e.jb.Client = staleClient{Client: e.c, stale: stale}
	e.reconcileJobBuilder(jb.Name)
	if n := e.b.count(); n != 1 {
		t.Errorf("%d builds after a stale read, want 1", n)
	}
	e.get(jb.Name, &jb)
	if jb.Status.Phase != apiv1.JobBuilderSucceeded || jb.Annotations[apiv1.AnnotationBuildAttempts] != "1" {
		t.Errorf("JobBuilder after a stale read: %+v %v", jb.Status, jb.Annotations)
	}
}

// TestLingerEndsWhenAVersionIsGone: workers that a change only removed
// linger (and the account is reconciled again when they go), unless one of
// their versions no longer exists: no build could include it.
func TestLingerEndsWhenAVersionIsGone(t *testing.T) {
	v1 := workerVersion(acct, "hello", 1, id1)
	v2 := workerVersion(acct, "hello", 2, id2)
	rel := release(acct, "hello", deployment(uuidN("dddddddd", 1), traffic(id1, 100)))
	e := newEnv(t, account(acct, "b1"), v1, v2, rel)
	e.reconcileAccount(acct)
	var b apiv1.WorkerBundle
	e.get("b1", &b)
	if got := workersOf(&b); len(got) != 2 {
		t.Fatalf("workers %v, want versions 1 and 2", got)
	}
	e.get("hello", rel)
	rel.Spec.PushDeployment(deployment(uuidN("dddddddd", 2), traffic(id2, 100)))
	e.update(rel)
	if res := e.reconcileAccount(acct); res.RequeueAfter <= 0 || res.RequeueAfter > DefaultLinger+time.Second {
		t.Errorf("lingering: requeue after %v, want within the linger time", res.RequeueAfter)
	}
	e.get("b1", &b)
	if got := workersOf(&b); len(got) != 2 {
		t.Fatalf("deploy of version 2: workers %v, want version 1 to linger", got)
	}
	var old apiv1.WorkerVersion
	e.get(v1.Name, &old)
	if err := e.c.Delete(context.Background(), &old); err != nil {
		t.Fatal(err)
	}
	if res := e.reconcileAccount(acct); res.RequeueAfter != 0 {
		t.Errorf("nothing lingers: requeue after %v", res.RequeueAfter)
	}
	e.get("b1", &b)
	if got, want := workersOf(&b), []string{"hello/" + id2 + ":8082"}; !equalStrings(got, want) {
		t.Errorf("version 1 deleted: workers %v, want %v", got, want)
	}
}
