package registry

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/sirupsen/logrus"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed"
	"github.com/octohq/octo/internal/embed/embedtest"
)

var (
	_ embed.Component  = (*Server)(nil)
	_ embed.Endpointer = (*Server)(nil)
)

// freePort returns a loopback TCP port that was free a moment ago.

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

// basic is the registry credentials of cfg as a go-containerregistry option.
func basic(t *testing.T, cfg config.Config) remote.Option {
	t.Helper()
	rc, err := config.LoadRegistryCredentials(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return remote.WithAuth(&authn.Basic{Username: rc.Username, Password: rc.Password})
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
	cfg.RegistryPort = embedtest.FreePort(t)
	s := start(t, cfg, logger)
	if got, want := s.Endpoint(), "http://"+config.Addr(cfg.RegistryPort); got != want {
		t.Errorf("Endpoint() = %q, want %q", got, want)
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	auth := basic(t, cfg)
	ref, err := name.ParseReference(cfg.RegistryAddr()+"/octo/test:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithTransport(tr), auth); err != nil {
		t.Fatalf("push: %v", err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	pull := func() v1.Hash {
		t.Helper()
		got, err := remote.Image(ref, remote.WithTransport(tr), auth)
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
	if o := own.String(); strings.Contains(o, "level=ERROR") || strings.Contains(o, "level=WARN") {
		t.Errorf("a push logged errors or warnings:\n%s", o)
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
	cfg.RegistryPort = embedtest.FreePort(t)
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

// TestAuth checks that the registry refuses anonymous and wrongly
// authenticated pushes and pulls of every repository, storing nothing, and
// serves the holder of the generated credentials.
func TestAuth(t *testing.T) {
	cfg := config.Default(t.TempDir())
	cfg.RegistryPort = embedtest.FreePort(t)
	s := start(t, cfg, nil)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(func() { tr.CloseIdleConnections(); stop(t, s) })
	auth := basic(t, cfg)
	wrong := remote.WithAuth(&authn.Basic{Username: config.RegistryUser, Password: "guess"})
	if st, err := os.Stat(cfg.Path("registry", "htpasswd")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("htpasswd: %v, %v; want mode 0600", st, err)
	}

	const account = "0123456789abcdef0123456789abcdef"
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(cfg.RegistryAddr()+"/octo/accounts/"+account+":1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	unauthorized := func(what string, err error) {
		t.Helper()
		var terr *transport.Error
		if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %v, want 401", what, err)
		}
	}

	// Pushes without or with wrong credentials: 401, nothing stored.
	unauthorized("anonymous push", remote.Write(ref, img, remote.WithTransport(tr)))
	unauthorized("push with a wrong password", remote.Write(ref, img, remote.WithTransport(tr), wrong))
	stored := func() []string {
		t.Helper()
		var files []string
		err := filepath.WalkDir(cfg.Path("registry", "docker"), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				files = append(files, path)
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		return files
	}
	if files := stored(); len(files) != 0 {
		t.Fatalf("refused pushes stored %v", files)
	}

	// Every route, raw: a basic auth challenge, no content.
	layers, _ := img.Layers()
	layer, _ := layers[0].Digest()
	repo := "/v2/octo/accounts/" + account
	for _, rq := range [][2]string{
		{http.MethodGet, "/v2/"},
		{http.MethodGet, "/v2/_catalog"},
		{http.MethodPost, "/v2/octo/workerd/blobs/uploads/"},
		{http.MethodPut, "/v2/octo/workerd/manifests/latest"},
		{http.MethodGet, repo + "/tags/list"},
		{http.MethodGet, repo + "/manifests/1"},
		{http.MethodGet, repo + "/manifests/" + digest.String()},
		{http.MethodHead, repo + "/blobs/" + layer.String()},
		{http.MethodDelete, repo + "/manifests/" + digest.String()},
	} {
		req, err := http.NewRequest(rq[0], s.Endpoint()+rq[1], strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Basic realm="octo"` {
			t.Errorf("anonymous %s %s: %s, WWW-Authenticate %q; want 401 and a basic challenge",
				rq[0], rq[1], resp.Status, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if files := stored(); len(files) != 0 {
		t.Fatalf("refused requests stored %v", files)
	}

	// With the credentials: push and pull work.
	if err := remote.Write(ref, img, remote.WithTransport(tr), auth); err != nil {
		t.Fatalf("authenticated push: %v", err)
	}
	got, err := remote.Image(ref, remote.WithTransport(tr), auth)
	if err != nil {
		t.Fatalf("authenticated pull: %v", err)
	}
	if d, _ := got.Digest(); d != digest {
		t.Errorf("pulled %v, want %v", d, digest)
	}

	// The account's image is not readable without them.
	_, err = remote.Image(ref, remote.WithTransport(tr))
	unauthorized("anonymous pull", err)
	_, err = remote.Image(ref.Context().Digest(digest.String()), remote.WithTransport(tr))
	unauthorized("anonymous pull by digest", err)
	_, err = remote.Image(ref, remote.WithTransport(tr), wrong)
	unauthorized("pull with a wrong password", err)
	_, err = remote.List(ref.Context(), remote.WithTransport(tr))
	unauthorized("anonymous tag list", err)
	rc, err := remote.Layer(ref.Context().Digest(layer.String()), remote.WithTransport(tr))
	if err == nil {
		_, err = rc.Compressed()
	}
	unauthorized("anonymous blob read", err)
}
