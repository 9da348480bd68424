//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/octohq/octo/internal/builder"
)

// checkControlPlaneImage: the control-plane image of the octo under test
// (what `make images` builds) is pushed to the registry and runs in a pod
// of the cluster: `octo version` answers, as nobody.
func checkControlPlaneImage(t *testing.T, e *env, cs kubernetes.Interface, registry string, auth remote.Option) {
	t.Helper()
	img, cleanup, err := builder.ControlPlane{Octo: e.bin, TempDir: t.TempDir()}.Image()
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	ref := registry + "/e2e/octo:1"
	if err := remote.Write(mustRef(t, ref), img, auth); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-octo-version", Namespace: ns},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "octo", Image: ref, Args: []string{"version"}}}},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cs.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{}) }()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		got, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err == nil && got.Status.Phase == corev1.PodSucceeded {
			break
		}
		if err == nil && got.Status.Phase == corev1.PodFailed || time.Now().After(deadline) {
			out, _ := e.octo("kubectl", "logs", "-n", ns, pod.Name)
			t.Fatalf("the control-plane image's pod: %v %+v\n%s", err, got.Status, out)
		}
	}
	out := e.mustOcto("kubectl", "logs", "-n", ns, pod.Name)
	if !strings.Contains(out, "octo ") || !strings.Contains(out, "kubernetes v1.34") {
		t.Errorf("octo version in the control-plane image printed %q", out)
	}
}
