package controller

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/builder"
)

// JobBuilderReconciler runs the build a JobBuilder describes, in-process.
type JobBuilderReconciler struct {
	Client client.Client
	// APIReader reads uncached; it confirms that a build is still to be done
	// before starting it (the cache may not have the last status yet). Nil
	// means Client.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  record.EventRecorder
	Options   Options
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// SetupWithManager registers the reconciler; MaxConcurrentBuilds builds run
// at once, each bounded by BuildTimeout.
func (r *JobBuilderReconciler) SetupWithManager(mgr ctrl.Manager, logger logr.Logger) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("jobbuilder").
		For(&apiv1.JobBuilder{}).
		// A bundle that comes back to a build it had superseded wakes it.
		Watches(&apiv1.WorkerBundle{}, handler.EnqueueRequestsFromMapFunc(bundleBuild)).
		WithOptions(controller.Options{
			Logger:                  logger,
			MaxConcurrentReconciles: r.Options.MaxConcurrentBuilds,
			// The build has its own timeout; this one also covers the reads
			// and status writes around it.
			ReconciliationTimeout: r.Options.BuildTimeout + time.Minute,
		}).
		Complete(r)
}

func (r *JobBuilderReconciler) clock() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *JobBuilderReconciler) now() metav1.Time {
	return metav1.NewTime(r.clock().UTC().Truncate(time.Second))
}

// retryDelay is how long a failed build waits before attempt n+1.
func retryDelay(attempts int) time.Duration {
	return time.Duration(5<<min(attempts-1, 6)) * time.Second // 5s, 10s, 20s, ...
}

func attempts(jb *apiv1.JobBuilder) int {
	n, _ := strconv.Atoi(jb.Annotations[apiv1.AnnotationBuildAttempts])
	return n
}

// Reconcile implements reconcile.Reconciler.
func (r *JobBuilderReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var jb apiv1.JobBuilder
	if err := r.Client.Get(ctx, req.NamespacedName, &jb); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if jb.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	if jb.Status.Phase != apiv1.JobBuilderSucceeded && r.APIReader != nil {
		// The informer may lag behind the status this controller wrote last:
		// never rebuild on its word alone.
		if err := r.APIReader.Get(ctx, req.NamespacedName, &jb); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	switch jb.Status.Phase {
	case apiv1.JobBuilderSucceeded:
		return ctrl.Result{}, nil
	case apiv1.JobBuilderFailed:
		n := attempts(&jb)
		if n >= r.Options.MaxBuildAttempts {
			return ctrl.Result{}, nil
		}
		if jb.Status.FinishedAt != nil {
			if wait := jb.Status.FinishedAt.Add(retryDelay(n)).Sub(r.clock()); wait > 0 {
				return ctrl.Result{RequeueAfter: wait}, nil
			}
		}
	case "":
		st := jb.Status.DeepCopy()
		st.Phase, st.ObservedGeneration = apiv1.JobBuilderPending, jb.Generation
		st.Message = fmt.Sprintf("waiting to build %d workers", len(jb.Spec.Inputs))
		setConditionStatus(&st.Conditions, jb.Generation, apiv1.ConditionBuilt, metav1.ConditionUnknown, "Pending", st.Message)
		if err := r.setStatus(ctx, &jb, st); err != nil {
			return ctrl.Result{}, err
		}
	}
	// Pending, Building (a build this process did not finish: it restarted,
	// or the final status write failed) or a failed build to retry.
	if by := r.supersededBy(ctx, &jb); by != "" {
		// A burst of uploads changes a bundle faster than it builds: only
		// the build of its current spec is worth running.
		log.FromContext(ctx).V(1).Info("build skipped: superseded", "jobBuilder", jb.Name, "by", by)
		return ctrl.Result{}, nil
	}
	return r.build(ctx, &jb)
}

// supersededBy returns the JobBuilder that replaced jb as its bundle's
// build: the bundle's status names another build for its current
// generation. "" means build jb.
func (r *JobBuilderReconciler) supersededBy(ctx context.Context, jb *apiv1.JobBuilder) string {
	var b apiv1.WorkerBundle
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: jb.Namespace, Name: jb.Spec.BundleName}, &b); err != nil {
		return ""
	}
	if !ownedBy(jb, &b) || b.Status.ObservedGeneration != b.Generation || b.Status.JobBuilderName == "" || b.Status.JobBuilderName == jb.Name {
		return ""
	}
	return b.Status.JobBuilderName
}

// bundleBuild enqueues the build a bundle's status names.
func bundleBuild(_ context.Context, obj client.Object) []reconcile.Request {
	b, ok := obj.(*apiv1.WorkerBundle)
	if !ok || b.Status.JobBuilderName == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: b.Namespace, Name: b.Status.JobBuilderName}}}
}

// build runs the build and records its outcome.
func (r *JobBuilderReconciler) build(ctx context.Context, jb *apiv1.JobBuilder) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	n := attempts(jb) + 1
	if err := r.setAnnotation(ctx, jb, apiv1.AnnotationBuildAttempts, strconv.Itoa(n)); err != nil {
		return ctrl.Result{}, err
	}
	st := jb.Status.DeepCopy()
	st.Phase, st.ObservedGeneration = apiv1.JobBuilderBuilding, jb.Generation
	st.StartedAt, st.FinishedAt = ptrTime(r.now()), nil
	st.Image, st.Digest = "", ""
	st.Message = fmt.Sprintf("building %d workers (attempt %d)", len(jb.Spec.Inputs), n)
	setConditionStatus(&st.Conditions, jb.Generation, apiv1.ConditionBuilt, metav1.ConditionUnknown, "Building", st.Message)
	if err := r.setStatus(ctx, jb, st); err != nil {
		return ctrl.Result{}, err
	}
	r.Recorder.Eventf(jb, "Normal", "Building", "building %d workers (attempt %d)", len(jb.Spec.Inputs), n)

	req, missing, err := r.request(ctx, jb)
	var res builder.BuildResult
	if err == nil {
		bctx, cancel := context.WithTimeout(ctx, r.Options.BuildTimeout)
		t0 := time.Now()
		res, err = r.Options.Builder.Build(bctx, req)
		cancel()
		if err != nil {
			buildDuration.WithLabelValues("failed").Observe(time.Since(t0).Seconds())
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("build timed out after %s: %w", r.Options.BuildTimeout, err)
		}
	}
	if err != nil {
		logger.Error(err, "build failed", "attempt", n)
		r.Recorder.Eventf(jb, "Warning", "BuildFailed", "%v", err)
		st := jb.Status.DeepCopy()
		st.Phase, st.FinishedAt, st.Message = apiv1.JobBuilderFailed, ptrTime(r.now()), err.Error()
		setCondition(&st.Conditions, jb.Generation, apiv1.ConditionBuilt, false, "BuildFailed", err.Error())
		if serr := r.setStatus(ctx, jb, st); serr != nil {
			return ctrl.Result{}, serr
		}
		if n < r.Options.MaxBuildAttempts {
			return ctrl.Result{RequeueAfter: retryDelay(n)}, nil
		}
		return ctrl.Result{}, nil
	}

	if p := r.Options.Puller; p != nil {
		// The node fetches the image while the status is written and the
		// Deployment rolls out: the kubelet finds it present.
		go func() {
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := p.Pull(pctx, res.Image); err != nil {
				logger.Info("image not pre-pulled; the kubelet pulls it", "image", res.Image, "err", err.Error())
			}
		}()
	}
	buildDuration.WithLabelValues("succeeded").Observe(res.Duration.Seconds())
	failed := append(missing, res.Failed...)
	slicesSortFailed(failed)
	// The versions learn first; a failure here retries the whole (cached,
	// idempotent) build.
	if err := r.versionStatuses(ctx, jb, req, failed, res.Image); err != nil {
		return ctrl.Result{}, err
	}
	b, _ := json.Marshal(failed)
	if len(failed) == 0 {
		b = []byte("[]")
	}
	if err := r.setAnnotation(ctx, jb, apiv1.AnnotationFailedWorkers, string(b)); err != nil {
		return ctrl.Result{}, err
	}
	if res.LoaderPort > 0 {
		if err := r.setAnnotation(ctx, jb, apiv1.AnnotationLoaderPort, strconv.Itoa(res.LoaderPort)); err != nil {
			return ctrl.Result{}, err
		}
	}
	st = jb.Status.DeepCopy()
	st.Phase, st.FinishedAt = apiv1.JobBuilderSucceeded, ptrTime(r.now())
	st.Image, st.Digest = res.Image, res.Digest
	st.Message = fmt.Sprintf("built %d of %d workers in %s", len(res.Ports), len(jb.Spec.Inputs), res.Duration.Round(time.Millisecond))
	if len(failed) > 0 {
		var parts []string
		for _, f := range failed {
			parts = append(parts, fmt.Sprintf("%s@%s: %s", f.ScriptName, f.VersionID, f.Message))
		}
		st.Message += "; failed to start: " + strings.Join(parts, "; ")
	}
	setCondition(&st.Conditions, jb.Generation, apiv1.ConditionBuilt, true, "Built", st.Message)
	if err := r.setStatus(ctx, jb, st); err != nil {
		return ctrl.Result{}, err
	}
	r.Recorder.Eventf(jb, "Normal", "Built", "%s (%s)", st.Message, res.Image)
	logger.Info("build succeeded", "image", res.Image, "workers", len(res.Ports), "failed", len(failed), "duration", res.Duration)
	return ctrl.Result{}, nil
}

// request assembles the build request; inputs whose WorkerVersion is gone
// are reported as failed workers.
func (r *JobBuilderReconciler) request(ctx context.Context, jb *apiv1.JobBuilder) (builder.BuildRequest, []apiv1.FailedWorker, error) {
	req := builder.BuildRequest{
		AccountID:   jb.Spec.AccountID,
		BundleName:  jb.Spec.BundleName,
		BaseImage:   jb.Spec.BaseImage,
		Repository:  jb.Spec.TargetImage,
		KVAddress:   r.Options.PodHost,
		D1Address:   r.Options.OwnerHost,
		TailAddress: cmp.Or(r.Options.OwnerHost, r.Options.PodHost),
		Loader:      true,
		SecretEnv:   builder.SecretEnv,
	}
	var missing []apiv1.FailedWorker
	for _, in := range jb.Spec.Inputs {
		var v apiv1.WorkerVersion
		err := r.Client.Get(ctx, types.NamespacedName{Namespace: jb.Namespace, Name: in.VersionName}, &v)
		switch {
		case apierrors.IsNotFound(err):
			missing = append(missing, apiv1.FailedWorker{ScriptName: in.ScriptName, VersionID: in.VersionID, Message: "WorkerVersion " + in.VersionName + " not found"})
			continue
		case err != nil:
			return req, nil, err
		case v.Spec.VersionID != in.VersionID || VersionDigest(&v) != in.Digest:
			missing = append(missing, apiv1.FailedWorker{ScriptName: in.ScriptName, VersionID: in.VersionID, Message: "WorkerVersion " + in.VersionName + " changed since the build was requested"})
			continue
		}
		req.Workers = append(req.Workers, builder.BuildWorker{Version: &v, Port: int(in.Port), ServiceTarget: in.ServiceTarget, DurableObjects: in.DurableObjects})
	}
	return req, missing, nil
}

// versionStatuses records on every input version whether it started:
// Validated=False and phase Failed with workerd's message, or Validated=True.
func (r *JobBuilderReconciler) versionStatuses(ctx context.Context, jb *apiv1.JobBuilder, req builder.BuildRequest, failed []apiv1.FailedWorker, image string) error {
	msgs := map[string]string{}
	for _, f := range failed {
		msgs[f.VersionID] = f.Message
	}
	for _, w := range req.Workers {
		v := w.Version
		msg, bad := msgs[v.Spec.VersionID]
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var cur apiv1.WorkerVersion
			if err := r.Client.Get(ctx, client.ObjectKeyFromObject(v), &cur); err != nil {
				return err
			}
			st := cur.Status.DeepCopy()
			st.ObservedGeneration = cur.Generation
			if bad {
				setCondition(&st.Conditions, cur.Generation, apiv1.ConditionValidated, false, "StartupFailed", msg)
				st.Phase, st.Message = apiv1.WorkerVersionFailed, msg
			} else {
				if c := meta.FindStatusCondition(st.Conditions, apiv1.ConditionValidated); c == nil || c.Status != metav1.ConditionTrue {
					setCondition(&st.Conditions, cur.Generation, apiv1.ConditionValidated, true, "Started", "the version started in workerd")
				}
				st.Phase, st.Message = apiv1.WorkerVersionReady, ""
			}
			if statusEqual(&cur.Status, st) {
				return nil
			}
			cur.Status = *st
			return r.Client.Status().Update(ctx, &cur)
		})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("status of WorkerVersion %s: %w", v.Name, err)
		}
		if bad {
			r.Recorder.Eventf(v, "Warning", "StartupFailed", "left out of %s: %s", jb.Spec.BundleName, msg)
		}
	}
	return nil
}

// setStatus writes st as jb's status.
func (r *JobBuilderReconciler) setStatus(ctx context.Context, jb *apiv1.JobBuilder, st *apiv1.JobBuilderStatus) error {
	jb.Status = *st
	return r.Client.Status().Update(ctx, jb)
}

// setAnnotation writes one annotation of jb.
func (r *JobBuilderReconciler) setAnnotation(ctx context.Context, jb *apiv1.JobBuilder, key, value string) error {
	if jb.Annotations[key] == value {
		return nil
	}
	patch := client.MergeFromWithOptions(jb.DeepCopy(), client.MergeFromWithOptimisticLock{})
	if jb.Annotations == nil {
		jb.Annotations = map[string]string{}
	}
	jb.Annotations[key] = value
	return r.Client.Patch(ctx, jb, patch)
}

func ptrTime(t metav1.Time) *metav1.Time { return &t }

func slicesSortFailed(f []apiv1.FailedWorker) {
	s := apiv1.WorkerBundleStatus{FailedWorkers: f}
	s.Normalize()
}

func statusEqual(a, b *apiv1.WorkerVersionStatus) bool { return equality.Semantic.DeepEqual(a, b) }
