package controller

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/builder"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
)

// Pod settings of a bundle's workerd Deployment.
const (
	// ReadinessPeriodSeconds probes the health worker every second.
	ReadinessPeriodSeconds = 1
	// LivenessPeriodSeconds is the period of the liveness probe, which
	// restarts a wedged workerd once its health worker has not answered for
	// longer than the largest CPU limit of the Workers it serves
	// (LivenessFailureThreshold).
	LivenessPeriodSeconds = 1
	// LivenessDelaySeconds is the time a starting process gets before the
	// liveness probe may kill it, plus one second per
	// LivenessDelayWorkersPerSecond workers it loads (livenessProbe).
	LivenessDelaySeconds          = 2
	LivenessDelayWorkersPerSecond = 50
	// PreStopSleepSeconds keeps a terminating pod serving while the
	// endpoints stop pointing at it.
	PreStopSleepSeconds = 2
	// NobodyID runs workerd as nobody.
	NobodyID = 65534
	// HealthPortName names the health worker's port.
	HealthPortName = "health"
)

// DefaultCPURequest is the CPU request of the workerd container.
var DefaultCPURequest = resource.MustParse("10m")

// Memory of the workerd container, sized by the number of workers in the
// pod (MemoryFor). With V8's young generation capped (workerd.DefaultV8Flags)
// and no tail consumer on the path, one busy hello-world Worker holds
// ~132 MiB flat under sustained load; an idle process ~50 MiB, and each
// further worker ~1.6 MiB idle, twice that with a static traced twin (only
// the versions the loader host cannot run have one), plus what the loader
// host loads until the next rollout.
const (
	memoryRequestBase      = 64 << 20
	memoryRequestPerWorker = 4 << 20
	memoryLimitBase        = 256 << 20
	memoryLimitPerWorker   = 8 << 20
)

// MemoryFor returns the memory request and limit of a pod running n
// workers: the request covers them idle, the limit a busy process with
// room for each worker's heap.
func MemoryFor(n int) (request, limit resource.Quantity) {
	n = max(n, 1)
	return *resource.NewQuantity(int64(memoryRequestBase+memoryRequestPerWorker*n), resource.BinarySI),
		*resource.NewQuantity(int64(memoryLimitBase+memoryLimitPerWorker*n), resource.BinarySI)
}

// socket is one worker of a built image.
type socket struct {
	ScriptName, VersionID, VersionName string
	Port                               int32
}

// sockets are the workers in a build's image: its inputs minus the failed
// ones, by port.
func sockets(jb *apiv1.JobBuilder) []socket {
	failed := map[string]bool{}
	for _, f := range failedWorkers(jb) {
		failed[f.VersionID] = true
	}
	var out []socket
	for _, in := range jb.Spec.Inputs {
		if failed[in.VersionID] || in.Port == 0 {
			continue
		}
		out = append(out, socket{ScriptName: in.ScriptName, VersionID: in.VersionID, VersionName: in.VersionName, Port: in.Port})
	}
	slices.SortFunc(out, func(a, b socket) int { return cmp.Compare(a.Port, b.Port) })
	return out
}

// SocketsAnnotation is the value of apiv1.AnnotationSockets: {"<versionID>": port}
// (and "octo-loader": port) as JSON with sorted keys.
func SocketsAnnotation(ports map[string]int32) string {
	b, _ := json.Marshal(ports) // encoding/json sorts map keys
	return string(b)
}

// loaderPort is the port of the loader host in jb's image
// (apiv1.AnnotationLoaderPort), 0 when it has none.
func loaderPort(jb *apiv1.JobBuilder) int32 {
	p, err := strconv.ParseInt(jb.Annotations[apiv1.AnnotationLoaderPort], 10, 32)
	if err != nil || p <= 0 || p >= 65536 {
		return 0
	}
	return int32(p)
}

// PortName names a worker's port: "w<port>", at most 15 characters.
func PortName(port int32) string { return "w" + strconv.Itoa(int(port)) }

// applyWorkload writes the Deployment and the Service that run serving's
// image, and returns the Deployment as stored.
func (r *BundleReconciler) applyWorkload(ctx context.Context, b *apiv1.WorkerBundle, serving *apiv1.JobBuilder) (*appsv1.Deployment, error) {
	socks := sockets(serving)
	versions := map[string]*apiv1.WorkerVersion{}
	for _, s := range socks {
		var v apiv1.WorkerVersion
		err := r.Client.Get(ctx, types.NamespacedName{Namespace: b.Namespace, Name: s.VersionName}, &v)
		if apierrors.IsNotFound(err) {
			continue // gone: its secrets stay unset
		}
		if err != nil {
			return nil, err
		}
		versions[s.VersionID] = &v
	}
	var objects *corev1.VolumeSource
	if hostsObjects(serving) {
		if r.Options.ObjectStorage == nil {
			return nil, fmt.Errorf("bundle %s hosts Durable Objects, but the operators have no Durable Object storage (Options.ObjectStorage)", b.Name)
		}
		vs, err := r.Options.ObjectStorage.Volume(ctx, b.Namespace, b.Spec.AccountID)
		if err != nil {
			return nil, err
		}
		objects = &vs
	}
	name := WorkloadName(b.Name)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: b.Namespace}}
	op, err := controllerutil.CreateOrUpdate(ctx, r.Client, dep, func() error {
		if err := r.claim(b, dep); err != nil {
			return err
		}
		mutateDeployment(dep, b, serving, socks, versions, objects)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("write Deployment %s: %w", name, err)
	}
	if op != controllerutil.OperationResultNone {
		reason := map[controllerutil.OperationResult]string{controllerutil.OperationResultCreated: "DeploymentCreated"}[op]
		if reason == "" {
			reason = "DeploymentUpdated"
		}
		r.Recorder.Eventf(b, "Normal", reason, "Deployment %s %s: image %s, %d workers", name, op, serving.Status.Image, len(socks))
		log.FromContext(ctx).Info("deployment written", "deployment", name, "op", op, "image", serving.Status.Image)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: b.Namespace}}
	op, err = controllerutil.CreateOrUpdate(ctx, r.Client, svc, func() error {
		if err := r.claim(b, svc); err != nil {
			return err
		}
		mutateService(svc, b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("write Service %s: %w", name, err)
	}
	if op != controllerutil.OperationResultNone {
		log.FromContext(ctx).Info("service written", "service", name, "op", op, "ports", len(svc.Spec.Ports))
	}
	return dep, nil
}

// claim makes b the controller of obj, unless something else controls it.
func (r *BundleReconciler) claim(b *apiv1.WorkerBundle, obj client.Object) error {
	if ref := metav1.GetControllerOf(obj); ref != nil && ref.UID != b.UID {
		return fmt.Errorf("%s is controlled by %s %s, not by WorkerBundle %s", obj.GetName(), ref.Kind, ref.Name, b.Name)
	}
	return controllerutil.SetControllerReference(b, obj, r.Scheme)
}

func workloadLabels(b *apiv1.WorkerBundle) map[string]string {
	return map[string]string{apiv1.LabelBundle: apiv1.BundleLabelValue(b.Name), apiv1.LabelAccount: b.Spec.AccountID}
}

func selectorLabels(b *apiv1.WorkerBundle) map[string]string {
	return map[string]string{apiv1.LabelBundle: apiv1.BundleLabelValue(b.Name)}
}

func mergeInto(dst *map[string]string, src map[string]string) {
	if *dst == nil {
		*dst = map[string]string{}
	}
	for k, v := range src {
		(*dst)[k] = v
	}
}

// mutateDeployment sets the fields of dep that octo owns, leaving the
// others (defaults, other tools' annotations) alone. Every field it sets is
// written as the API server would default it, so that an unchanged bundle
// compares equal and is not written again.
//
// objects, when set, is the storage of the Durable Objects the image hosts:
// the Deployment then runs at most one pod and replaces it (Recreate).
func mutateDeployment(dep *appsv1.Deployment, b *apiv1.WorkerBundle, serving *apiv1.JobBuilder, socks []socket, versions map[string]*apiv1.WorkerVersion, objects *corev1.VolumeSource) {
	image := serving.Status.Image
	mergeInto(&dep.Labels, workloadLabels(b))
	dep.Spec.Replicas = ptr.To(replicas(b))
	if dep.Spec.Selector == nil { // immutable once created
		dep.Spec.Selector = &metav1.LabelSelector{MatchLabels: selectorLabels(b)}
	}
	dep.Spec.Strategy = appsv1.DeploymentStrategy{
		Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{
			MaxSurge:       ptr.To(intstr.FromInt32(1)),
			MaxUnavailable: ptr.To(intstr.FromInt32(0)),
		},
	}
	if objects != nil {
		dep.Spec.Replicas = ptr.To(min(*dep.Spec.Replicas, 1))
		dep.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	}
	t := &dep.Spec.Template
	mergeInto(&t.Labels, workloadLabels(b))
	ports := map[string]int32{}
	for _, s := range socks {
		ports[s.VersionID] = s.Port
	}
	if p := loaderPort(serving); p > 0 {
		ports[workerd.LoaderWorkerName] = p
	}
	mergeInto(&t.Annotations, map[string]string{apiv1.AnnotationSockets: SocketsAnnotation(ports), apiv1.AnnotationBundleName: b.Name})
	if limits := cpuLimits(socks, versions); limits != nil {
		t.Annotations[apiv1.AnnotationCPULimits] = SocketsAnnotation(limits)
	} else {
		delete(t.Annotations, apiv1.AnnotationCPULimits)
	}
	t.Spec.Containers = []corev1.Container{container(b, image, socks, versions)}
	t.Spec.Volumes = []corev1.Volume{socketVolume()}
	if objects != nil {
		withObjects(t, *objects, objectsScript(serving))
	}
	t.Spec.ImagePullSecrets = nil
	if s := b.Spec.PodTemplate.ImagePullSecret; s != "" {
		t.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: s}}
	}
	// workerd needs neither the API nor the service environment variables.
	t.Spec.AutomountServiceAccountToken = ptr.To(false)
	t.Spec.EnableServiceLinks = ptr.To(false)
}

// cpuLimits maps the served versions that have their own CPU limit to it,
// in milliseconds (apiv1.AnnotationCPULimits); nil when none has.
func cpuLimits(socks []socket, versions map[string]*apiv1.WorkerVersion) map[string]int32 {
	var out map[string]int32
	for _, s := range socks {
		if v := versions[s.VersionID]; v != nil && v.Spec.Limits != nil && v.Spec.Limits.CPUMs > 0 {
			if out == nil {
				out = map[string]int32{}
			}
			out[s.VersionID] = int32(v.Spec.Limits.CPUMs)
		}
	}
	return out
}

// healthProbe probes the health worker every period seconds (1 s timeout).
func healthProbe(period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: "/", Port: intstr.FromInt32(builder.HealthPort), Scheme: corev1.URISchemeHTTP,
		}},
		PeriodSeconds: period, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: failures,
	}
}

// LivenessFailureThreshold is the number of failed liveness probes after
// which a workerd serving Workers whose largest CPU limit is cpuLimit is
// restarted: ceil(cpuLimit / LivenessPeriodSeconds) + 1. workerd runs its
// Workers on one thread and has no per-request CPU limit of its own, so this
// is the CPU limit of a request that never yields: it is killed once it has
// spun longer than its Worker's limits.cpu_ms (the gateway answers Cloudflare's
// error 1102), not before.
func LivenessFailureThreshold(cpuLimit time.Duration) int32 {
	period := LivenessPeriodSeconds * time.Second
	return int32((max(cpuLimit, 0)+period-1)/period) + 1
}

// maxCPULimit is the largest CPU limit of the versions a pod serves
// (apiv1.WorkerVersionSpec.CPULimit): apiv1.DefaultCPULimit for a version
// without limits or not found, and for a pod serving none.
func maxCPULimit(socks []socket, versions map[string]*apiv1.WorkerVersion) time.Duration {
	if len(socks) == 0 {
		return apiv1.DefaultCPULimit
	}
	var limit time.Duration
	for _, s := range socks {
		l := apiv1.DefaultCPULimit
		if v := versions[s.VersionID]; v != nil {
			l = v.Spec.CPULimit()
		}
		limit = max(limit, l)
	}
	return limit
}

// livenessProbe restarts a wedged workerd once it has not answered for
// longer than cpuLimit, the largest CPU limit of its Workers
// (LivenessFailureThreshold). A process stuck in a Worker's loop handles no
// SIGTERM, so it is then killed after 1 s instead of the pod's grace period
// (which a healthy process's rollout still gets). It starts after a delay
// that grows with the n workers the process loads. There is no startup
// probe: it would hold readiness back to its next period after the process
// listens (up to 1 s of every deploy), while the kubelet probes readiness as
// soon as it sees the container running.
func livenessProbe(n int, cpuLimit time.Duration) *corev1.Probe {
	p := healthProbe(LivenessPeriodSeconds, LivenessFailureThreshold(cpuLimit))
	p.InitialDelaySeconds = int32(LivenessDelaySeconds + n/LivenessDelayWorkersPerSecond)
	p.TerminationGracePeriodSeconds = ptr.To(int64(1))
	return p
}

func container(b *apiv1.WorkerBundle, image string, socks []socket, versions map[string]*apiv1.WorkerVersion) corev1.Container {
	memRequest, memLimit := MemoryFor(len(socks))
	// No command: the image's entrypoint starts workerd (builder.Command),
	// so a pod runs what its image was built for, also while an upgrade
	// rebuilds the bundle with a newer one.
	c := corev1.Container{
		Name:           ContainerName,
		Image:          image,
		Ports:          []corev1.ContainerPort{{Name: HealthPortName, ContainerPort: builder.HealthPort, Protocol: corev1.ProtocolTCP}},
		Env:            secretEnv(socks, versions),
		VolumeMounts:   []corev1.VolumeMount{socketMount()},
		ReadinessProbe: healthProbe(ReadinessPeriodSeconds, 3),
		// The health worker shares the process's thread with the Workers: a
		// request that never yields (while (true) {}) wedges them all. The
		// liveness probe restarts such a process once the request has spun
		// longer than the largest CPU limit of the pod's Workers.
		LivenessProbe: livenessProbe(len(socks), maxCPULimit(socks, versions)),
		Lifecycle:     &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: PreStopSleepSeconds}}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: DefaultCPURequest, corev1.ResourceMemory: memRequest},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: memLimit},
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			RunAsUser:                ptr.To(int64(NobodyID)),
			RunAsGroup:               ptr.To(int64(NobodyID)),
			ReadOnlyRootFilesystem:   ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePath:   corev1.TerminationMessagePathDefault,
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		ImagePullPolicy:          corev1.PullIfNotPresent,
	}
	if res := b.Spec.PodTemplate.Resources; res != nil {
		c.Resources = *res.DeepCopy()
	}
	for _, s := range socks {
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: PortName(s.Port), ContainerPort: s.Port, Protocol: corev1.ProtocolTCP})
	}
	return c
}

// secretEnv passes every secret binding of the served versions to workerd:
// the variable builder.SecretEnv names after the binding's data key, from the
// script's Secret, so two versions with different values of one secret read
// different variables. A missing key leaves the variable unset (the binding
// reads null) instead of keeping the pod from starting.
func secretEnv(socks []socket, versions map[string]*apiv1.WorkerVersion) []corev1.EnvVar {
	byName := map[string]corev1.EnvVar{}
	for _, s := range socks {
		v := versions[s.VersionID]
		if v == nil {
			continue
		}
		for _, bd := range v.Spec.Bindings {
			if bd.Type != apiv1.BindingSecretText {
				continue
			}
			ref := apiv1.SecretKeyRef{Name: store.SecretName(v.Spec.ScriptName), Key: bd.SecretKey()}
			if bd.SecretRef != nil {
				ref.Name = bd.SecretRef.Name
			}
			name := builder.SecretEnv(v.Spec.ScriptName, bd.SecretKey())
			byName[name] = corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name}, Key: ref.Key, Optional: ptr.To(true),
			}}}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	var env []corev1.EnvVar
	for _, n := range names {
		env = append(env, byName[n])
	}
	return env
}

// mutateService sets the fields of svc that octo owns: a ClusterIP Service
// with the health port only. The workers' sockets are container ports of
// the pods, named in their api.cf-worker/sockets annotation; the gateway
// reaches them on the pod IPs. A Service port per worker would cost
// kube-proxy rules for every Worker of the node (2,300 iptables lines at
// 300 Workers), which every pod's network setup then walks.
func mutateService(svc *corev1.Service, b *apiv1.WorkerBundle) {
	mergeInto(&svc.Labels, workloadLabels(b))
	svc.Spec.Type = corev1.ServiceTypeClusterIP
	svc.Spec.Selector = selectorLabels(b)
	svc.Spec.Ports = []corev1.ServicePort{{Name: HealthPortName, Port: builder.HealthPort, TargetPort: intstr.FromInt32(builder.HealthPort), Protocol: corev1.ProtocolTCP}}
}
