package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/store/storetest"
)

// TestKVPutReplacesMetadata: a put without metadata or expiration leaves
// the key with none, as on Cloudflare (a put replaces the whole entry).
func TestKVPutReplacesMetadata(t *testing.T) {
	ctx := context.Background()
	acct := storetest.Account(t).ID
	clock := time.Unix(1_800_000_000, 0)
	st := store.NewKV(blobs, func() time.Time { return clock })
	ns, err := st.CreateNamespace(ctx, acct, "replace")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, acct, ns.ID, "k", store.KVEntry{Value: []byte("v1"), Metadata: json.RawMessage(`{"a":1}`), Expiration: clock.Unix() + 3600}); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, acct, ns.ID, "k", store.KVEntry{Value: []byte("v2")}); err != nil {
		t.Fatal(err)
	}
	e, err := st.Get(ctx, acct, ns.ID, "k")
	if err != nil || string(e.Value) != "v2" || e.Metadata != nil || e.Expiration != 0 {
		t.Errorf("get after a put without metadata = %q %s %d, %v; want v2 with no metadata and no expiration", e.Value, e.Metadata, e.Expiration, err)
	}
	k, err := st.Head(ctx, acct, ns.ID, "k")
	if err != nil || k.Metadata != nil || k.Expiration != 0 {
		t.Errorf("head = %+v, %v", k, err)
	}
	keys, _, err := st.List(ctx, acct, ns.ID, "", "", 10)
	if err != nil || len(keys) != 1 || keys[0].Metadata != nil || keys[0].Expiration != 0 {
		t.Errorf("list = %+v, %v", keys, err)
	}
}
