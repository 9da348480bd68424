//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/octohq/octo/e2e/workload"
)

// volumeApp is the Deployment (app label) whose pod mounts volumeClaim.
const (
	volumeApp   = "e2e-volume"
	volumeClaim = "e2e-data"
	volumeText  = "kept on a local-path volume"
)

// waitVolumePod waits for the ready pod of volumeApp.
func waitVolumePod(t *testing.T, cs kubernetes.Interface) corev1.Pod {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		pods, err := workload.ReadyPods(context.Background(), cs, ns, volumeApp)
		if err == nil && len(pods) == 1 {
			return pods[0]
		}
		if time.Now().After(deadline) {
			pvc, _ := cs.CoreV1().PersistentVolumeClaims(ns).Get(context.Background(), volumeClaim, metav1.GetOptions{})
			t.Fatalf("no ready pod of %s within 2 min (%v); claim %+v", volumeApp, err, pvc.Status)
		}
	}
}

// writeLocalVolume claims a volume of the default StorageClass (no class
// named), runs a pod on it, writes a file there from the pod and finds it
// in <data dir>/storage; it returns the volume's directory.
func writeLocalVolume(t *testing.T, e *env, cs kubernetes.Interface, image, dataDir string) string {
	t.Helper()
	ctx := context.Background()
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: volumeClaim, Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("64Mi")}}},
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	one := int32(1)
	labels := map[string]string{"app": volumeApp}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: volumeApp, Namespace: ns},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "hello", Image: image, Args: []string{"serve"},
					VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
					ReadinessProbe: &corev1.Probe{PeriodSeconds: 1,
						ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(workload.Port)}}}}},
				Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: volumeClaim}}}},
			}}},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := waitVolumePod(t, cs)
	e.mustOcto("kubectl", "exec", "-n", ns, pod.Name, "--", "/hello", "write", "/data/greeting", volumeText)
	got, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, volumeClaim, metav1.GetOptions{})
	if err != nil || got.Status.Phase != corev1.ClaimBound || got.Spec.StorageClassName == nil || *got.Spec.StorageClassName != "local-path" {
		t.Fatalf("claim %v: %+v", err, got)
	}
	dir := filepath.Join(dataDir, "storage", "pvc-"+string(got.UID)+"_"+ns+"_"+volumeClaim)
	if b, err := os.ReadFile(filepath.Join(dir, "greeting")); err != nil || string(b) != volumeText {
		t.Fatalf("the pod's file on the host: %q, %v", b, err)
	}
	return dir
}

// localVolumeSurvived: after down/up, the pod reads the file it wrote.
func localVolumeSurvived(t *testing.T, e *env, cs kubernetes.Interface) {
	t.Helper()
	pod := waitVolumePod(t, cs)
	if out := e.mustOcto("kubectl", "exec", "-n", ns, pod.Name, "--", "/hello", "cat", "/data/greeting"); !strings.Contains(out, volumeText) {
		t.Errorf("after down/up the volume holds %q, want %q", out, volumeText)
	}
}

// deleteLocalVolume: deleting the claim removes the volume and its
// directory (reclaim policy Delete).
func deleteLocalVolume(t *testing.T, cs kubernetes.Interface, dir string) {
	t.Helper()
	ctx := context.Background()
	if err := cs.AppsV1().Deployments(ns).Delete(ctx, volumeApp, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, volumeClaim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	pvName := "pvc-" + strings.TrimSuffix(strings.TrimPrefix(filepath.Base(dir), "pvc-"), "_"+ns+"_"+volumeClaim)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		_, statErr := os.Stat(dir)
		_, getErr := cs.CoreV1().PersistentVolumes().Get(ctx, pvName, metav1.GetOptions{})
		if os.IsNotExist(statErr) && apierrors.IsNotFound(getErr) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("2 min after the claim's deletion: directory %v, volume %s %v", statErr, pvName, getErr)
		}
	}
}
