package controller

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
)

// PrefixDeleter removes every S3 object under a key prefix.
type PrefixDeleter interface {
	DeletePrefix(ctx context.Context, prefix string) error
}

// ReleaseReconciler keeps the script-files finalizer on WorkerReleases and
// runs it.
type ReleaseReconciler struct {
	Client   client.Client
	Blobs    PrefixDeleter
	Recorder record.EventRecorder
}

// SetupWithManager registers the reconciler.
func (r *ReleaseReconciler) SetupWithManager(mgr ctrl.Manager, log logr.Logger) error {
	b := ctrl.NewControllerManagedBy(mgr).For(&apiv1.WorkerRelease{}).Named("workerrelease")
	if log.GetSink() != nil {
		b = b.WithLogConstructor(func(*ctrl.Request) logr.Logger { return log })
	}
	return b.Complete(r)
}

// Reconcile adds the finalizer to live releases and, for deleted ones,
// removes the script's files, then the finalizer.
func (r *ReleaseReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var rel apiv1.WorkerRelease
	if err := r.Client.Get(ctx, req.NamespacedName, &rel); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if rel.DeletionTimestamp.IsZero() {
		if controllerutil.AddFinalizer(&rel, apiv1.FinalizerScriptFiles) {
			return ctrl.Result{}, client.IgnoreNotFound(r.Client.Update(ctx, &rel))
		}
		return ctrl.Result{}, nil
	}
	if !controllerutil.ContainsFinalizer(&rel, apiv1.FinalizerScriptFiles) {
		return ctrl.Result{}, nil
	}
	prefix := store.ScriptPrefix(rel.Spec.AccountID, rel.Spec.ScriptName)
	if err := r.Blobs.DeletePrefix(ctx, prefix); err != nil {
		r.Recorder.Eventf(&rel, corev1.EventTypeWarning, "CleanupFailed", "remove %s from S3: %v", prefix, err)
		return ctrl.Result{}, fmt.Errorf("remove script files %s: %w", prefix, err)
	}
	controllerutil.RemoveFinalizer(&rel, apiv1.FinalizerScriptFiles)
	return ctrl.Result{}, client.IgnoreNotFound(r.Client.Update(ctx, &rel))
}
