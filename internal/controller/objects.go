package controller

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"

	corev1 "k8s.io/api/core/v1"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/builder"
)

// ObjectStorage gives the bundle pods that host Durable Objects the
// storage of their account's objects.
type ObjectStorage interface {
	// Volume returns the volume of the account's Durable Object storage,
	// ready for workerd (user NobodyID) to write.
	Volume(accountID string) (corev1.VolumeSource, error)
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
func (h HostObjectStorage) Volume(accountID string) (corev1.VolumeSource, error) {
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
}
