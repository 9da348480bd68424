package store_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/store/storetest"
)

// blobs is the bucket of a real S3 store, started once by TestMain.
var blobs *store.BlobStore

func TestMain(m *testing.M) {
	os.Exit(storetest.RunWithS3(m, func(b *store.BlobStore) { blobs = b }))
}

// TestKVStoreDirect exercises the KV store without HTTP, as the runtime's KV
// protocol and the dashboard do.
func TestKVStoreDirect(t *testing.T) {
	ctx := context.Background()
	acct := storetest.Account(t).ID
	clock := time.Unix(1_800_000_000, 0)
	st := store.NewKV(blobs, func() time.Time { return clock })
	ns, err := st.CreateNamespace(ctx, acct, "direct")
	if err != nil {
		t.Fatal(err)
	}
	ttl := int64(60)
	exp, err := st.ExpiresAt(nil, &ttl)
	if err != nil || exp != clock.Unix()+60 {
		t.Fatalf("expiresAt = %d, %v", exp, err)
	}
	if err := st.Put(ctx, acct, ns.ID, "k", store.KVEntry{Value: []byte("v"), Metadata: json.RawMessage(`{ "x" : 1 }`), Expiration: exp}); err != nil {
		t.Fatal(err)
	}
	e, err := st.Get(ctx, acct, ns.ID, "k")
	if err != nil || string(e.Value) != "v" || string(e.Metadata) != `{"x":1}` || e.Expiration != exp {
		t.Errorf("get = %+v, %v", e, err)
	}
	keys, cursor, err := st.List(ctx, acct, ns.ID, "", "", 1)
	if err != nil || len(keys) != 1 || cursor != "" {
		t.Errorf("list = %+v %q %v", keys, cursor, err)
	}
	clock = clock.Add(time.Minute)
	if _, err := st.Get(ctx, acct, ns.ID, "k"); !store.IsNotFound(err, store.CodeKVKeyNotFound) {
		t.Errorf("get expired = %v", err)
	}
	all, err := st.Namespaces(ctx, acct)
	if err != nil || len(all) != 1 || all[0].Title != "direct" || !all[0].CreatedOn.Equal(time.Unix(1_800_000_000, 0)) {
		t.Errorf("listNamespaces = %+v, %v", all, err)
	}
	if err := st.DeleteNamespace(ctx, acct, ns.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Namespace(ctx, acct, ns.ID); !store.IsNotFound(err, store.CodeKVNotFound) {
		t.Errorf("namespace after delete = %v", err)
	}
}
