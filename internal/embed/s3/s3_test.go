package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed"
	"github.com/octohq/octo/internal/embed/embedtest"
)

var (
	_ embed.Component  = (*Server)(nil)
	_ embed.Endpointer = (*Server)(nil)
)

// freePort returns a loopback TCP port that was free a moment ago.

// start starts a Server for cfg and waits until it is ready.
func start(t *testing.T, cfg config.Config) *Server {
	t.Helper()
	s := New(cfg, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	return s
}

// stop stops s and reports how long it took.
func stop(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	begin := time.Now()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("stopped in %v", time.Since(begin))
}

// client returns a minio-go client for s signing with secret.
func client(t *testing.T, s *Server, secret string) *minio.Client {
	t.Helper()
	c := s.Credentials()
	mc, err := minio.New(strings.TrimPrefix(c.Endpoint, "http://"), &minio.Options{
		Creds:  credentials.NewStaticV4(c.AccessKey, secret, ""),
		Region: c.Region,
		Secure: false,
	})
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

func TestServer(t *testing.T) {
	cfg := config.Default(t.TempDir())
	cfg.S3Port = embedtest.FreePort(t)
	ctx := context.Background()

	s := start(t, cfg)
	if got, want := s.Endpoint(), "http://"+config.Addr(cfg.S3Port); got != want {
		t.Errorf("Endpoint() = %q, want %q", got, want)
	}
	creds := s.Credentials()
	if len(creds.AccessKey) != 20 || len(creds.SecretKey) != 40 {
		t.Errorf("key lengths = %d/%d, want 20/40", len(creds.AccessKey), len(creds.SecretKey))
	}
	fi, err := os.Stat(cfg.S3CredentialsPath())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials mode = %v, want 0600", fi.Mode().Perm())
	}
	saved, err := LoadCredentials(cfg)
	if err != nil {
		t.Fatalf("LoadCredentials: %v", err)
	}
	if saved != creds {
		t.Errorf("LoadCredentials = %+v, want %+v", saved, creds)
	}

	mc := client(t, s, creds.SecretKey)
	if err := mc.MakeBucket(ctx, "octo-test", minio.MakeBucketOptions{Region: creds.Region}); err != nil {
		t.Fatalf("MakeBucket: %v", err)
	}
	body := []byte("hello from octo")
	if _, err := mc.PutObject(ctx, "octo-test", "dir/hello.txt", bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{ContentType: "text/plain"}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	if got := getObject(t, mc, "octo-test", "dir/hello.txt"); !bytes.Equal(got, body) {
		t.Errorf("GetObject = %q, want %q", got, body)
	}
	if _, err := os.Stat(cfg.Path("s3", "data", "octo-test", "dir", "hello.txt")); err != nil {
		t.Errorf("object is not a file under the data dir: %v", err)
	}

	bad := client(t, s, strings.Repeat("x", 40))
	if _, err := bad.StatObject(ctx, "octo-test", "dir/hello.txt", minio.StatObjectOptions{}); err == nil {
		t.Error("StatObject signed with a wrong secret was accepted")
	}
	if _, err := bad.ListBuckets(ctx); err == nil {
		t.Error("ListBuckets signed with a wrong secret was accepted")
	}

	other := config.Default(t.TempDir())
	other.S3Port = embedtest.FreePort(t)
	if err := New(other, nil).Start(ctx); err == nil || !strings.Contains(err.Error(), "another S3 store") {
		t.Errorf("second Start while running = %v, want an error", err)
	}
	stop(t, s)

	// A new gateway in the same process and data dir keeps objects and keys.
	s2 := start(t, cfg)
	defer stop(t, s2)
	if s2.Credentials() != creds {
		t.Errorf("credentials after restart = %+v, want %+v", s2.Credentials(), creds)
	}
	if got := getObject(t, client(t, s2, creds.SecretKey), "octo-test", "dir/hello.txt"); !bytes.Equal(got, body) {
		t.Errorf("GetObject after restart = %q, want %q", got, body)
	}
}

func getObject(t *testing.T, mc *minio.Client, bucket, key string) []byte {
	t.Helper()
	obj, err := mc.GetObject(context.Background(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read object: %v", err)
	}
	return b
}

func TestStartPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := config.Default(t.TempDir())
	cfg.S3Port = ln.Addr().(*net.TCPAddr).Port

	s := New(cfg, nil)
	err = s.Start(context.Background())
	if err == nil {
		s.Stop(context.Background())
		t.Fatal("Start succeeded on a busy port")
	}
	t.Logf("error: %v", err)
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.HasPrefix(err.Error(), "S3 store: ") ||
		!strings.Contains(err.Error(), config.Addr(cfg.S3Port)) {
		t.Errorf("error = %q, want an S3 store error wrapping EADDRINUSE naming the address", err)
	}
}

func TestLoadCredentialsMissing(t *testing.T) {
	_, err := LoadCredentials(config.Default(t.TempDir()))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadCredentials in an empty dir = %v, want os.ErrNotExist", err)
	}
}
