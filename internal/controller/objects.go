package controller

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/builder"
)

// ObjectStorage gives the bundle pods that host Durable Objects the
// storage of their account's objects.
type ObjectStorage interface {
	// Volume returns the volume of the account's Durable Object storage in
	// namespace (the bundle's), ready for workerd (user NobodyID) to write.
	Volume(ctx context.Context, namespace, accountID string) (corev1.VolumeSource, error)
}

// HostObjectStorage keeps each account's Durable Objects in a directory of
// the node, <Dir>/<account>: the embedded cluster's single node, where the
// data outlives pods, rollouts and `octo down`/`octo up`.
type HostObjectStorage struct {
	// Dir is the parent of the accounts' directories, e.g.
	// <data dir>/durable-objects.
	Dir string
}

// Volume creates <Dir>/<account> (0700, owned by NobodyID) when missing and
// returns it as a hostPath volume.
func (h HostObjectStorage) Volume(_ context.Context, _, accountID string) (corev1.VolumeSource, error) {
	if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		return corev1.VolumeSource{}, fmt.Errorf("durable object storage: %w", err)
	}
	dir := filepath.Join(h.Dir, accountID)
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return corev1.VolumeSource{}, fmt.Errorf("durable object storage: %w", err)
	}
	if err := os.Chown(dir, NobodyID, NobodyID); err != nil {
		return corev1.VolumeSource{}, fmt.Errorf("durable object storage: %w", err)
	}
	kind := corev1.HostPathDirectory
	return corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &kind}}, nil
}

// ClaimObjectStorage keeps each account's Durable Objects on a
// PersistentVolumeClaim of its own, octo-durable-objects-<account>, in the
// bundle's namespace: the answer on a cluster of many nodes, where the claim
// follows the one pod (Recreate) that hosts the account's objects. The claim
// is made on first use and kept: deleting it deletes the objects.
type ClaimObjectStorage struct {
	// Client creates the claims.
	Client client.Client
	// StorageClass of the claims; empty: the cluster's default class.
	StorageClass string
	// Size requested per account; zero: DefaultObjectClaimSize.
	Size resource.Quantity
}

// DefaultObjectClaimSize is the size of an account's Durable Object claim
// unless ClaimObjectStorage.Size says otherwise.
var DefaultObjectClaimSize = resource.MustParse("1Gi")

// ObjectClaimName is the claim of an account's Durable Objects.
func ObjectClaimName(accountID string) string { return "octo-durable-objects-" + accountID }

// Volume creates the account's claim when it is missing and returns it as
// the pod's volume.
func (c ClaimObjectStorage) Volume(ctx context.Context, namespace, accountID string) (corev1.VolumeSource, error) {
	size := c.Size
	if size.IsZero() {
		size = DefaultObjectClaimSize
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: ObjectClaimName(accountID), Namespace: namespace,
			Labels: map[string]string{apiv1.LabelAccount: accountID}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
	if c.StorageClass != "" {
		pvc.Spec.StorageClassName = &c.StorageClass
	}
	if err := c.Client.Create(ctx, pvc); err != nil && !apierrors.IsAlreadyExists(err) {
		return corev1.VolumeSource{}, fmt.Errorf("durable object storage: create claim %s/%s: %w", namespace, pvc.Name, err)
	}
	return corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pvc.Name}}, nil
}

// objectsVolume is the name of the pod volume of Durable Object storage.
const objectsVolume = "durable-objects"

// hostsObjects reports whether the image of build jb hosts Durable Object
// classes (a BuildInput marked DurableObjects).
func hostsObjects(jb *apiv1.JobBuilder) bool { return objectsScript(jb) != "" }

// objectsScript is the script whose Durable Object classes the image of jb
// hosts, or "".
func objectsScript(jb *apiv1.JobBuilder) string {
	i := slices.IndexFunc(jb.Spec.Inputs, func(in apiv1.BuildInput) bool { return in.DurableObjects })
	if i < 0 {
		return ""
	}
	return jb.Spec.Inputs[i].ScriptName
}

// ObjectsLockEnv names, in a pod that hosts Durable Objects, the lock file
// octo-launch holds for as long as workerd runs (cmd/octo-launch): a pod
// replacing another (a deleted pod, a killed one whose process still ends)
// waits for it, so no object ever runs twice.
const ObjectsLockEnv = "OCTO_OBJECTS_LOCK"

// withObjects makes dep's pods host the Durable Objects of script on
// storage, mounted at builder.DurableObjectsDir, behind the script's lock
// there (ObjectsLockEnv).
func withObjects(dep *corev1.PodTemplateSpec, storage corev1.VolumeSource, script string) {
	dep.Spec.Volumes = append(dep.Spec.Volumes, corev1.Volume{Name: objectsVolume, VolumeSource: storage})
	for i := range dep.Spec.Containers {
		c := &dep.Spec.Containers[i]
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: objectsVolume, MountPath: builder.DurableObjectsDir})
		c.Env = append(c.Env, corev1.EnvVar{Name: ObjectsLockEnv, Value: path.Join(builder.DurableObjectsDir, ".lock-"+script)})
	}
	// A claim's volume may come up owned by root: workerd's group may
	// write it.
	if storage.PersistentVolumeClaim != nil {
		if dep.Spec.SecurityContext == nil {
			dep.Spec.SecurityContext = &corev1.PodSecurityContext{}
		}
		dep.Spec.SecurityContext.FSGroup = ptr.To(int64(NobodyID))
	}
}
