// Package workload is the small HTTP workload the e2e tests and benchmarks run
// on octo: it builds the hello program into an image in-process, pushes it to
// the embedded registry, deploys it and waits until it serves.
package workload

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/octohq/octo/internal/embed/containerd"
)

// Port is where hello listens in its pod.
const Port = 8080

// helloDir is the hello program's source directory.
func helloDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "hello")
}

// PushHello compiles the hello program (static, CGO off), packs it into a
// one-layer image and pushes it to registryAddr as <registryAddr>/<repo>,
// authenticated by auth (octo's registry refuses anonymous pushes).
func PushHello(registryAddr, repo string, auth authn.Authenticator) (string, error) {
	tmp, err := os.MkdirTemp("", "hello-build")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "hello")
	build := exec.Command("go", "build", "-o", out, ".")
	build.Dir = helloDir()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build hello: %w\n%s", err, b)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		return "", err
	}
	img, err := containerd.SingleBinaryImage("/hello", bin)
	if err != nil {
		return "", err
	}
	ref := registryAddr + "/" + repo
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(r, img, remote.WithAuth(auth)); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	return ref, nil
}

// Deploy creates a Deployment of hello with replicas pods and a Service on
// port 80, both named app, labelled app=<app>.
func Deploy(ctx context.Context, cs kubernetes.Interface, ns, app, image string, replicas int32) error {
	labels := map[string]string{"app": app}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "hello", Image: image, Args: []string{"serve"},
					Ports: []corev1.ContainerPort{{ContainerPort: Port}},
					ReadinessProbe: &corev1.Probe{
						ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(Port)}},
						PeriodSeconds: 1,
					},
				}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create deployment: %w", err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(Port)}}},
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create service: %w", err)
	}
	return nil
}

// ReadyPods lists the ready, not terminating pods of app.
func ReadyPods(ctx context.Context, cs kubernetes.Interface, ns, app string) ([]corev1.Pod, error) {
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, err
	}
	var ready []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready = append(ready, p)
			}
		}
	}
	return ready, nil
}

// WaitServing waits until app has want ready pods and its Service's
// ClusterIP answers hello on the host; it returns the ClusterIP.
func WaitServing(ctx context.Context, cs kubernetes.Interface, ns, app string, want int) (string, error) {
	var last error
	for {
		ip, err := serving(ctx, cs, ns, app, want)
		if err == nil {
			return ip, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s/%s not serving: %w", ns, app, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func serving(ctx context.Context, cs kubernetes.Interface, ns, app string, want int) (string, error) {
	svc, err := cs.CoreV1().Services(ns).Get(ctx, app, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	pods, err := ReadyPods(ctx, cs, ns, app)
	if err != nil {
		return "", err
	}
	if len(pods) < want {
		return "", fmt.Errorf("%d of %d pods ready", len(pods), want)
	}
	body, err := Get("http://" + svc.Spec.ClusterIP + "/")
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(body, "hello from ") {
		return "", fmt.Errorf("unexpected answer %q", body)
	}
	return svc.Spec.ClusterIP, nil
}

// Get fetches url on a new connection (a pooled one may predate a restart of
// the cluster) and fails unless it answers 200.
func Get(url string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}
