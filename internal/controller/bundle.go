package controller

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	bldr "sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	apiv1 "github.com/octohq/octo/api/v1"
)

// BundleReconciler turns a WorkerBundle into a JobBuilder per distinct build
// input, and runs the image of the latest successful build in a Deployment
// with a Service.
type BundleReconciler struct {
	Client   client.Client
	Scheme   *runtime.Scheme
	Recorder record.EventRecorder
	Options  Options
}

// SetupWithManager registers the reconciler: bundles (on changes of their
// spec, labels or stalled pod) and the JobBuilders, Deployments and Services
// they own.
func (r *BundleReconciler) SetupWithManager(mgr ctrl.Manager, logger logr.Logger) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("workerbundle").
		For(&apiv1.WorkerBundle{}, bldr.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, stalledPodChanged()))).
		Owns(&apiv1.JobBuilder{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		// The first reconcile may push the workerd base image. Bundles of
		// different accounts and shards reconcile side by side.
		WithOptions(controller.Options{Logger: logger, ReconciliationTimeout: r.Options.BuildTimeout, MaxConcurrentReconciles: BundleWorkers}).
		Complete(r)
}

// Reconcile implements reconcile.Reconciler.
func (r *BundleReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	var b apiv1.WorkerBundle
	if err := r.Client.Get(ctx, req.NamespacedName, &b); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if b.DeletionTimestamp != nil {
		return ctrl.Result{}, nil // owner references take the children away
	}
	status := b.Status.DeepCopy()
	status.ObservedGeneration = b.Generation
	gen := b.Generation

	// 1. The build of the current spec.
	current, problems, err := r.ensureJobBuilder(ctx, &b)
	if apierrors.IsAlreadyExists(err) {
		return ctrl.Result{RequeueAfter: time.Second}, nil // created by an earlier pass; the cache lags
	}
	if err != nil {
		setCondition(&status.Conditions, gen, apiv1.ConditionBuilt, false, "BuildNotStarted", err.Error())
		setCondition(&status.Conditions, gen, apiv1.ConditionReady, false, "BuildNotStarted", err.Error())
		if serr := r.writeStatus(ctx, &b, status); serr != nil {
			logger.Error(serr, "write bundle status")
		}
		return ctrl.Result{}, err
	}
	status.JobBuilderName = current.Name
	switch current.Status.Phase {
	case apiv1.JobBuilderSucceeded:
		setCondition(&status.Conditions, gen, apiv1.ConditionBuilt, true, "Built", current.Status.Message)
	case apiv1.JobBuilderFailed:
		setCondition(&status.Conditions, gen, apiv1.ConditionBuilt, false, "BuildFailed", current.Status.Message)
	default:
		setCondition(&status.Conditions, gen, apiv1.ConditionBuilt, false, "Building", fmt.Sprintf("JobBuilder %s is building the image", current.Name))
	}

	// 2. The image to run: the current build once it succeeded, else the
	// latest successful one (the pods keep serving while a build runs or
	// after one fails).
	owned, err := r.ownedJobBuilders(ctx, &b, current)
	if err != nil {
		return ctrl.Result{}, err
	}
	serving := servingBuild(current, owned)
	prevImage := status.Image
	prevFailed := status.FailedWorkers
	if serving != nil {
		status.Image, status.Digest = serving.Status.Image, serving.Status.Digest
		status.FailedWorkers = failedWorkers(serving)
		status.Normalize()
	} else {
		status.Image, status.Digest, status.FailedWorkers = "", "", nil
	}
	r.failureEvents(&b, prevFailed, status.FailedWorkers)

	// 3. The workload.
	var ready bool
	var reason, msg string
	switch {
	case serving == nil:
		status.ReadyReplicas = 0
		setCondition(&status.Conditions, gen, apiv1.ConditionAvailable, false, "NoImage", "no image was built yet")
		ready, reason, msg = false, "NoImage", "no image was built yet"
		if current.Status.Phase == apiv1.JobBuilderFailed {
			reason, msg = "BuildFailed", current.Status.Message
		}
	default:
		dep, err := r.applyWorkload(ctx, &b, serving)
		if err != nil {
			setCondition(&status.Conditions, gen, apiv1.ConditionAvailable, false, "WorkloadFailed", err.Error())
			setCondition(&status.Conditions, gen, apiv1.ConditionReady, false, "WorkloadFailed", err.Error())
			if serr := r.writeStatus(ctx, &b, status); serr != nil {
				logger.Error(serr, "write bundle status")
			}
			return ctrl.Result{}, err
		}
		if status.Image != prevImage {
			r.Recorder.Eventf(&b, "Normal", "RollingOut", "rolling out %s", status.Image)
		}
		status.ReadyReplicas = dep.Status.ReadyReplicas
		want := replicas(&b)
		if hostsObjects(serving) {
			want = min(want, 1) // one pod at most (mutateDeployment)
		}
		available := dep.Status.AvailableReplicas > 0 || want == 0
		setCondition(&status.Conditions, gen, apiv1.ConditionAvailable, available, map[bool]string{true: "PodsReady", false: "PodsNotReady"}[available],
			fmt.Sprintf("%d of %d pods ready", dep.Status.ReadyReplicas, want))
		switch {
		case serving.Name != current.Name:
			ready, reason, msg = false, "Building", fmt.Sprintf("serving %s while JobBuilder %s builds the current workers", serving.Name, current.Name)
			if current.Status.Phase == apiv1.JobBuilderFailed {
				reason, msg = "BuildFailed", fmt.Sprintf("JobBuilder %s failed: %s; still serving %s", current.Name, current.Status.Message, serving.Name)
			}
		case !rolledOut(dep, want):
			ready, reason, msg = false, "RollingOut", fmt.Sprintf("Deployment %s: %d of %d pods updated and ready", dep.Name, dep.Status.UpdatedReplicas, want)
		default:
			ready, reason, msg = true, "Ready", fmt.Sprintf("%d workers served by %d pods", len(sockets(serving)), dep.Status.ReadyReplicas)
			if n := len(status.FailedWorkers); n > 0 {
				msg += fmt.Sprintf("; %d failed to start", n)
			}
		}
	}
	if len(problems) > 0 {
		msg += "; " + strings.Join(problems, "; ")
	}
	wasReady := meta.IsStatusConditionTrue(b.Status.Conditions, apiv1.ConditionReady) && prevImage == status.Image
	if ready && !wasReady && serving != nil && serving.Status.FinishedAt != nil {
		// Rolled out: from the image being built to every pod serving it.
		rolloutDuration.Observe(time.Since(serving.Status.FinishedAt.Time).Seconds())
	}
	setCondition(&status.Conditions, gen, apiv1.ConditionReady, ready, reason, msg)

	if err := r.pruneJobBuilders(ctx, &b, owned, current, serving); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.writeStatus(ctx, &b, status); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: time.Second}, nil
		}
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

// replicas is the number of pods the bundle's Deployment runs: spec.replicas
// (1 when unset), plus a surge replica while the bundle is stalled
// (stalled): the gateway sends the bundle's other Workers to it while the
// stalled process spins. A bundle scaled to zero gets none.
func replicas(b *apiv1.WorkerBundle) int32 {
	n := int32(1)
	if b.Spec.Replicas != nil {
		n = *b.Spec.Replicas
	}
	if n > 0 && stalled(b) {
		n++
	}
	return n
}

// stalled reports whether the gateway marked one of the bundle's pods as
// blocked by a request (apiv1.AnnotationStalledPod).
func stalled(b client.Object) bool {
	return b.GetAnnotations()[apiv1.AnnotationStalledPod] != ""
}

// stalledPodChanged passes the updates of a bundle that set, change or
// remove its apiv1.AnnotationStalledPod, so that its Deployment gains or
// loses the surge replica (replicas); other annotations do not trigger a
// reconcile. Creations, deletions and generic events are left to the other
// predicates.
func stalledPodChanged() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			if e.ObjectOld == nil || e.ObjectNew == nil {
				return false
			}
			return e.ObjectOld.GetAnnotations()[apiv1.AnnotationStalledPod] != e.ObjectNew.GetAnnotations()[apiv1.AnnotationStalledPod]
		},
	}
}

// rolledOut reports whether every pod of dep runs its current template and
// is available.
func rolledOut(dep *appsv1.Deployment, want int32) bool {
	s := dep.Status
	return s.ObservedGeneration >= dep.Generation && s.UpdatedReplicas == want && s.Replicas == want &&
		s.AvailableReplicas >= want && s.ReadyReplicas >= want
}

// ensureJobBuilder returns the JobBuilder of the bundle's current spec,
// creating it when missing.
func (r *BundleReconciler) ensureJobBuilder(ctx context.Context, b *apiv1.WorkerBundle) (*apiv1.JobBuilder, []string, error) {
	var problems []string
	spec := apiv1.JobBuilderSpec{
		AccountID:   b.Spec.AccountID,
		BundleName:  b.Name,
		Inputs:      []apiv1.BuildInput{},
		TargetImage: TargetImage(r.Options.Registry, b.Spec.AccountID),
	}
	for _, w := range b.Spec.Workers {
		var v apiv1.WorkerVersion
		err := r.Client.Get(ctx, types.NamespacedName{Namespace: b.Namespace, Name: w.VersionName}, &v)
		if apierrors.IsNotFound(err) || (err == nil && v.Spec.VersionID != w.VersionID) {
			problems = append(problems, fmt.Sprintf("WorkerVersion %s (%s of %s) not found", w.VersionName, w.VersionID, w.ScriptName))
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		spec.Inputs = append(spec.Inputs, apiv1.BuildInput{
			VersionName: v.Name, ScriptName: w.ScriptName, VersionID: w.VersionID, Digest: VersionDigest(&v), Port: w.Port,
			ServiceTarget: w.ServiceTarget, DurableObjects: w.DurableObjects,
		})
	}
	base, err := r.Options.Builder.EnsureBase(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("base image: %w", err)
	}
	spec.BaseImage = base
	spec.Normalize()
	name := JobBuilderName(b.Name, &spec)

	var jb apiv1.JobBuilder
	err = r.Client.Get(ctx, types.NamespacedName{Namespace: b.Namespace, Name: name}, &jb)
	switch {
	case err == nil:
		if !ownedBy(&jb, b) {
			return nil, nil, fmt.Errorf("JobBuilder %s exists and does not belong to this bundle", name)
		}
		return &jb, problems, nil
	case !apierrors.IsNotFound(err):
		return nil, nil, err
	}
	jb = apiv1.JobBuilder{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: b.Namespace,
			Labels: map[string]string{apiv1.LabelBundle: apiv1.BundleLabelValue(b.Name), apiv1.LabelAccount: b.Spec.AccountID}},
		Spec: spec,
	}
	if err := controllerutil.SetControllerReference(b, &jb, r.Scheme); err != nil {
		return nil, nil, err
	}
	if err := r.Client.Create(ctx, &jb); err != nil {
		return nil, nil, fmt.Errorf("create JobBuilder %s: %w", name, err)
	}
	r.Recorder.Eventf(b, "Normal", "BuildRequested", "JobBuilder %s builds %d workers", name, len(spec.Inputs))
	log.FromContext(ctx).Info("build requested", "jobBuilder", name, "workers", len(spec.Inputs))
	return &jb, problems, nil
}

// ownedJobBuilders lists the bundle's JobBuilders, current included.
func (r *BundleReconciler) ownedJobBuilders(ctx context.Context, b *apiv1.WorkerBundle, current *apiv1.JobBuilder) ([]*apiv1.JobBuilder, error) {
	var list apiv1.JobBuilderList
	if err := r.Client.List(ctx, &list, client.InNamespace(b.Namespace), client.MatchingLabels{apiv1.LabelBundle: apiv1.BundleLabelValue(b.Name)}); err != nil {
		return nil, err
	}
	out := []*apiv1.JobBuilder{current}
	for i := range list.Items {
		jb := &list.Items[i]
		if jb.Name != current.Name && ownedBy(jb, b) && jb.DeletionTimestamp == nil {
			out = append(out, jb)
		}
	}
	// Newest first.
	slices.SortStableFunc(out, func(x, y *apiv1.JobBuilder) int {
		return cmp.Or(y.CreationTimestamp.Compare(x.CreationTimestamp.Time), cmp.Compare(y.Name, x.Name))
	})
	return out, nil
}

// servingBuild is the build whose image the pods run: current once it
// succeeded, otherwise the latest successful one.
func servingBuild(current *apiv1.JobBuilder, owned []*apiv1.JobBuilder) *apiv1.JobBuilder {
	if current.Status.Phase == apiv1.JobBuilderSucceeded && current.Status.Image != "" {
		return current
	}
	var best *apiv1.JobBuilder
	for _, jb := range owned {
		if jb.Status.Phase != apiv1.JobBuilderSucceeded || jb.Status.Image == "" {
			continue
		}
		if best == nil || finished(jb).After(finished(best)) || (finished(jb).Equal(finished(best)) && jb.Name > best.Name) {
			best = jb
		}
	}
	return best
}

func finished(jb *apiv1.JobBuilder) time.Time {
	if jb.Status.FinishedAt != nil {
		return jb.Status.FinishedAt.Time
	}
	return jb.CreationTimestamp.Time
}

// pruneJobBuilders deletes all but the newest KeepJobBuilders, never the
// current or the serving one.
func (r *BundleReconciler) pruneJobBuilders(ctx context.Context, b *apiv1.WorkerBundle, owned []*apiv1.JobBuilder, current, serving *apiv1.JobBuilder) error {
	kept := 0
	for _, jb := range owned {
		keep := jb.Name == current.Name || (serving != nil && jb.Name == serving.Name) || kept < KeepJobBuilders
		if keep {
			kept++
			continue
		}
		if err := r.Client.Delete(ctx, jb); client.IgnoreNotFound(err) != nil {
			return err
		}
		log.FromContext(ctx).V(1).Info("old JobBuilder deleted", "jobBuilder", jb.Name)
	}
	return nil
}

// failureEvents reports the workers that newly failed to start.
func (r *BundleReconciler) failureEvents(b *apiv1.WorkerBundle, before, after []apiv1.FailedWorker) {
	seen := map[string]bool{}
	for _, f := range before {
		seen[f.VersionID] = true
	}
	for _, f := range after {
		if !seen[f.VersionID] {
			r.Recorder.Eventf(b, "Warning", "WorkerFailed", "%s version %s left out of the bundle: %s", f.ScriptName, f.VersionID, f.Message)
		}
	}
}

func (r *BundleReconciler) writeStatus(ctx context.Context, b *apiv1.WorkerBundle, status *apiv1.WorkerBundleStatus) error {
	if equality.Semantic.DeepEqual(&b.Status, status) {
		return nil
	}
	b.Status = *status
	return r.Client.Status().Update(ctx, b)
}
