//go:build apiserver

package controller

// The controllers against a real kube-apiserver (octo's embedded one, on
// kine), with a fake builder and no kube-controller-manager (the
// Deployment's status is faked): CRD validation, status subresources,
// server-side defaults (no rewrite loops), ownership. Opt-in, it links the
// whole API server and needs a writable /run:
//
//	go test -tags apiserver -run TestAgainstAPIServer ./internal/controller

import (
	"context"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/crds"
	"github.com/octohq/octo/internal/embed/apiserver"
	"github.com/octohq/octo/internal/embed/embedtest"
	"github.com/octohq/octo/internal/embed/kine"
	"github.com/octohq/octo/internal/pki"
)

func TestAgainstAPIServer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := config.Default(t.TempDir())
	cfg.APIServerPort = embedtest.FreePort(t)
	t.Cleanup(func() { os.RemoveAll(cfg.RunDir()) })
	p := pki.New(cfg)
	if _, err := p.Ensure(); err != nil {
		t.Fatal(err)
	}
	k := kine.New(cfg, nil)
	if err := k.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	defer k.Stop(context.Background())
	srv := apiserver.New(cfg, p, k.Endpoint())
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer rcancel()
	if err := srv.Ready(rctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())
	rc, err := clientcmd.BuildConfigFromFlags("", p.KubeconfigPath("admin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := crds.Install(ctx, rc); err != nil {
		t.Fatal(err)
	}
	opts, err := ManagerOptions(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(rc, opts)
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBuilder{fail: map[string]string{id3: "Uncaught SyntaxError: boom"}}
	if err := Setup(mgr, Options{Builder: fb, Registry: "127.0.0.1:5050", PodHost: podHost, GatewayPort: 8787}); err != nil {
		t.Fatal(err)
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			t.Error(err)
		}
	}()
	c, err := client.New(rc, client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	secret := apiv1.WorkerBinding{Name: "API_KEY", Type: apiv1.BindingSecretText, SecretRef: &apiv1.SecretKeyRef{Name: "hello-secrets", Key: "API_KEY"}}
	must(c.Create(ctx, account(acct, "b1")))
	must(c.Create(ctx, workerVersion(acct, "hello", 1, id1, secret)))
	must(c.Create(ctx, workerVersion(acct, "hello", 2, id2, secret)))
	must(c.Create(ctx, workerVersion(acct, "broken", 1, id3)))
	rel := release(acct, "hello", deployment(uuidN("dddddddd", 1), traffic(id1, 30), traffic(id2, 70)))
	must(c.Create(ctx, rel))
	must(c.Create(ctx, release(acct, "broken", deployment(uuidN("dddddddd", 2), traffic(id3, 100)))))

	key := client.ObjectKey{Namespace: ns, Name: "b1"}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var dep appsv1.Deployment
	waitFor("deployment", func() bool { return c.Get(ctx, key, &dep) == nil })
	time.Sleep(3 * time.Second)
	must(c.Get(ctx, key, &dep))
	rv, gen := dep.ResourceVersion, dep.Generation
	var svc corev1.Service
	must(c.Get(ctx, key, &svc))
	svcRV := svc.ResourceVersion
	t.Logf("deployment generation %d rv %s; image %s", gen, rv, dep.Spec.Template.Spec.Containers[0].Image)

	// Fake the Deployment controller.
	n := *dep.Spec.Replicas
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()}}}
	must(c.Status().Update(ctx, &dep))
	var b apiv1.WorkerBundle
	waitFor("bundle ready", func() bool {
		return c.Get(ctx, key, &b) == nil && meta.IsStatusConditionTrue(b.Status.Conditions, apiv1.ConditionReady)
	})
	var a apiv1.WorkerAccount
	waitFor("account ready", func() bool {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: acct}, &a) == nil && meta.IsStatusConditionTrue(a.Status.Conditions, apiv1.ConditionReady)
	})
	waitFor("release ready", func() bool {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "hello"}, rel) == nil && rel.Status.ActiveDeploymentID == uuidN("dddddddd", 1)
	})
	var v apiv1.WorkerVersion
	must(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "broken-v1"}, &v))
	if v.Status.Phase != apiv1.WorkerVersionFailed {
		t.Errorf("broken version status %+v", v.Status)
	}
	time.Sleep(2 * time.Second)
	must(c.Get(ctx, key, &dep))
	must(c.Get(ctx, key, &svc))
	if dep.Generation != gen || svc.ResourceVersion != svcRV {
		t.Errorf("children rewritten without a change: deployment generation %d -> %d, service rv %s -> %s", gen, dep.Generation, svcRV, svc.ResourceVersion)
	}
	bRV := b.ResourceVersion
	time.Sleep(2 * time.Second)
	must(c.Get(ctx, key, &b))
	if b.ResourceVersion != bRV {
		t.Errorf("bundle keeps changing: %s -> %s", bRV, b.ResourceVersion)
	}
	t.Logf("%d builds so far", fb.count())

	// New deployment.
	must(c.Create(ctx, workerVersion(acct, "hello", 3, id4)))
	must(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "hello"}, rel))
	rel.Spec.PushDeployment(deployment(uuidN("dddddddd", 3), traffic(id4, 100)))
	must(c.Update(ctx, rel))
	oldImage := dep.Spec.Template.Spec.Containers[0].Image
	waitFor("rollout", func() bool {
		return c.Get(ctx, key, &dep) == nil && dep.Spec.Template.Spec.Containers[0].Image != oldImage
	})
	waitFor("settled", func() bool {
		n := fb.count()
		time.Sleep(2 * time.Second)
		return fb.count() == n
	})
	must(c.Get(ctx, key, &dep))
	gen = dep.Generation
	time.Sleep(3 * time.Second)
	must(c.Get(ctx, key, &dep))
	if dep.Generation != gen {
		t.Errorf("deployment keeps changing after the rollout: %d -> %d", gen, dep.Generation)
	}
	t.Logf("builds: %d; deployment annotations %v", fb.count(), dep.Spec.Template.Annotations)
	var jbs apiv1.JobBuilderList
	must(c.List(ctx, &jbs, client.InNamespace(ns)))
	for _, jb := range jbs.Items {
		t.Logf("JobBuilder %s: %s %s attempts=%s", jb.Name, jb.Status.Phase, jb.Status.Message, jb.Annotations[apiv1.AnnotationBuildAttempts])
	}
	cancel()
}
