package localpath

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

func claim(name string, ann map[string]string) *corev1.PersistentVolumeClaim {
	class := StorageClass
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "app", UID: types.UID("uid-" + name), Annotations: ann},
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: &class, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
	}
}

// TestProvisionAndDelete: a claim of the class whose pod is scheduled on
// the node gets a directory and a bound-to-be hostPath volume; a released
// volume loses both; claims of others or not yet scheduled are left alone.
func TestProvisionAndDelete(t *testing.T) {
	ctx := context.Background()
	ours := map[string]string{annStorageProvisioner: Provisioner, annSelectedNode: "node1"}
	otherClass := claim("other-class", ours)
	retain := "local-path-retain"
	otherClass.Spec.StorageClassName = &retain
	c := fake.NewClientBuilder().WithObjects(
		claim("data", ours),
		claim("unscheduled", map[string]string{annStorageProvisioner: Provisioner}),
		claim("theirs", map[string]string{annStorageProvisioner: "other.io/x", annSelectedNode: "node1"}),
		otherClass,
	).Build()
	v := &Volumes{Client: c, Dir: t.TempDir(), Node: "node1", Log: slog.New(slog.DiscardHandler)}
	for _, name := range []string{"data", "unscheduled", "theirs", "other-class"} {
		if _, err := v.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "app", Name: name}}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var pvs corev1.PersistentVolumeList
	if err := c.List(ctx, &pvs); err != nil {
		t.Fatal(err)
	}
	if len(pvs.Items) != 1 {
		t.Fatalf("%d volumes, want one for the scheduled claim of the class local-path", len(pvs.Items))
	}
	pv := pvs.Items[0]
	dir := filepath.Join(v.Dir, "pvc-uid-data_app_data")
	if pv.Name != "pvc-uid-data" || pv.Spec.HostPath == nil || pv.Spec.HostPath.Path != dir || pv.Spec.ClaimRef.UID != "uid-data" ||
		pv.Spec.StorageClassName != StorageClass || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete ||
		pv.Spec.Capacity.Storage().String() != "1Gi" || pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values[0] != "node1" {
		t.Errorf("volume = %+v", pv)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o777 {
		t.Fatalf("volume directory: %v %v", fi, err)
	}
	// Again: nothing more (the volume exists).
	if _, err := v.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "app", Name: "data"}}); err != nil {
		t.Fatal(err)
	}

	// The claim is deleted: the PV controller marks the volume Released.
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	pv.Status.Phase = corev1.VolumeReleased
	if err := c.Status().Update(ctx, &pv); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Name: pv.Name}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the released volume's directory is still there: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: pv.Name}, &corev1.PersistentVolume{}); err == nil {
		t.Error("the released volume still exists")
	}
}

// TestForeignPathIsKept: a volume that claims to be ours but points
// outside the directory is not removed.
func TestForeignPathIsKept(t *testing.T) {
	ctx := context.Background()
	outside := t.TempDir()
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-x", Annotations: map[string]string{annProvisionedBy: Provisioner}},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: outside}}},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeReleased},
	}
	c := fake.NewClientBuilder().WithObjects(pv).WithStatusSubresource(pv).Build()
	v := &Volumes{Client: c, Dir: t.TempDir(), Node: "node1", Log: slog.New(slog.DiscardHandler)}
	_, err := v.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Name: "pvc-x"}})
	if err == nil || !strings.Contains(err.Error(), "left in place") {
		t.Errorf("err = %v, want the volume left in place", err)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("a directory outside was removed: %v", err)
	}
}

// TestBlockClaimIsToldOnce: a claim for a block device gets one warning
// event, however often it is reconciled, and no volume.
func TestBlockClaimIsToldOnce(t *testing.T) {
	ctx := context.Background()
	block := claim("raw", map[string]string{annStorageProvisioner: Provisioner, annSelectedNode: "node1"})
	mode := corev1.PersistentVolumeBlock
	block.Spec.VolumeMode = &mode
	c := fake.NewClientBuilder().WithObjects(block).Build()
	v := &Volumes{Client: c, Dir: t.TempDir(), Node: "node1", Log: slog.New(slog.DiscardHandler)}
	for range 3 {
		if _, err := v.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "app", Name: "raw"}}); err != nil {
			t.Fatal(err)
		}
	}
	var events corev1.EventList
	if err := c.List(ctx, &events); err != nil {
		t.Fatal(err)
	}
	if len(events.Items) != 1 || !strings.Contains(events.Items[0].Message, "Block") {
		t.Errorf("events = %+v, want one warning about Block", events.Items)
	}
	if entries, _ := os.ReadDir(v.Dir); len(entries) != 0 {
		t.Errorf("a block claim got a directory: %v", entries)
	}
	// Once the claim is gone, it is forgotten.
	if err := c.Delete(ctx, block); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "app", Name: "raw"}}); err != nil {
		t.Fatal(err)
	}
	if len(v.refused) != 0 {
		t.Errorf("refused = %v after the claim went, want it empty", v.refused)
	}
}

// TestFailedVolumeLeavesNoDirectory: when the volume cannot be created, the
// directory made for it goes too.
func TestFailedVolumeLeavesNoDirectory(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().WithObjects(claim("data", map[string]string{annStorageProvisioner: Provisioner, annSelectedNode: "node1"})).
		WithInterceptorFuncs(interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*corev1.PersistentVolume); ok {
				return errors.New("admission refused it")
			}
			return c.Create(ctx, obj, opts...)
		}}).Build()
	v := &Volumes{Client: c, Dir: t.TempDir(), Node: "node1", Log: slog.New(slog.DiscardHandler)}
	if _, err := v.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "app", Name: "data"}}); err == nil {
		t.Fatal("the failed create was not reported")
	}
	if entries, _ := os.ReadDir(v.Dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}
