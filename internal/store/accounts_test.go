package store

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	apiv1 "github.com/octohq/octo/api/v1"
)

func TestFindAccountRefusesDuplicates(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef"
	src := StaticAccounts{{ID: id, Namespace: "octo"}, {ID: "ffffffffffffffffffffffffffffffff", Namespace: "octo"}}
	if a, err := FindAccount(context.Background(), src, id); err != nil || a.Namespace != "octo" {
		t.Fatalf("FindAccount = %+v, %v", a, err)
	}
	src = append(src, Account{ID: id, Namespace: "tenant-b"})
	_, err := FindAccount(context.Background(), src, id)
	if e := AsError(err); e == nil || e.Kind != Conflict || !strings.Contains(e.Msg, "octo, tenant-b") {
		t.Fatalf("FindAccount of an ID two WorkerAccounts claim = %v, want a Conflict naming both namespaces", err)
	}
}

// TestEnsureDefaultAccountRepairsAMissedListing: when the API server's
// watch cache does not list the existing account (a missed create event),
// it is written again so that a new event reaches the cache; an account
// that is listed is left alone.
func TestEnsureDefaultAccountRepairsAMissedListing(t *testing.T) {
	id := Identity{AccountID: "0123456789abcdef0123456789abcdef", AccountName: "dev", Subdomain: "octo"}
	a := id.DefaultAccount()
	for _, hidden := range []bool{false, true} {
		scheme, err := Scheme()
		if err != nil {
			t.Fatal(err)
		}
		var patched atomic.Int32
		c := fake.NewClientBuilder().WithScheme(scheme).
			WithObjects(&apiv1.WorkerAccount{ObjectMeta: metav1.ObjectMeta{Name: a.ID, Namespace: a.Namespace}}).
			WithInterceptorFuncs(interceptor.Funcs{
				List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
					if hidden && patched.Load() == 0 {
						return nil // the watch cache missed the account
					}
					return c.List(ctx, list, opts...)
				},
				Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
					patched.Add(1)
					return c.Patch(ctx, obj, patch, opts...)
				},
			}).Build()
		t0 := time.Now()
		if err := EnsureDefaultAccount(context.Background(), c, id); err != nil {
			t.Fatal(err)
		}
		var got apiv1.WorkerAccount
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: a.Namespace, Name: a.ID}, &got); err != nil {
			t.Fatal(err)
		}
		touched := got.Annotations[apiv1.AnnotationListedAt] != ""
		if touched != hidden || int(patched.Load()) != map[bool]int{false: 0, true: 1}[hidden] {
			t.Errorf("hidden=%v: patched %d times, annotation %q", hidden, patched.Load(), got.Annotations[apiv1.AnnotationListedAt])
		}
		if took := time.Since(t0); took > 3*time.Second {
			t.Errorf("hidden=%v: took %s", hidden, took)
		}
	}
}

func TestClaimSubdomains(t *testing.T) {
	c := ClaimSubdomains([]Account{
		{ID: "a", Subdomain: "Alpha", Namespace: "ns-a"},
		{ID: "b", Subdomain: "beta", Namespace: "ns-b1"},
		{ID: "b2", Subdomain: "BETA", Namespace: "ns-b2"}, // the same subdomain, another case
		{ID: "c", Subdomain: "gamma", Namespace: "ns-c1"},
		{ID: "c", Subdomain: "delta", Namespace: "ns-c2"}, // the same account ID
		{ID: "d", Namespace: "ns-d"},                      // no subdomain: claims nothing
		{ID: "a", Namespace: "ns-a2"},                     // nor its ID
	})
	for sub, want := range map[string]string{"alpha": "a", "beta": "", "gamma": "", "delta": "", "": ""} {
		a, ok := c.Served(sub)
		if ok != (want != "") || a.ID != want {
			t.Errorf("Served(%q) = %q, %v; want %q", sub, a.ID, ok, want)
		}
	}
	if ns := c.Subdomains["beta"]; len(ns) != 2 {
		t.Errorf("claims of beta: %v, want both namespaces", ns)
	}
	if ns := c.IDs["c"]; len(ns) != 2 {
		t.Errorf("claims of account c: %v, want both namespaces", ns)
	}
	if _, ok := c.IDs["a"]; ok {
		t.Errorf("account a claimed twice, but one of the two has no subdomain")
	}
}
