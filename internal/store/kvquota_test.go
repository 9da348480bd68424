package store_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/store/storetest"
)

// charge is what a key costs against the storage limit (kvCharge).
func charge(key string, valueLen int) int64 { return int64(valueLen+len(key)) + 1024 }

func TestKVStorageLimit(t *testing.T) {
	ctx := context.Background()
	acct := storetest.Account(t).ID
	limit := charge("a", 1000) + charge("b", 500)
	st := store.NewKVWithLimits(blobs, nil, store.KVLimits{StorageBytes: limit})
	ns, err := st.CreateNamespace(ctx, acct, "quota")
	if err != nil {
		t.Fatal(err)
	}
	put := func(key string, n int) error {
		return st.Put(ctx, acct, ns.ID, key, store.KVEntry{Value: []byte(strings.Repeat("x", n))})
	}
	over := func(err error) bool {
		e := store.AsError(err)
		return e != nil && e.Code == store.CodeKVStorageLimit && e.Kind == store.TooLarge
	}
	if err := put("a", 1000); err != nil {
		t.Fatal(err)
	}
	// One byte over: refused, nothing stored.
	if err := put("b", 501); !over(err) {
		t.Fatalf("put over the limit = %v, want the storage limit", err)
	}
	if _, err := st.Get(ctx, acct, ns.ID, "b"); !store.IsNotFound(err, store.CodeKVKeyNotFound) {
		t.Fatalf("refused key stored: %v", err)
	}
	if err := put("b", 500); err != nil {
		t.Fatalf("put up to the limit: %v", err)
	}
	// An overwrite counts the difference only.
	if err := put("a", 1001); !over(err) {
		t.Fatalf("growing overwrite = %v", err)
	}
	if e, err := st.Get(ctx, acct, ns.ID, "a"); err != nil || len(e.Value) != 1000 {
		t.Fatalf("a after the refused overwrite = %d bytes, %v", len(e.Value), err)
	}
	if err := put("a", 100); err != nil {
		t.Fatal(err)
	}
	// A bulk write over the limit is refused whole.
	big := []store.KVWrite{{Key: "c", Entry: store.KVEntry{Value: make([]byte, 100)}}, {Key: "d", Entry: store.KVEntry{Value: make([]byte, 200)}}}
	if _, err := st.PutMany(ctx, acct, ns.ID, big); !over(err) {
		t.Fatalf("bulk over the limit = %v", err)
	}
	if _, err := st.Get(ctx, acct, ns.ID, "c"); !store.IsNotFound(err, store.CodeKVKeyNotFound) {
		t.Fatalf("bulk partly stored: %v", err)
	}
	// Deleting frees the space.
	if err := st.Delete(ctx, acct, ns.ID, "b"); err != nil {
		t.Fatal(err)
	}
	if failed, err := st.PutMany(ctx, acct, ns.ID, big); err != nil || len(failed) != 0 {
		t.Fatalf("bulk after a delete = %v, %v", failed, err)
	}

	// Another process (a new KV on the same bucket) counts the stored keys
	// from a listing at its first write: 75 bytes are left.
	st2 := store.NewKVWithLimits(blobs, nil, store.KVLimits{StorageBytes: limit})
	if left := limit - charge("a", 100) - charge("c", 100) - charge("d", 200); left != 75 {
		t.Fatalf("test arithmetic: %d left", left)
	}
	if err := st2.Put(ctx, acct, ns.ID, "e", store.KVEntry{}); !over(err) {
		t.Fatalf("fresh store over the limit = %v", err)
	}
	if err := st2.Delete(ctx, acct, ns.ID, "d"); err != nil {
		t.Fatal(err)
	}
	if err := st2.Put(ctx, acct, ns.ID, "e", store.KVEntry{Value: make([]byte, 200)}); err != nil {
		t.Fatalf("fresh store after a delete: %v", err)
	}
}

// TestKVStorageLimitSameKeyRace: writers of one key never both take the
// value they replace off the total.
func TestKVStorageLimitSameKeyRace(t *testing.T) {
	ctx := context.Background()
	acct := storetest.Account(t).ID
	limit := charge("k", 4000) + charge("other", 0)
	st := store.NewKVWithLimits(blobs, nil, store.KVLimits{StorageBytes: limit})
	ns, err := st.CreateNamespace(ctx, acct, "race")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, acct, ns.ID, "k", store.KVEntry{Value: make([]byte, 4000)}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() { _ = st.Put(ctx, acct, ns.ID, "k", store.KVEntry{}) })
	}
	wg.Wait()
	// Stored: k with 0 bytes. 4000 bytes are free, not more.
	if err := st.Put(ctx, acct, ns.ID, "other", store.KVEntry{Value: make([]byte, 4001)}); err == nil {
		t.Fatal("the total went below what is stored")
	}
	if err := st.Put(ctx, acct, ns.ID, "other", store.KVEntry{Value: make([]byte, 4000)}); err != nil {
		t.Fatal(err)
	}
}

func TestKVStorageRecountBeforeRefusing(t *testing.T) {
	ctx := context.Background()
	acct := storetest.Account(t).ID
	clock := time.Unix(1_800_000_000, 0)
	limit := charge("k", 1000)
	st := store.NewKVWithLimits(blobs, func() time.Time { return clock }, store.KVLimits{StorageBytes: limit})
	ns, err := st.CreateNamespace(ctx, acct, "recount")
	if err != nil {
		t.Fatal(err)
	}
	ttl := int64(60)
	exp, _ := st.ExpiresAt(nil, &ttl)
	if err := st.Put(ctx, acct, ns.ID, "k", store.KVEntry{Value: make([]byte, 1000), Expiration: exp}); err != nil {
		t.Fatal(err)
	}
	// The key expires and is deleted when met, which the total does not see.
	clock = clock.Add(2 * time.Minute)
	if _, err := st.Get(ctx, acct, ns.ID, "k"); !store.IsNotFound(err, store.CodeKVKeyNotFound) {
		t.Fatal(err)
	}
	if err := st.Put(ctx, acct, ns.ID, "j", store.KVEntry{Value: make([]byte, 1000)}); err != nil {
		t.Fatalf("put after the expired key went: %v", err)
	}
}

func TestKVNamespaceLimit(t *testing.T) {
	ctx := context.Background()
	acct := storetest.Account(t).ID
	st := store.NewKVWithLimits(blobs, nil, store.KVLimits{Namespaces: 2})
	for _, title := range []string{"one", "two"} {
		if _, err := st.CreateNamespace(ctx, acct, title); err != nil {
			t.Fatal(err)
		}
	}
	_, err := st.CreateNamespace(ctx, acct, "three")
	if e := store.AsError(err); e == nil || e.Code != store.CodeKVNamespaceLimit {
		t.Fatalf("third namespace = %v, want code %d", err, store.CodeKVNamespaceLimit)
	}
	all, err := st.Namespaces(ctx, acct)
	if err != nil || len(all) != 2 {
		t.Fatalf("namespaces = %v, %v", all, err)
	}
}
