package controller

import (
	"context"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
)

type recordingBlobs struct {
	mu       sync.Mutex
	prefixes []string
}

func (r *recordingBlobs) DeletePrefix(_ context.Context, prefix string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prefixes = append(r.prefixes, prefix)
	return nil
}

func TestReleaseFinalizerRemovesScriptFiles(t *testing.T) {
	const acct = "0123456789abcdef0123456789abcdef"
	rel := &apiv1.WorkerRelease{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "octo"},
		Spec:       apiv1.WorkerReleaseSpec{AccountID: acct, ScriptName: "hello"},
	}
	e := newEnv(t, rel)
	blobs := &recordingBlobs{}
	r := &ReleaseReconciler{Client: e.c, Blobs: blobs, Recorder: e.rec}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "octo", Name: "hello"}}
	ctx := context.Background()

	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	var got apiv1.WorkerRelease
	if err := e.c.Get(ctx, req.NamespacedName, &got); err != nil {
		t.Fatal(err)
	}
	if !controllerutil.ContainsFinalizer(&got, apiv1.FinalizerScriptFiles) {
		t.Fatalf("finalizers = %v, want %s", got.Finalizers, apiv1.FinalizerScriptFiles)
	}
	if len(blobs.prefixes) != 0 {
		t.Fatalf("a live release removed files: %v", blobs.prefixes)
	}

	if err := e.c.Delete(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if want := store.ScriptPrefix(acct, "hello"); len(blobs.prefixes) != 1 || blobs.prefixes[0] != want {
		t.Fatalf("removed prefixes %v, want [%s]", blobs.prefixes, want)
	}
	if err := e.c.Get(ctx, req.NamespacedName, &got); client.IgnoreNotFound(err) != nil || err == nil {
		t.Fatalf("release still there after its finalizer ran: %v %v", err, got.Finalizers)
	}
}
