package controller

import (
	"context"
	"testing"
	"time"

	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// A new version reaches its account's queue after the settle time (so that
// the deployment written right after it is reconciled together with it); a
// deleted one at once.
func TestVersionHandlerSettles(t *testing.T) {
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	h := versionHandler(100 * time.Millisecond)
	v := workerVersion(acct, "hello", 1, id1)
	h.Create(context.Background(), event.CreateEvent{Object: v}, q)
	if q.Len() != 0 {
		t.Fatalf("queued at once after a create: %d", q.Len())
	}
	deadline := time.Now().Add(5 * time.Second)
	for q.Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if q.Len() != 1 {
		t.Fatalf("queue %d after the settle time, want 1", q.Len())
	}
	req, _ := q.Get()
	q.Done(req)
	if req.Name != acct || req.Namespace != ns {
		t.Errorf("queued %v, want the version's account", req)
	}
	h.Delete(context.Background(), event.DeleteEvent{Object: v}, q)
	if q.Len() != 1 {
		t.Errorf("queue %d right after a delete, want 1", q.Len())
	}
}
