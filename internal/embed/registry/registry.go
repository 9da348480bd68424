// Package registry runs octo's OCI registry: the CNCF distribution registry
// (v3) in-process, on 127.0.0.1, storing images on the filesystem under
// <data dir>/registry.
//
// The registry is built with handlers.NewApp and served by the package's own
// net/http server. Unlike registry.NewRegistry this leaves process-wide state
// alone: no global logrus settings, no OpenTelemetry tracer provider (the
// storage driver's spans go to the global provider, a no-op unless someone
// installs one), no global health checks and no signal handlers. The
// registry's logs are forwarded to the component's slog logger.
//
// Every request, pull or push, of every repository, and the /v2/ base route,
// needs HTTP basic auth with the credentials of config.EnsureRegistryCredentials
// (distribution's htpasswd access controller): the registry listens on
// loopback, where any local user could otherwise push code into the images
// that pods run, or read the accounts' images.
package registry

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd" // the "htpasswd" access controller
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the "filesystem" storage driver
	"golang.org/x/crypto/bcrypt"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed/healthz"
)

// shutdownGrace is how long Stop lets requests in flight finish before it
// closes the remaining connections. Connections that never sent a request
// count as active for 5 s in net/http, so a long grace only delays Stop.
const shutdownGrace = 2 * time.Second

// realm is the realm of the registry's basic auth challenge.
const realm = "octo"

// Server is the OCI registry component. Create it with New.
type Server struct {
	cfg      config.Config
	log      *slog.Logger
	addr     string
	creds    config.RegistryCredentials
	app      *handlers.App
	srv      *http.Server
	done     chan struct{} // closed when Serve has returned
	serveErr error         // Serve's error, read after done is closed
}

// New returns the registry for cfg, listening on cfg.RegistryAddr(). A nil
// logger discards logs.
func New(cfg config.Config, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: logger, addr: cfg.RegistryAddr()}
}

// Name returns "registry".
func (s *Server) Name() string { return "registry" }

// Endpoint returns the registry's URL, e.g. "http://127.0.0.1:5050".
func (s *Server) Endpoint() string { return "http://" + s.addr }

// Start binds the registry's port, fails at once when it is taken, and serves
// in a goroutine. When ctx is done the server closes, as by a Stop without
// grace period.
func (s *Server) Start(ctx context.Context) error {
	if s.done != nil {
		return errors.New("OCI registry: already started")
	}
	root, err := filepath.Abs(s.cfg.Path("registry"))
	if err != nil {
		return fmt.Errorf("OCI registry: storage dir: %w", err)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("OCI registry: create %s: %w", root, err)
	}
	creds, err := config.EnsureRegistryCredentials(s.cfg)
	if err != nil {
		return fmt.Errorf("OCI registry: %w", err)
	}
	htpasswd := filepath.Join(root, "htpasswd")
	if err := writeHTPasswd(htpasswd, creds); err != nil {
		return fmt.Errorf("OCI registry: %w", err)
	}
	s.creds = creds
	conf, err := newConfiguration(root, htpasswd)
	if err != nil {
		return fmt.Errorf("OCI registry: %w", err)
	}

	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("OCI registry: %w", err)
	}
	// Requests must not inherit ctx's deadline or cancellation: ending ctx
	// closes the server instead (below).
	logCtx := withLogger(context.WithoutCancel(ctx), s.log)
	app, err := newApp(logCtx, conf)
	if err != nil {
		ln.Close()
		return fmt.Errorf("OCI registry: %w", err)
	}
	s.app = app
	s.srv = &http.Server{
		Handler:           app,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return logCtx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.done = make(chan struct{})
	stopOnCancel := context.AfterFunc(ctx, func() { s.srv.Close() })
	go func() {
		defer stopOnCancel()
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.serveErr = fmt.Errorf("OCI registry: serve: %w", err)
			s.log.Error("OCI registry stopped", "err", err)
		}
	}()
	s.log.Info("OCI registry starting", "endpoint", s.Endpoint(), "storage", root)
	return nil
}

// writeHTPasswd writes the htpasswd file of creds (mode 0600). The bcrypt
// cost is the minimum: the registry checks the password on every request,
// and a 256-bit random password needs no key stretching.
func writeHTPasswd(path string, creds config.RegistryCredentials) error {
	hash, err := bcrypt.GenerateFromPassword([]byte(creds.Password), bcrypt.MinCost)
	if err != nil {
		return fmt.Errorf("hash registry password: %w", err)
	}
	if err := config.WriteFileAtomic(path, []byte(creds.Username+":"+string(hash)+"\n"), 0o600); err != nil {
		return fmt.Errorf("write htpasswd: %w", err)
	}
	return nil
}

// newConfiguration returns the registry's configuration: filesystem storage
// under root, no upload purging, an in-memory blob descriptor cache, basic
// auth against the htpasswd file.
func newConfiguration(root, htpasswd string) (*configuration.Configuration, error) {
	// The secret signs upload session state between requests. A new one
	// each start only invalidates uploads interrupted by a restart.
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("generate HTTP secret: %w", err)
	}
	conf := &configuration.Configuration{
		Version: configuration.MajorMinorVersion(0, 1),
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": root},
			// The purger would delete upload dirs older than a week, one hour
			// after start; octo does not run it.
			"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
			"cache":       configuration.Parameters{"blobdescriptor": "inmemory"},
		},
		Auth: configuration.Auth{"htpasswd": configuration.Parameters{"realm": realm, "path": htpasswd}},
	}
	// handlers.NewApp reads neither the log level nor the access log (only
	// registry.NewRegistry does); they are set so the configuration says
	// what octo does.
	conf.Log.Level = "error"
	conf.Log.AccessLog.Disabled = true
	conf.HTTP.Secret = string(secret)
	return conf, nil
}

// newApp is handlers.NewApp, turning its panics on bad configuration or
// unusable storage into an error.
func newApp(ctx context.Context, conf *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("create registry app: %v", r)
		}
	}()
	return handlers.NewApp(ctx, conf), nil
}

// Ready blocks until an authenticated GET /v2/ answers 200, the server fails
// or ctx is done.
func (s *Server) Ready(ctx context.Context) error {
	if s.done == nil {
		return errors.New("OCI registry: not started")
	}
	exited := func() error {
		select {
		case <-s.done:
			if s.serveErr != nil {
				return s.serveErr
			}
			return errors.New("OCI registry: server exited before it was ready")
		default:
			return nil
		}
	}
	client := healthz.Client(nil)
	client.Transport = basicAuth{next: client.Transport, creds: s.creds}
	if err := healthz.Poll(ctx, client, s.Endpoint()+"/v2/", exited); err != nil {
		return fmt.Errorf("OCI registry: %w", err)
	}
	return nil
}

// basicAuth adds the registry credentials to every request.
type basicAuth struct {
	next  http.RoundTripper
	creds config.RegistryCredentials
}

// RoundTrip sends a copy of req with basic auth.
func (t basicAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.SetBasicAuth(t.creds.Username, t.creds.Password)
	return t.next.RoundTrip(req)
}

// Stop lets requests in flight finish for a short grace period (bounded by
// ctx), closes what remains and releases the registry app.
func (s *Server) Stop(ctx context.Context) error {
	if s.done == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, shutdownGrace)
	defer cancel()
	var errs []error
	if err := s.srv.Shutdown(sctx); err != nil {
		// Grace period over: drop the remaining connections.
		if err := s.srv.Close(); err != nil {
			errs = append(errs, fmt.Errorf("OCI registry: close server: %w", err))
		}
	}
	<-s.done
	if err := s.app.Shutdown(); err != nil {
		errs = append(errs, fmt.Errorf("OCI registry: shut down app: %w", err))
	}
	errs = append(errs, s.serveErr)
	s.log.Info("OCI registry stopped")
	return errors.Join(errs...)
}
