// Package localpath provisions PersistentVolumes as directories of the
// node, as k3s's local-path provisioner does: the default StorageClass
// "local-path" binds each claim, once a pod that uses it is scheduled
// (WaitForFirstConsumer), to a hostPath volume in <data dir>/storage, and
// removes the directory when the claim is deleted (reclaim policy Delete).
// It runs in the daemon, on a controller-runtime manager of its own that
// caches only claims and volumes.
package localpath

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/octohq/octo/internal/config"
)

const (
	// StorageClass is the name of the default StorageClass.
	StorageClass = "local-path"
	// Provisioner is the provisioner name the StorageClass and its volumes
	// carry.
	Provisioner = "octo.local/local-path"

	// annSelectedNode is set on a claim by the scheduler: the node of the
	// first pod that uses it.
	annSelectedNode = "volume.kubernetes.io/selected-node"
	// annStorageProvisioner is set on a claim by the PV controller: who
	// provisions it.
	annStorageProvisioner = "volume.kubernetes.io/storage-provisioner"
	// annProvisionedBy marks the volumes this package made.
	annProvisionedBy = "pv.kubernetes.io/provisioned-by"
	// annDefaultClass makes a StorageClass the default.
	annDefaultClass = "storageclass.kubernetes.io/is-default-class"
)

// Volumes provisions and deletes the node's local volumes. Its Reconcile
// takes claims and volumes alike: a request with a namespace names a
// claim, one without a volume.
type Volumes struct {
	Client client.Client
	// Dir is where the volumes' directories are made.
	Dir string
	// Node is the node's name: the volumes' node affinity.
	Node string
	Log  *slog.Logger

	mu sync.Mutex
	// refused holds the claims already told why they get no volume (the
	// UID of each, by name): one event each, not one per reconcile. A
	// claim leaves it when it is gone.
	refused map[client.ObjectKey]types.UID
}

// DirOf is the directory of a claim's volume: pvc-<uid>_<namespace>_<name>,
// as k3s names them.
func (v *Volumes) DirOf(pvc *corev1.PersistentVolumeClaim) string {
	return filepath.Join(v.Dir, "pvc-"+string(pvc.UID)+"_"+pvc.Namespace+"_"+pvc.Name)
}

// Reconcile implements reconcile.Reconciler.
func (v *Volumes) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if req.Namespace == "" {
		return reconcile.Result{}, v.reconcileVolume(ctx, req.Name)
	}
	return reconcile.Result{}, v.reconcileClaim(ctx, req.NamespacedName)
}

// reconcileClaim makes the volume of a pending claim of this provisioner
// once its first pod is scheduled on the node.
func (v *Volumes) reconcileClaim(ctx context.Context, key client.ObjectKey) error {
	var pvc corev1.PersistentVolumeClaim
	if err := v.Client.Get(ctx, key, &pvc); err != nil {
		if apierrors.IsNotFound(err) {
			v.mu.Lock()
			delete(v.refused, key)
			v.mu.Unlock()
			return nil
		}
		return err
	}
	if pvc.Spec.VolumeName != "" || pvc.DeletionTimestamp != nil || pvc.Annotations[annStorageProvisioner] != Provisioner ||
		pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != StorageClass {
		return nil // bound, going, or not of this provisioner's one class
	}
	if pvc.Annotations[annSelectedNode] != v.Node {
		return nil // no pod uses it yet, or it went to another node
	}
	if pvc.Spec.VolumeMode != nil && *pvc.Spec.VolumeMode == corev1.PersistentVolumeBlock {
		return v.refuse(ctx, &pvc, "local-path volumes are directories: volumeMode Block is not supported")
	}
	dir := v.DirOf(&pvc)
	_, statErr := os.Stat(dir)
	made := os.IsNotExist(statErr)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return fmt.Errorf("volume of %s: %w", key, err)
	}
	// Any user of the pod may write it, as with k3s's local-path volumes.
	if err := os.Chmod(dir, 0o777); err != nil {
		return fmt.Errorf("volume of %s: %w", key, err)
	}
	pathType := corev1.HostPathDirectoryOrCreate
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-" + string(pvc.UID), Annotations: map[string]string{annProvisionedBy: Provisioner}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              StorageClass,
			ClaimRef: &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID, ResourceVersion: pvc.ResourceVersion},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &pathType}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{v.Node}}},
			}}}},
		},
	}
	if err := v.Client.Create(ctx, pv); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		// No volume names the directory: it goes, so that a claim deleted
		// before the retry leaves nothing behind.
		if made {
			if rmErr := os.Remove(dir); rmErr != nil {
				v.Log.Warn("remove the directory of a volume not created", "dir", dir, "err", rmErr)
			}
		}
		return fmt.Errorf("volume of %s: %w", key, err)
	}
	v.Log.Info("provisioned", "claim", key.String(), "volume", pv.Name, "dir", dir)
	return nil
}

// reconcileVolume removes a released volume of this provisioner: its
// directory, then the PersistentVolume.
func (v *Volumes) reconcileVolume(ctx context.Context, name string) error {
	var pv corev1.PersistentVolume
	if err := v.Client.Get(ctx, client.ObjectKey{Name: name}, &pv); err != nil {
		return client.IgnoreNotFound(err)
	}
	if pv.Annotations[annProvisionedBy] != Provisioner || pv.Status.Phase != corev1.VolumeReleased ||
		pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.DeletionTimestamp != nil {
		return nil
	}
	if hp := pv.Spec.HostPath; hp != nil {
		dir := filepath.Clean(hp.Path)
		if filepath.Dir(dir) != filepath.Clean(v.Dir) || !strings.HasPrefix(filepath.Base(dir), "pvc-") {
			return fmt.Errorf("volume %s: %s is not a volume directory of %s; left in place", name, dir, v.Dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("volume %s: %w", name, err)
		}
	}
	if err := v.Client.Delete(ctx, &pv); err != nil {
		return client.IgnoreNotFound(err)
	}
	v.Log.Info("deleted", "volume", name)
	return nil
}

// refuse records once, as a warning event on the claim, why it gets no
// volume.
func (v *Volumes) refuse(ctx context.Context, pvc *corev1.PersistentVolumeClaim, msg string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	key := client.ObjectKeyFromObject(pvc)
	if v.refused[key] == pvc.UID {
		return nil
	}
	if err := v.warn(ctx, pvc, "ProvisioningFailed", msg); err != nil {
		return err
	}
	if v.refused == nil {
		v.refused = map[client.ObjectKey]types.UID{}
	}
	v.refused[key] = pvc.UID
	return nil
}

// warn records a warning event on the claim.
func (v *Volumes) warn(ctx context.Context, pvc *corev1.PersistentVolumeClaim, reason, msg string) error {
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: pvc.Name + ".", Namespace: pvc.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
		Reason:         reason, Message: msg, Type: corev1.EventTypeWarning, Source: corev1.EventSource{Component: Provisioner},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	return v.Client.Create(ctx, ev)
}

// Class is the provisioner's StorageClass, the cluster's default.
func Class() *storagev1.StorageClass {
	reclaim := corev1.PersistentVolumeReclaimDelete
	binding := storagev1.VolumeBindingWaitForFirstConsumer
	return &storagev1.StorageClass{
		TypeMeta:          metav1.TypeMeta{APIVersion: "storage.k8s.io/v1", Kind: "StorageClass"},
		ObjectMeta:        metav1.ObjectMeta{Name: StorageClass, Annotations: map[string]string{annDefaultClass: "true"}},
		Provisioner:       Provisioner,
		ReclaimPolicy:     &reclaim,
		VolumeBindingMode: &binding,
	}
}

// Component runs Volumes in the daemon (embed.Component).
type Component struct {
	cfg    config.Config
	log    *slog.Logger
	cancel context.CancelFunc
	// done is closed when the manager has returned, with err.
	done chan struct{}
	err  error
	mgr  ctrl.Manager
}

// New returns the provisioner of cfg's node, with its volumes in
// <data dir>/storage.
func New(cfg config.Config, log *slog.Logger) *Component {
	return &Component{cfg: cfg, log: log}
}

// Name implements embed.Component.
func (c *Component) Name() string { return "local-path" }

// Start applies the StorageClass and starts the controller.
func (c *Component) Start(ctx context.Context) error {
	rc, err := clientcmd.BuildConfigFromFlags("", c.cfg.KubeconfigPath())
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	return c.start(ctx, rc, c.cfg.Path("storage"), c.cfg.NodeName)
}

func (c *Component) start(ctx context.Context, rc *rest.Config, dir, node string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	grace := 10 * time.Second
	mgr, err := ctrl.NewManager(rc, ctrl.Options{
		Scheme: scheme, Logger: logr.FromSlogHandler(c.log.Handler()),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		GracefulShutdownTimeout: &grace,
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	class, err := json.Marshal(Class())
	if err != nil {
		return err
	}
	// A server-side apply through the manager's uncached writer.
	if err := mgr.GetClient().Patch(ctx, Class(), client.RawPatch(types.ApplyPatchType, class),
		client.FieldOwner("octo-local-path"), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply StorageClass %s: %w", StorageClass, err)
	}
	v := &Volumes{Client: mgr.GetClient(), Dir: dir, Node: node, Log: c.log}
	err = builder.ControllerManagedBy(mgr).Named("local-path").
		For(&corev1.PersistentVolumeClaim{}).
		Watches(&corev1.PersistentVolume{}, &handler.EnqueueRequestForObject{}).
		Complete(v)
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	ctx, c.cancel = context.WithCancel(ctx)
	c.mgr, c.done = mgr, make(chan struct{})
	go func() {
		defer close(c.done)
		c.err = mgr.Start(ctx)
	}()
	return nil
}

// Ready waits for the controller's caches, or for the manager to fail.
func (c *Component) Ready(ctx context.Context) error {
	synced := make(chan bool, 1)
	go func() { synced <- c.mgr.GetCache().WaitForCacheSync(ctx) }()
	select {
	case ok := <-synced:
		if !ok {
			return fmt.Errorf("caches did not sync: %w", context.Cause(ctx))
		}
		return nil
	case <-c.done:
		return fmt.Errorf("manager exited: %w", c.err)
	}
}

// Stop stops the controller and waits for it, at most until ctx ends.
func (c *Component) Stop(ctx context.Context) error {
	if c.cancel == nil {
		return nil
	}
	c.cancel()
	select {
	case <-c.done:
	case <-ctx.Done():
		return fmt.Errorf("stop: %w", context.Cause(ctx))
	}
	if c.err != nil && !errors.Is(c.err, context.Canceled) {
		return c.err
	}
	return nil
}
