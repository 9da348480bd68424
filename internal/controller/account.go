package controller

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	bldr "sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/builder"
)

// AccountReconciler keeps an account's WorkerBundle equal to what the
// account must run, and reports readiness on the account and its releases.
type AccountReconciler struct {
	Client   client.Client
	Scheme   *runtime.Scheme
	Recorder record.EventRecorder
	Options  Options
}

// SetupWithManager registers the reconciler: accounts, their bundles, and the
// releases and versions of each account.
func (r *AccountReconciler) SetupWithManager(mgr ctrl.Manager, logger logr.Logger) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("workeraccount").
		For(&apiv1.WorkerAccount{}, bldr.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		Owns(&apiv1.WorkerBundle{}).
		Watches(&apiv1.WorkerRelease{}, handler.EnqueueRequestsFromMapFunc(releaseAccount),
			bldr.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		Watches(&apiv1.WorkerVersion{}, handler.EnqueueRequestsFromMapFunc(versionAccount),
			bldr.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{Logger: logger, ReconciliationTimeout: time.Minute}).
		Complete(r)
}

func releaseAccount(_ context.Context, obj client.Object) []reconcile.Request {
	rel, ok := obj.(*apiv1.WorkerRelease)
	if !ok || rel.Spec.AccountID == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: rel.Namespace, Name: rel.Spec.AccountID}}}
}

func versionAccount(_ context.Context, obj client.Object) []reconcile.Request {
	v, ok := obj.(*apiv1.WorkerVersion)
	if !ok || v.Spec.AccountID == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: v.Namespace, Name: v.Spec.AccountID}}}
}

// desiredBundle is what an account must run.
type desiredBundle struct {
	spec     apiv1.WorkerBundleSpec
	releases []*apiv1.WorkerRelease
	problems []string
}

// Reconcile implements reconcile.Reconciler.
func (r *AccountReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	var acct apiv1.WorkerAccount
	if err := r.Client.Get(ctx, req.NamespacedName, &acct); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if acct.DeletionTimestamp != nil {
		return ctrl.Result{}, nil // the garbage collector removes the bundle
	}
	status := acct.Status.DeepCopy()
	status.ObservedGeneration = acct.Generation
	status.BundleName = BundleName(&acct)
	status.Subdomain = Subdomain(&acct)

	var existing apiv1.WorkerBundle
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: acct.Namespace, Name: status.BundleName}, &existing)
	switch {
	case apierrors.IsNotFound(err):
		existing = apiv1.WorkerBundle{}
	case err != nil:
		return ctrl.Result{}, err
	}

	want, err := r.desired(ctx, &acct, &existing)
	if err != nil {
		var se selectorError
		if !asSelectorError(err, &se) {
			return ctrl.Result{}, err
		}
		r.Recorder.Event(&acct, "Warning", "InvalidSelector", se.Error())
		setCondition(&status.Conditions, acct.Generation, apiv1.ConditionReady, false, "InvalidSelector", se.Error())
		return ctrl.Result{}, r.writeStatus(ctx, &acct, status)
	}

	bundle := &apiv1.WorkerBundle{ObjectMeta: metav1.ObjectMeta{Namespace: acct.Namespace, Name: status.BundleName}}
	op, err := controllerutil.CreateOrUpdate(ctx, r.Client, bundle, func() error {
		if ref := metav1.GetControllerOf(bundle); ref != nil && ref.UID != acct.UID {
			return fmt.Errorf("WorkerBundle %s is controlled by %s %s, not by this account", bundle.Name, ref.Kind, ref.Name)
		}
		if err := controllerutil.SetControllerReference(&acct, bundle, r.Scheme); err != nil {
			return err
		}
		if bundle.Labels == nil {
			bundle.Labels = map[string]string{}
		}
		bundle.Labels[apiv1.LabelAccount] = acct.Name
		spec := want.spec
		spec.Replicas = bundle.Spec.Replicas // the account does not decide the scale
		bundle.Spec = spec
		return nil
	})
	if err != nil {
		r.Recorder.Eventf(&acct, "Warning", "BundleFailed", "cannot write WorkerBundle %s: %v", status.BundleName, err)
		setCondition(&status.Conditions, acct.Generation, apiv1.ConditionReady, false, "BundleFailed", err.Error())
		if serr := r.writeStatus(ctx, &acct, status); serr != nil {
			logger.Error(serr, "write account status")
		}
		return ctrl.Result{}, err
	}
	switch op {
	case controllerutil.OperationResultCreated:
		r.Recorder.Eventf(&acct, "Normal", "BundleCreated", "created WorkerBundle %s with %d workers", bundle.Name, len(bundle.Spec.Workers))
	case controllerutil.OperationResultUpdated:
		r.Recorder.Eventf(&acct, "Normal", "BundleUpdated", "updated WorkerBundle %s: %d workers", bundle.Name, len(bundle.Spec.Workers))
	}
	if op != controllerutil.OperationResultNone {
		logger.Info("bundle written", "bundle", bundle.Name, "op", op, "workers", len(bundle.Spec.Workers))
		for _, p := range want.problems {
			r.Recorder.Event(&acct, "Warning", "VersionMissing", p)
		}
	}

	if err := r.pruneBundles(ctx, &acct, bundle.Name); err != nil {
		return ctrl.Result{}, err
	}

	// Readiness: the bundle serves the current spec.
	ready, reason, msg := bundleReady(bundle)
	if len(want.problems) > 0 {
		msg = strings.TrimSpace(msg + "; " + strings.Join(want.problems, "; "))
	}
	setCondition(&status.Conditions, acct.Generation, apiv1.ConditionReady, ready, reason, msg)
	if err := r.writeStatus(ctx, &acct, status); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: time.Second}, nil // a newer account is on its way
		}
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.releaseStatuses(ctx, &acct, bundle, want.releases)
}

// bundleReady reports whether the bundle's status is about its current spec
// and says Ready.
func bundleReady(b *apiv1.WorkerBundle) (bool, string, string) {
	c := meta.FindStatusCondition(b.Status.Conditions, apiv1.ConditionReady)
	switch {
	case b.Status.ObservedGeneration != b.Generation || c == nil || c.ObservedGeneration != b.Generation:
		return false, "Reconciling", fmt.Sprintf("WorkerBundle %s is being reconciled", b.Name)
	case c.Status != metav1.ConditionTrue:
		return false, "BundleNotReady", fmt.Sprintf("WorkerBundle %s: %s", b.Name, c.Message)
	}
	return true, "BundleReady", fmt.Sprintf("WorkerBundle %s serves %d workers", b.Name, len(b.Spec.Workers))
}

type selectorError struct{ err error }

func (e selectorError) Error() string { return "invalid workerReleaseSelector: " + e.err.Error() }

func asSelectorError(err error, target *selectorError) bool {
	se, ok := err.(selectorError)
	if ok {
		*target = se
	}
	return ok
}

// desired computes the account's bundle spec: for every release of the
// account (and matching workerReleaseSelector, when set), the versions of its
// active deployment and the script's latest version; ports kept from
// existing, new ones from builder.FirstWorkerPort up; a route per deployed
// script.
func (r *AccountReconciler) desired(ctx context.Context, acct *apiv1.WorkerAccount, existing *apiv1.WorkerBundle) (*desiredBundle, error) {
	sel := labels.Everything()
	if acct.Spec.WorkerReleaseSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(acct.Spec.WorkerReleaseSelector)
		if err != nil {
			return nil, selectorError{err}
		}
		sel = s
	}
	var rels apiv1.WorkerReleaseList
	if err := r.Client.List(ctx, &rels, client.InNamespace(acct.Namespace)); err != nil {
		return nil, err
	}
	var vers apiv1.WorkerVersionList
	if err := r.Client.List(ctx, &vers, client.InNamespace(acct.Namespace)); err != nil {
		return nil, err
	}
	byID := map[string]*apiv1.WorkerVersion{}
	latest := map[string]*apiv1.WorkerVersion{} // by script
	for i := range vers.Items {
		v := &vers.Items[i]
		if v.Spec.AccountID != acct.Name || v.DeletionTimestamp != nil {
			continue
		}
		byID[v.Spec.VersionID] = v
		if l := latest[v.Spec.ScriptName]; l == nil || v.Spec.Number > l.Spec.Number ||
			(v.Spec.Number == l.Spec.Number && v.Name > l.Name) {
			latest[v.Spec.ScriptName] = v
		}
	}

	d := &desiredBundle{spec: apiv1.WorkerBundleSpec{AccountID: acct.Name, PodTemplate: *acct.Spec.PodTemplate.DeepCopy()}}
	inBundle := map[string]bool{} // version IDs
	add := func(v *apiv1.WorkerVersion) {
		if inBundle[v.Spec.VersionID] {
			return
		}
		inBundle[v.Spec.VersionID] = true
		d.spec.Workers = append(d.spec.Workers, apiv1.BundleWorker{ScriptName: v.Spec.ScriptName, VersionID: v.Spec.VersionID, VersionName: v.Name})
	}
	slices.SortFunc(rels.Items, func(a, b apiv1.WorkerRelease) int {
		return cmp.Or(cmp.Compare(a.Spec.ScriptName, b.Spec.ScriptName), cmp.Compare(a.Name, b.Name))
	})
	scripts := map[string]bool{}
	for i := range rels.Items {
		rel := &rels.Items[i]
		if rel.Spec.AccountID != acct.Name || rel.DeletionTimestamp != nil || !sel.Matches(labels.Set(rel.Labels)) {
			continue
		}
		script := rel.Spec.ScriptName
		if scripts[script] {
			d.problems = append(d.problems, fmt.Sprintf("WorkerRelease %s: script %s already has a release; ignored", rel.Name, script))
			continue
		}
		scripts[script] = true
		d.releases = append(d.releases, rel)
		if dep := rel.ActiveDeployment(); dep != nil {
			for _, vt := range dep.Versions {
				v := byID[vt.VersionID]
				if v == nil || v.Spec.ScriptName != script {
					d.problems = append(d.problems, fmt.Sprintf("deployment %s of %s names version %s, which does not exist", dep.ID, script, vt.VersionID))
					continue
				}
				add(v)
			}
		}
		if v := latest[script]; v != nil {
			add(v)
		}
	}

	// Ports: kept while the version stays in the bundle; the lowest free
	// port for new ones.
	d.spec.Normalize()
	old := map[string]int32{}
	for _, w := range existing.Spec.Workers {
		old[w.VersionID] = w.Port
	}
	used := map[int32]bool{}
	for i := range d.spec.Workers {
		w := &d.spec.Workers[i]
		if p := old[w.VersionID]; p >= builder.FirstWorkerPort && p <= 65535 && !used[p] {
			w.Port, used[p] = p, true
		}
	}
	next := int32(builder.FirstWorkerPort)
	for i := range d.spec.Workers {
		w := &d.spec.Workers[i]
		if w.Port != 0 {
			continue
		}
		for used[next] {
			next++
		}
		w.Port, used[next] = next, true
	}
	return d, nil
}

// host is the request host of a script of the account.
func (r *AccountReconciler) host(script string, acct *apiv1.WorkerAccount) string {
	return script + "." + Subdomain(acct) + "." + r.Options.HostSuffix
}

// pruneBundles deletes the bundles the account controls under another name
// (the account's workerBundleName changed).
func (r *AccountReconciler) pruneBundles(ctx context.Context, acct *apiv1.WorkerAccount, keep string) error {
	var list apiv1.WorkerBundleList
	if err := r.Client.List(ctx, &list, client.InNamespace(acct.Namespace)); err != nil {
		return err
	}
	for i := range list.Items {
		b := &list.Items[i]
		if b.Name == keep || !ownedBy(b, acct) || b.DeletionTimestamp != nil {
			continue
		}
		if err := r.Client.Delete(ctx, b); client.IgnoreNotFound(err) != nil {
			return err
		}
		r.Recorder.Eventf(acct, "Normal", "BundleDeleted", "deleted WorkerBundle %s (the account's bundle is now %s)", b.Name, keep)
	}
	return nil
}

func (r *AccountReconciler) writeStatus(ctx context.Context, acct *apiv1.WorkerAccount, status *apiv1.WorkerAccountStatus) error {
	if equality.Semantic.DeepEqual(&acct.Status, status) {
		return nil
	}
	acct.Status = *status
	return r.Client.Status().Update(ctx, acct)
}

// releaseStatuses reports on every release whether its active deployment is
// served: Ready, activeDeploymentID (lagging during a rollout) and URL.
func (r *AccountReconciler) releaseStatuses(ctx context.Context, acct *apiv1.WorkerAccount, bundle *apiv1.WorkerBundle, rels []*apiv1.WorkerRelease) error {
	bReady, _, bMsg := bundleReady(bundle)
	failed := map[string]string{}
	for _, f := range bundle.Status.FailedWorkers {
		failed[f.VersionID] = f.Message
	}
	for _, rel := range rels {
		st := rel.Status.DeepCopy()
		st.ObservedGeneration = rel.Generation
		if r.Options.GatewayPort > 0 {
			st.URL = fmt.Sprintf("http://%s:%d", r.host(rel.Spec.ScriptName, acct), r.Options.GatewayPort)
		}
		dep := rel.ActiveDeployment()
		var bad []string
		if dep != nil {
			for _, vt := range dep.Versions {
				if msg, ok := failed[vt.VersionID]; ok {
					bad = append(bad, fmt.Sprintf("version %s failed to start: %s", vt.VersionID, msg))
				}
			}
		}
		switch {
		case dep == nil:
			setCondition(&st.Conditions, rel.Generation, apiv1.ConditionReady, false, "NotDeployed", "the script has no deployment")
		case len(bad) > 0:
			setCondition(&st.Conditions, rel.Generation, apiv1.ConditionReady, false, "VersionFailed", strings.Join(bad, "; "))
		case bReady:
			st.ActiveDeploymentID = dep.ID
			setCondition(&st.Conditions, rel.Generation, apiv1.ConditionReady, true, "Serving", fmt.Sprintf("deployment %s is served", dep.ID))
		default:
			setCondition(&st.Conditions, rel.Generation, apiv1.ConditionReady, false, "RollingOut", bMsg)
		}
		if equality.Semantic.DeepEqual(&rel.Status, st) {
			continue
		}
		rel.Status = *st
		if err := r.Client.Status().Update(ctx, rel); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				continue // a newer release is on its way to this reconciler
			}
			return err
		}
	}
	return nil
}
