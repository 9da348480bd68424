package controller

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/builder"
)

// fakeObjectStorage hands out an emptyDir and records the accounts asked.
type fakeObjectStorage struct{ accounts []string }

func (f *fakeObjectStorage) Volume(_ context.Context, _, accountID string) (corev1.VolumeSource, error) {
	f.accounts = append(f.accounts, accountID)
	return corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}, nil
}

// deployObjects stores version n of script with the Durable Object class
// Counter, and a release serving it.
func (e *env) deployObjects(script string, n int) {
	e.t.Helper()
	id := uuidN("0b0b0b0b", n)
	v := workerVersion(acct, script, int64(n), id)
	v.Name = script + "-objects"
	v.Spec.DurableObjects = &apiv1.VersionDurableObjects{MigrationTag: "v1",
		Classes: []apiv1.DurableObjectClass{{ClassName: "Counter", NamespaceID: "0123456789abcdef0123456789abcdef", SQLite: true}}}
	e.create(v)
	var rel apiv1.WorkerRelease
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: script}, &rel); err == nil {
		rel.Spec.PushDeployment(deployment(uuidN("eeeeeeee", n), traffic(id, 100)))
		e.update(&rel)
		return
	}
	e.create(release(acct, script, deployment(uuidN("eeeeeeee", n), traffic(id, 100))))
}

// A script with Durable Object classes runs alone in its bundle, whose
// active version hosts them; its Deployment keeps one pod on the account's
// storage and replaces it (Recreate). A service binding from another bundle
// gets no copy of it (a second host), and a script that gains classes moves
// out of a shared bundle.
func TestDurableObjectsBundle(t *testing.T) {
	e := newEnv(t, account(acct, "b"))
	e.account.Options.WorkersPerBundle = 4
	e.account.Options.Linger = -1 // a removal rolls out at once
	storage := &fakeObjectStorage{}
	e.bundle.Options.ObjectStorage = storage
	e.deployScript("a", 1)
	e.deployScript("c", 1)
	e.deployObjects("o", 1)
	// "p" binds "o" by a service binding.
	pv := workerVersion(acct, "p", 1, uuidN("0c0c0c0c", 1), apiv1.WorkerBinding{Name: "O", Type: apiv1.BindingService, Service: "o"})
	pv.Name = "p-v1"
	e.create(pv)
	e.create(release(acct, "p", deployment(uuidN("dddddddd", 9), traffic(pv.Spec.VersionID, 100))))
	e.reconcileAccount(acct)

	var shared, own apiv1.WorkerBundle
	e.get("b", &shared)
	e.get("b-1", &own)
	if got := scriptsOf(&shared); !slices.Equal(got, []string{"a", "c", "p"}) {
		t.Errorf("bundle b runs %v, want a, c, p (and no copy of o)", got)
	}
	if got := scriptsOf(&own); !slices.Equal(got, []string{"o"}) || !own.Spec.Workers[0].DurableObjects {
		t.Fatalf("bundle b-1 runs %+v, want o alone, hosting its classes", own.Spec.Workers)
	}

	e.buildAndRollOut("b-1")
	var dep appsv1.Deployment
	e.get(WorkloadName("b-1"), &dep)
	if dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || *dep.Spec.Replicas != 1 {
		t.Errorf("strategy %+v, %d replicas; want Recreate, 1", dep.Spec.Strategy, *dep.Spec.Replicas)
	}
	mounted := slices.ContainsFunc(dep.Spec.Template.Spec.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == objectsVolume && m.MountPath == builder.DurableObjectsDir
	})
	if env := dep.Spec.Template.Spec.Containers[0].Env; !slices.Contains(env, corev1.EnvVar{Name: ObjectsLockEnv, Value: builder.DurableObjectsDir + "/.lock-o"}) {
		t.Errorf("env %+v lacks the objects lock of o", env)
	}
	if !mounted || len(storage.accounts) == 0 || slices.ContainsFunc(storage.accounts, func(a string) bool { return a != acct }) {
		t.Errorf("mounts %+v, storage asked for %v", dep.Spec.Template.Spec.Containers[0].VolumeMounts, storage.accounts)
	}
	e.buildAndRollOut("b")
	e.get(WorkloadName("b"), &dep)
	if dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || len(dep.Spec.Template.Spec.Volumes) != 1 {
		t.Errorf("a bundle without Durable Objects: strategy %s, volumes %+v", dep.Spec.Strategy.Type, dep.Spec.Template.Spec.Volumes)
	}

	// c gains classes: it leaves the shared bundle for one of its own.
	e.deployObjects("c", 2)
	e.reconcileAccount(acct)
	e.get("b", &shared)
	var moved apiv1.WorkerBundle
	e.get("b-2", &moved)
	if got := scriptsOf(&shared); !slices.Equal(got, []string{"a", "p"}) {
		t.Errorf("after c gained classes bundle b runs %v, want a, p", got)
	}
	if got := scriptsOf(&moved); !slices.Equal(got, []string{"c"}) || !moved.Spec.Workers[0].DurableObjects {
		t.Errorf("bundle b-2 runs %+v, want c hosting its classes", moved.Spec.Workers)
	}
}

// HostObjectStorage makes the account's directory for workerd's user.
func TestHostObjectStorage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	dir := filepath.Join(t.TempDir(), "durable-objects")
	vs, err := HostObjectStorage{Dir: dir}.Volume(t.Context(), "ns", "acct1")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "acct1"))
	if err != nil || vs.HostPath == nil || vs.HostPath.Path != filepath.Join(dir, "acct1") || fi.Mode().Perm() != 0o700 {
		t.Fatalf("volume %+v, dir %v %v", vs, fi, err)
	}
	if _, err := (HostObjectStorage{Dir: dir}).Volume(t.Context(), "ns", "acct1"); err != nil {
		t.Errorf("a second call: %v", err)
	}
}

// On a cluster, an account's Durable Objects get a claim of their own, made
// once, in the bundle's namespace; workerd's group may write the volume.
func TestClaimObjectStorage(t *testing.T) {
	e := newEnv(t)
	s := ClaimObjectStorage{Client: e.c, StorageClass: "fast"}
	for range 2 {
		vs, err := s.Volume(t.Context(), "ns1", "acct1")
		if err != nil {
			t.Fatal(err)
		}
		if vs.PersistentVolumeClaim == nil || vs.PersistentVolumeClaim.ClaimName != ObjectClaimName("acct1") {
			t.Fatalf("volume = %+v", vs)
		}
	}
	var pvc corev1.PersistentVolumeClaim
	if err := e.c.Get(t.Context(), client.ObjectKey{Namespace: "ns1", Name: ObjectClaimName("acct1")}, &pvc); err != nil {
		t.Fatal(err)
	}
	if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "fast" ||
		pvc.Spec.Resources.Requests.Storage().Cmp(DefaultObjectClaimSize) != 0 || pvc.Labels[apiv1.LabelAccount] != "acct1" {
		t.Errorf("claim = %+v", pvc)
	}
	var tpl corev1.PodTemplateSpec
	tpl.Spec.Containers = []corev1.Container{{Name: "workerd"}}
	vs, _ := s.Volume(t.Context(), "ns1", "acct1")
	withObjects(&tpl, vs, "counter")
	if sc := tpl.Spec.SecurityContext; sc == nil || sc.FSGroup == nil || *sc.FSGroup != NobodyID {
		t.Errorf("pod security context = %+v, want fsGroup %d", sc, NobodyID)
	}
}
