package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/store/storetest"
)

// TestPutEmptyKeepsTheConnection: after an empty object is stored, the next
// request on the same connection gets its own answer (the S3 store once
// read a leftover chunk of the empty put as a request and answered 400).
func TestPutEmptyKeepsTheConnection(t *testing.T) {
	b := storetest.NewBucket(t)
	ctx := context.Background()
	for i := range 300 {
		k := fmt.Sprintf("empty/%d", i)
		if err := b.Put(ctx, k, nil, "application/octet-stream", nil); err != nil {
			t.Fatalf("put: %v", err)
		}
		if _, err := b.Head(ctx, "empty/none"); !errors.Is(err, store.ErrBlobNotFound) {
			t.Fatalf("the request after empty put %d: %v, want not found", i, err)
		}
		if got, _, err := b.Get(ctx, k); err != nil || len(got) != 0 {
			t.Fatalf("get %s = %q, %v", k, got, err)
		}
	}
}
