// Package storetest runs tests against a real S3 store: octo's embedded
// versitygw on a free loopback port in a temporary directory.
package storetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed/s3"
	"github.com/octohq/octo/internal/store"
)

// endpoint and creds reach the store RunWithS3 started; NewBucket opens
// more buckets in it. Test binaries run one TestMain, so one store each.
var (
	endpoint string
	creds    s3.Credentials
)

// RunWithS3 starts the S3 store, opens octo's bucket in it, hands it to set,
// runs the tests and stops the store. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(storetest.RunWithS3(m, func(b *store.BlobStore) { blobs = b })) }
func RunWithS3(m *testing.M, set func(*store.BlobStore)) int {
	dir, err := os.MkdirTemp("", "octo-storetest-")
	if err == nil {
		// versitygw chdirs into its data dir: every path must be absolute.
		dir, err = filepath.Abs(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "free port:", err)
		return 1
	}
	cfg := config.Default(dir)
	cfg.S3Port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := s3.New(cfg, nil)
	if err := srv.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "start S3:", err)
		return 1
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		_ = srv.Stop(sctx)
	}()
	if err := srv.Ready(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "S3 ready:", err)
		return 1
	}
	creds = srv.Credentials()
	endpoint = strings.TrimPrefix(creds.Endpoint, "http://")
	blobs, err := store.NewBlobStore(ctx, endpoint, creds.AccessKey, creds.SecretKey, creds.Region, store.Bucket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	set(blobs)
	return m.Run()
}

// Account returns a new account with a random ID, so that tests sharing one
// S3 store never see each other's data.
func Account(t testing.TB) store.Account {
	t.Helper()
	id, err := store.RandomHex(16)
	if err != nil {
		t.Fatal(err)
	}
	return store.Account{ID: id, Name: "test " + id[:6], Subdomain: "t" + id[:6], Namespace: store.DefaultNamespace}
}

// NewBucket opens a new, empty bucket in the store RunWithS3 started, for a
// test that needs fixed account IDs without seeing other tests' data.
func NewBucket(t testing.TB) *store.BlobStore {
	t.Helper()
	if endpoint == "" {
		t.Fatal("storetest.NewBucket needs storetest.RunWithS3 in TestMain")
	}
	name, err := store.RandomHex(8)
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.NewBlobStore(context.Background(), endpoint, creds.AccessKey, creds.SecretKey, creds.Region, "test-"+name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
