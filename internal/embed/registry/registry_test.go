package registry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed"
)

var (
	_ embed.Component  = (*Server)(nil)
	_ embed.Endpointer = (*Server)(nil)
)

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start starts a Server for cfg and waits until it is ready.
func start(t *testing.T, cfg config.Config, logger *slog.Logger) *Server {
	t.Helper()
	s := New(cfg, logger)
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

// TestServer pushes an image, pulls it back, restarts the registry on the
// same data dir and finds the image again. It also checks that the registry
// logs through the component's logger and never through logrus' global one
// (see logContext).
func TestServer(t *testing.T) {
	var global syncBuffer
	std := logrus.StandardLogger()
	oldOut, oldLevel := std.Out, std.GetLevel()
	std.SetOutput(&global)
	std.SetLevel(logrus.DebugLevel)
	t.Cleanup(func() { std.SetOutput(oldOut); std.SetLevel(oldLevel) })

	var own syncBuffer
	logger := slog.New(slog.NewTextHandler(&own, &slog.HandlerOptions{Level: slog.LevelDebug}))

	cfg := config.Default(t.TempDir())
	cfg.RegistryPort = freePort(t)
	s := start(t, cfg, logger)
	if got, want := s.Endpoint(), "http://"+config.Addr(cfg.RegistryPort); got != want {
		t.Errorf("Endpoint() = %q, want %q", got, want)
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	ref, err := name.ParseReference(cfg.RegistryAddr()+"/octo/test:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithTransport(tr)); err != nil {
		t.Fatalf("push: %v", err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	pull := func() v1.Hash {
		t.Helper()
		got, err := remote.Image(ref, remote.WithTransport(tr))
		if err != nil {
			t.Fatalf("pull: %v", err)
		}
		d, err := got.Digest()
		if err != nil {
			t.Fatal(err)
		}
		layers, err := got.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatalf("read layer: %v", err)
			}
			rc.Close()
		}
		return d
	}
	if got := pull(); got != want {
		t.Errorf("pulled digest %v, want %v", got, want)
	}
	// Idle client connections would hold Shutdown for its grace period.
	tr.CloseIdleConnections()
	stop(t, s)

	s2 := start(t, cfg, logger)
	if got := pull(); got != want {
		t.Errorf("digest after restart %v, want %v", got, want)
	}
	tr.CloseIdleConnections()
	stop(t, s2)

	if g := global.String(); g != "" {
		t.Errorf("registry logged through the global logrus logger:\n%s", g)
	}
	if o := own.String(); !strings.Contains(o, "response completed") {
		t.Errorf("registry request logs did not reach the component's logger:\n%s", o)
	}
	if o := own.String(); strings.Contains(o, "level=ERROR") {
		t.Errorf("a push logged errors:\n%s", o)
	}
}

func TestStartPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := config.Default(t.TempDir())
	cfg.RegistryPort = ln.Addr().(*net.TCPAddr).Port

	s := New(cfg, nil)
	err = s.Start(context.Background())
	if err == nil {
		s.Stop(context.Background())
		t.Fatal("Start succeeded on a busy port")
	}
	t.Logf("error: %v", err)
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.HasPrefix(err.Error(), "OCI registry: ") ||
		!strings.Contains(err.Error(), cfg.RegistryAddr()) {
		t.Errorf("error = %q, want an OCI registry error wrapping EADDRINUSE naming the address", err)
	}
}

func TestStopOnContextDone(t *testing.T) {
	cfg := config.Default(t.TempDir())
	cfg.RegistryPort = freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	s := New(cfg, nil)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	if err := s.Ready(rctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("server still serving after its context was cancelled")
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Errorf("Stop after cancel: %v", err)
	}
}
