package controller

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
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
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	bldr "sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
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
	// Now is the clock of lingering workers; nil means time.Now.
	Now func() time.Time
}

func (r *AccountReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
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
		Watches(&apiv1.WorkerVersion{}, versionHandler(VersionSettle),
			bldr.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{Logger: logger, ReconciliationTimeout: time.Minute, MaxConcurrentReconciles: AccountWorkers}).
		Complete(r)
}

func releaseAccount(_ context.Context, obj client.Object) []reconcile.Request {
	rel, ok := obj.(*apiv1.WorkerRelease)
	if !ok || rel.Spec.AccountID == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: rel.Namespace, Name: rel.Spec.AccountID}}}
}

// VersionSettle is how long a new WorkerVersion waits before its account is
// reconciled. An upload that deploys (`wrangler deploy`) stores the version,
// then the release's new deployment a few milliseconds later; reconciling
// in between would build and roll out the bundle twice, once with the old
// and the new version side by side.
const VersionSettle = 250 * time.Millisecond

// versionHandler enqueues a version's account: settle after the version's
// creation, at once for any other change.
func versionHandler(settle time.Duration) handler.EventHandler {
	enqueue := func(obj client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request], after time.Duration) {
		v, ok := obj.(*apiv1.WorkerVersion)
		if !ok || v.Spec.AccountID == "" {
			return
		}
		req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: v.Namespace, Name: v.Spec.AccountID}}
		if after > 0 {
			q.AddAfter(req, after)
			return
		}
		q.Add(req)
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(e.Object, q, settle)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(e.ObjectNew, q, 0)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(e.Object, q, 0)
		},
	}
}

// desiredBundles is what an account must run: one bundle spec per shard
// index (0 always), the shard of every script, and the releases served.
type desiredBundles struct {
	specs    map[int]apiv1.WorkerBundleSpec
	shardOf  map[string]int // script → shard
	releases []*apiv1.WorkerRelease
	problems []string
	// prune is when the earliest lingering workers go (zero: none linger).
	prune time.Time
	// assetsOnly holds the IDs of versions without code (static assets
	// only): the gateway serves them, no bundle runs them.
	assetsOnly map[string]bool
}

// onlyAssets reports whether every version of dep is assets-only.
func (d *desiredBundles) onlyAssets(dep *apiv1.ReleaseDeployment) bool {
	for _, v := range dep.Versions {
		if !d.assetsOnly[v.VersionID] {
			return false
		}
	}
	return len(dep.Versions) > 0
}

// Reconcile implements reconcile.Reconciler.
func (r *AccountReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	var acct apiv1.WorkerAccount
	if err := r.Client.Get(ctx, req.NamespacedName, &acct); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if acct.DeletionTimestamp != nil {
		return ctrl.Result{}, nil // the garbage collector removes the bundles
	}
	status := acct.Status.DeepCopy()
	status.ObservedGeneration = acct.Generation
	status.BundleName = BundleName(&acct)
	status.Subdomain = Subdomain(&acct)

	existing, stale, err := r.accountBundles(ctx, &acct)
	if err != nil {
		return ctrl.Result{}, err
	}
	want, err := r.desired(ctx, &acct, existing)
	if err != nil {
		var se selectorError
		if !asSelectorError(err, &se) {
			return ctrl.Result{}, err
		}
		r.Recorder.Event(&acct, "Warning", "InvalidSelector", se.Error())
		setCondition(&status.Conditions, acct.Generation, apiv1.ConditionReady, false, "InvalidSelector", se.Error())
		return ctrl.Result{}, r.writeStatus(ctx, &acct, status)
	}

	bundles := map[int]*apiv1.WorkerBundle{}
	for _, idx := range slices.Sorted(maps.Keys(want.specs)) {
		b, err := r.writeBundle(ctx, &acct, idx, want.specs[idx], want.problems)
		if err != nil {
			r.Recorder.Eventf(&acct, "Warning", "BundleFailed", "cannot write WorkerBundle %s: %v", ShardName(status.BundleName, idx), err)
			setCondition(&status.Conditions, acct.Generation, apiv1.ConditionReady, false, "BundleFailed", err.Error())
			if serr := r.writeStatus(ctx, &acct, status); serr != nil {
				logger.Error(serr, "write account status")
			}
			return ctrl.Result{}, err
		}
		bundles[idx] = b
	}
	for _, b := range existing {
		if _, keep := want.specs[shardIndex(b)]; !keep {
			stale = append(stale, b)
		}
	}
	if err := r.deleteBundles(ctx, &acct, stale); err != nil {
		return ctrl.Result{}, err
	}

	// Readiness: every bundle serves its current spec.
	ready, reason, msg := bundlesReady(bundles)
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
	if err := r.releaseStatuses(ctx, &acct, bundles, want); err != nil {
		return ctrl.Result{}, err
	}
	if !want.prune.IsZero() {
		return ctrl.Result{RequeueAfter: max(want.prune.Sub(r.now()), 0) + 100*time.Millisecond}, nil
	}
	return ctrl.Result{}, nil
}

// writeBundle creates or updates the account's bundle of shard idx.
func (r *AccountReconciler) writeBundle(ctx context.Context, acct *apiv1.WorkerAccount, idx int, spec apiv1.WorkerBundleSpec, problems []string) (*apiv1.WorkerBundle, error) {
	bundle := &apiv1.WorkerBundle{ObjectMeta: metav1.ObjectMeta{Namespace: acct.Namespace, Name: ShardName(BundleName(acct), idx)}}
	op, err := controllerutil.CreateOrUpdate(ctx, r.Client, bundle, func() error {
		if ref := metav1.GetControllerOf(bundle); ref != nil && ref.UID != acct.UID {
			return fmt.Errorf("WorkerBundle %s is controlled by %s %s, not by this account", bundle.Name, ref.Kind, ref.Name)
		}
		if err := controllerutil.SetControllerReference(acct, bundle, r.Scheme); err != nil {
			return err
		}
		mergeInto(&bundle.Labels, map[string]string{apiv1.LabelAccount: acct.Name, apiv1.LabelShard: strconv.Itoa(idx)})
		if !slices.Equal(bundle.Spec.Workers, spec.Workers) {
			mergeInto(&bundle.Annotations, map[string]string{apiv1.AnnotationWorkersChanged: r.now().UTC().Format(time.RFC3339Nano)})
		}
		spec.Replicas = bundle.Spec.Replicas // the account does not decide the scale
		bundle.Spec = spec
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch op {
	case controllerutil.OperationResultCreated:
		r.Recorder.Eventf(acct, "Normal", "BundleCreated", "created WorkerBundle %s with %d workers", bundle.Name, len(bundle.Spec.Workers))
	case controllerutil.OperationResultUpdated:
		r.Recorder.Eventf(acct, "Normal", "BundleUpdated", "updated WorkerBundle %s: %d workers", bundle.Name, len(bundle.Spec.Workers))
	}
	if op != controllerutil.OperationResultNone {
		log.FromContext(ctx).Info("bundle written", "bundle", bundle.Name, "op", op, "workers", len(bundle.Spec.Workers))
		for _, p := range problems {
			r.Recorder.Event(acct, "Warning", "VersionMissing", p)
		}
	}
	return bundle, nil
}

// ShardName is the name of an account's bundle of shard idx: the account's
// bundle name for shard 0, "<name>-<idx>" for the others.
func ShardName(bundleName string, idx int) string {
	if idx == 0 {
		return bundleName
	}
	return bundleName + "-" + strconv.Itoa(idx)
}

// shardIndex is a bundle's shard index, from apiv1.LabelShard (0 when
// missing: a bundle written before sharding is shard 0).
func shardIndex(b *apiv1.WorkerBundle) int {
	n, err := strconv.Atoi(b.Labels[apiv1.LabelShard])
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// accountBundles returns the account's bundles under its current bundle
// name, and stale ones: those it controls under another name (the account's
// workerBundleName changed).
func (r *AccountReconciler) accountBundles(ctx context.Context, acct *apiv1.WorkerAccount) (current, stale []*apiv1.WorkerBundle, err error) {
	var list apiv1.WorkerBundleList
	if err := r.Client.List(ctx, &list, client.InNamespace(acct.Namespace)); err != nil {
		return nil, nil, err
	}
	base := BundleName(acct)
	for i := range list.Items {
		b := &list.Items[i]
		if !ownedBy(b, acct) || b.DeletionTimestamp != nil {
			continue
		}
		if b.Name == ShardName(base, shardIndex(b)) {
			current = append(current, b)
		} else {
			stale = append(stale, b)
		}
	}
	return current, stale, nil
}

// bundlesReady reports whether every bundle's status is about its current
// spec and says Ready.
func bundlesReady(bundles map[int]*apiv1.WorkerBundle) (bool, string, string) {
	workers := 0
	for _, idx := range slices.Sorted(maps.Keys(bundles)) {
		b := bundles[idx]
		if ok, reason, msg := bundleReady(b); !ok {
			return false, reason, msg
		}
		workers += len(b.Spec.Workers)
	}
	if len(bundles) == 1 {
		for _, b := range bundles {
			return bundleReady(b)
		}
	}
	return true, "BundleReady", fmt.Sprintf("%d WorkerBundles serve %d workers", len(bundles), workers)
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

// desired computes the account's bundle specs: for every release of the
// account (and matching workerReleaseSelector, when set), the versions of
// its active deployment and the script's latest version. Each script stays
// in the shard an existing bundle has it in; a new script goes to the
// lowest shard with fewer than Options.WorkersPerBundle scripts. Ports are
// kept from the existing bundle of the shard, new ones from
// builder.FirstWorkerPort up.
func (r *AccountReconciler) desired(ctx context.Context, acct *apiv1.WorkerAccount, existing []*apiv1.WorkerBundle) (*desiredBundles, error) {
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

	d := &desiredBundles{specs: map[int]apiv1.WorkerBundleSpec{}, shardOf: map[string]int{}, assetsOnly: map[string]bool{}}
	workers := map[string][]apiv1.BundleWorker{} // by script
	var scripts []string
	add := func(v *apiv1.WorkerVersion) {
		if len(v.Spec.Modules) == 0 {
			d.assetsOnly[v.Spec.VersionID] = true
			return
		}
		for _, w := range workers[v.Spec.ScriptName] {
			if w.VersionID == v.Spec.VersionID {
				return
			}
		}
		workers[v.Spec.ScriptName] = append(workers[v.Spec.ScriptName], apiv1.BundleWorker{ScriptName: v.Spec.ScriptName, VersionID: v.Spec.VersionID, VersionName: v.Name})
	}
	slices.SortFunc(rels.Items, func(a, b apiv1.WorkerRelease) int {
		return cmp.Or(cmp.Compare(a.Spec.ScriptName, b.Spec.ScriptName), cmp.Compare(a.Name, b.Name))
	})
	seen := map[string]bool{}
	active := map[string]*apiv1.WorkerVersion{} // by script: what its service bindings reach
	for i := range rels.Items {
		rel := &rels.Items[i]
		if rel.Spec.AccountID != acct.Name || rel.DeletionTimestamp != nil || !sel.Matches(labels.Set(rel.Labels)) {
			continue
		}
		script := rel.Spec.ScriptName
		if seen[script] {
			d.problems = append(d.problems, fmt.Sprintf("WorkerRelease %s: script %s already has a release; ignored", rel.Name, script))
			continue
		}
		seen[script] = true
		scripts = append(scripts, script)
		d.releases = append(d.releases, rel)
		share := int32(-1)
		if dep := rel.ActiveDeployment(); dep != nil {
			for _, vt := range dep.Versions {
				v := byID[vt.VersionID]
				if v == nil || v.Spec.ScriptName != script {
					d.problems = append(d.problems, fmt.Sprintf("deployment %s of %s names version %s, which does not exist", dep.ID, script, vt.VersionID))
					continue
				}
				add(v)
				if vt.Percentage > share {
					active[script], share = v, vt.Percentage
				}
			}
		}
		if v := latest[script]; v != nil {
			add(v)
			if active[script] == nil {
				active[script] = v
			}
		}
	}

	// A script with nothing to run (only assets-only versions) takes no
	// place in a shard.
	scripts = slices.DeleteFunc(scripts, func(s string) bool { return len(workers[s]) == 0 })

	// Placement: a script keeps its shard; new ones fill the lowest shard
	// with room.
	placed, ports := map[string]int{}, map[int]map[string]int32{}
	for _, b := range existing {
		idx := shardIndex(b)
		ports[idx] = map[string]int32{}
		for _, w := range b.Spec.Workers {
			ports[idx][w.VersionID] = w.Port
			if _, ok := placed[w.ScriptName]; !ok && !w.Copy {
				placed[w.ScriptName] = idx
			}
		}
	}
	// A script that hosts Durable Objects stays in the bundle that hosts
	// them, whatever the order of existing (a lingering older bundle may
	// list it too): its objects must never have two hosts.
	for _, b := range existing {
		for _, w := range b.Spec.Workers {
			if w.DurableObjects {
				placed[w.ScriptName] = shardIndex(b)
			}
		}
	}
	// A script that hosts Durable Objects has a shard of its own: its pod
	// is replaced, not rolled, on every change (one live instance per
	// object), which must not interrupt other scripts.
	hostsObjects := func(s string) bool { return hasClasses(active[s]) }
	count := map[int]int{}
	for _, s := range scripts {
		if idx, ok := placed[s]; ok {
			count[idx]++
		}
	}
	own := map[int]bool{} // shards of a script that hosts Durable Objects
	for _, s := range scripts {
		idx, ok := placed[s]
		switch {
		case !ok:
		case !hostsObjects(s):
			d.shardOf[s] = idx
		case count[idx] == 1:
			d.shardOf[s], own[idx] = idx, true
		default:
			count[idx]-- // it moves to a shard of its own
		}
	}
	per := max(r.Options.WorkersPerBundle, 1)
	next := 0
	for _, s := range scripts {
		if _, ok := d.shardOf[s]; ok {
			continue
		}
		if hostsObjects(s) {
			idx := 0
			for count[idx] > 0 || own[idx] {
				idx++
			}
			d.shardOf[s], own[idx] = idx, true
			count[idx]++
			continue
		}
		for count[next] >= per || own[next] {
			next++
		}
		d.shardOf[s] = next
		count[next]++
	}

	// One spec per shard in use, and shard 0 always.
	d.specs[0] = apiv1.WorkerBundleSpec{AccountID: acct.Name, PodTemplate: *acct.Spec.PodTemplate.DeepCopy()}
	for _, s := range scripts {
		idx := d.shardOf[s]
		spec, ok := d.specs[idx]
		if !ok {
			spec = apiv1.WorkerBundleSpec{AccountID: acct.Name, PodTemplate: *acct.Spec.PodTemplate.DeepCopy()}
		}
		spec.Workers = append(spec.Workers, workers[s]...)
		d.specs[idx] = spec
	}
	byShard := map[int]*apiv1.WorkerBundle{}
	for _, b := range existing {
		byShard[shardIndex(b)] = b
	}
	for idx, spec := range d.specs {
		spec.Workers = withServiceTargets(spec.Workers, idx, d.shardOf, active, byID)
		for i, w := range spec.Workers {
			spec.Workers[i].DurableObjects = !w.Copy && hostsObjects(w.ScriptName) && w.VersionID == active[w.ScriptName].Spec.VersionID
		}
		spec.Normalize()
		assignPorts(spec.Workers, ports[idx])
		if until, ok := r.linger(byShard[idx], spec, byID); ok {
			spec.Workers = slices.Clone(byShard[idx].Spec.Workers)
			if d.prune.IsZero() || until.Before(d.prune) {
				d.prune = until
			}
		}
		d.specs[idx] = spec
	}
	return d, nil
}

// linger reports whether the bundle b keeps its workers instead of spec's
// (Options.Linger), and until when: spec only removes workers from b (same
// pod template, every other worker on the same port), the removed ones
// still have their WorkerVersion (a later build can include them), and b's
// workers changed less than Linger ago.
func (r *AccountReconciler) linger(b *apiv1.WorkerBundle, spec apiv1.WorkerBundleSpec, byID map[string]*apiv1.WorkerVersion) (time.Time, bool) {
	if b == nil || r.Options.Linger <= 0 || len(b.Spec.Workers) <= len(spec.Workers) ||
		!equality.Semantic.DeepEqual(b.Spec.PodTemplate, spec.PodTemplate) {
		return time.Time{}, false
	}
	changed, err := time.Parse(time.RFC3339Nano, b.Annotations[apiv1.AnnotationWorkersChanged])
	if err != nil {
		return time.Time{}, false
	}
	until := changed.Add(r.Options.Linger)
	if !r.now().Before(until) {
		return time.Time{}, false
	}
	have := map[string]apiv1.BundleWorker{}
	for _, w := range b.Spec.Workers {
		if v := byID[w.VersionID]; v == nil || v.Spec.ScriptName != w.ScriptName {
			return time.Time{}, false // its version is gone: no build could include it
		}
		have[w.VersionID] = w
	}
	for _, w := range spec.Workers {
		if h, ok := have[w.VersionID]; !ok || h.Port != w.Port || h.ScriptName != w.ScriptName || h.VersionName != w.VersionName ||
			h.ServiceTarget != w.ServiceTarget || h.Copy != w.Copy || h.DurableObjects != w.DurableObjects {
			return time.Time{}, false
		}
	}
	return until, true
}

// withServiceTargets marks, in the workers of shard idx, the version each
// service binding reaches (its script's active version), and adds a copy of
// those whose script lives in another shard, with the targets of their own
// bindings in turn: a service binding is a call inside one workerd process,
// so fetch and RPC (WorkerEntrypoint methods) both work. A binding to a
// script without a release is left to the build, which reports it, and so
// is one to a script in another shard that hosts Durable Objects: those
// run in its own pod only.
func withServiceTargets(workers []apiv1.BundleWorker, idx int, shardOf map[string]int, active, byID map[string]*apiv1.WorkerVersion) []apiv1.BundleWorker {
	for i := 0; i < len(workers); i++ {
		v := byID[workers[i].VersionID]
		if v == nil {
			continue
		}
		for _, b := range v.Spec.Bindings {
			t := active[b.Service]
			if b.Type != apiv1.BindingService || t == nil {
				continue
			}
			j := slices.IndexFunc(workers, func(w apiv1.BundleWorker) bool { return w.VersionID == t.Spec.VersionID })
			if j < 0 && hasClasses(t) {
				continue
			}
			if j < 0 {
				home, placed := shardOf[t.Spec.ScriptName]
				workers = append(workers, apiv1.BundleWorker{ScriptName: t.Spec.ScriptName, VersionID: t.Spec.VersionID,
					VersionName: t.Name, Copy: !placed || home != idx})
				j = len(workers) - 1
			}
			workers[j].ServiceTarget = true
		}
	}
	return workers
}

// hasClasses reports whether v defines Durable Object classes.
func hasClasses(v *apiv1.WorkerVersion) bool {
	return v != nil && v.Spec.DurableObjects != nil && len(v.Spec.DurableObjects.Classes) > 0
}

// assignPorts keeps each worker's port from old while it is valid and
// unique, and gives the others the lowest free port from
// builder.FirstWorkerPort up.
func assignPorts(workers []apiv1.BundleWorker, old map[string]int32) {
	used := map[int32]bool{}
	for i := range workers {
		w := &workers[i]
		w.Port = 0
		if p := old[w.VersionID]; p >= builder.FirstWorkerPort && p <= builder.LastWorkerPort && !used[p] {
			w.Port, used[p] = p, true
		}
	}
	next := int32(builder.FirstWorkerPort)
	for i := range workers {
		w := &workers[i]
		if w.Port != 0 {
			continue
		}
		for used[next] {
			next++
		}
		w.Port, used[next] = next, true
	}
}

// host is the request host of a script of the account.
func (r *AccountReconciler) host(script string, acct *apiv1.WorkerAccount) string {
	return script + "." + Subdomain(acct) + "." + r.Options.HostSuffix
}

// deleteBundles deletes bundles the account no longer needs: shards left
// without scripts, and bundles under a former workerBundleName.
func (r *AccountReconciler) deleteBundles(ctx context.Context, acct *apiv1.WorkerAccount, bundles []*apiv1.WorkerBundle) error {
	for _, b := range bundles {
		if err := r.Client.Delete(ctx, b); client.IgnoreNotFound(err) != nil {
			return err
		}
		r.Recorder.Eventf(acct, "Normal", "BundleDeleted", "deleted WorkerBundle %s (no longer used; the account's bundle is %s)", b.Name, BundleName(acct))
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
// served by the bundle of its script's shard: Ready, activeDeploymentID
// (lagging during a rollout) and URL.
func (r *AccountReconciler) releaseStatuses(ctx context.Context, acct *apiv1.WorkerAccount, bundles map[int]*apiv1.WorkerBundle, want *desiredBundles) error {
	for _, rel := range want.releases {
		bundle := bundles[want.shardOf[rel.Spec.ScriptName]]
		bReady, _, bMsg := bundleReady(bundle)
		st := rel.Status.DeepCopy()
		st.ObservedGeneration = rel.Generation
		if r.Options.GatewayPort > 0 {
			st.URL = fmt.Sprintf("http://%s:%d", r.host(rel.Spec.ScriptName, acct), r.Options.GatewayPort)
		}
		dep := rel.ActiveDeployment()
		var bad []string
		if dep != nil {
			for _, vt := range dep.Versions {
				for _, f := range bundle.Status.FailedWorkers {
					if f.VersionID == vt.VersionID {
						bad = append(bad, fmt.Sprintf("version %s failed to start: %s", vt.VersionID, f.Message))
					}
				}
			}
		}
		switch {
		case dep == nil:
			setCondition(&st.Conditions, rel.Generation, apiv1.ConditionReady, false, "NotDeployed", "the script has no deployment")
		case want.onlyAssets(dep):
			st.ActiveDeploymentID = dep.ID
			setCondition(&st.Conditions, rel.Generation, apiv1.ConditionReady, true, "ServingAssets", fmt.Sprintf("deployment %s is static assets only: the gateway serves them", dep.ID))
		case len(bad) > 0:
			setCondition(&st.Conditions, rel.Generation, apiv1.ConditionReady, false, "VersionFailed", strings.Join(bad, "; "))
		case bReady:
			st.ActiveDeploymentID = dep.ID
			setCondition(&st.Conditions, rel.Generation, apiv1.ConditionReady, true, "Serving", fmt.Sprintf("deployment %s is served by WorkerBundle %s", dep.ID, bundle.Name))
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
