// Package s3 runs octo's S3 store: the versitygw gateway with its posix
// backend, in-process, on 127.0.0.1.
//
// Objects live as plain files under <data dir>/s3/data/<bucket>/<key>; their
// metadata lives in a sidecar tree under <data dir>/s3/meta. The root
// credentials are generated on the first start and kept in
// config.S3CredentialsPath (see LoadCredentials).
//
// Process-wide effects, both imposed by versitygw v1.8.0:
//   - posix.New changes the working directory of the whole process to the
//     data dir and the backend resolves buckets relative to it from then on.
//     Nothing else in the process may chdir afterwards, and every path octo
//     uses must be absolute.
//   - Only one gateway may run at a time in a process: Start of a second
//     Server fails while the first runs. After Stop, a new Server can start
//     in the same process (checked with v1.8.0: embedgw only refuses
//     concurrent runs).
package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/versity/versitygw/backend/meta"
	"github.com/versity/versitygw/backend/posix"
	"github.com/versity/versitygw/embedgw"
	"github.com/versity/versitygw/s3api"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed/healthz"
)

// HealthPath is the unauthenticated path that answers 200 while the gateway
// serves. A bucket named like its segment ("healthz") is masked by it.
const HealthPath = "/healthz"

// Gateway limits. versitygw has no defaults for them when embedded.
const (
	maxConnections    = 10000
	maxRequests       = 1000
	multipartMaxParts = 10000
	// copyObjectThreshold is the largest CopyObject/UploadPartCopy source,
	// the S3 limit. Embedded versitygw defaults to 0, which refuses every
	// copy (and so breaks the registry's S3 driver).
	copyObjectThreshold = 5 << 30
	// requestTimeout bounds each request on a connection, from its headers
	// to the end of its response, and the idle wait for the next one (the
	// deadline stays until the next request moves it). It is long: the
	// registry streams image layers of gigabytes through the store.
	requestTimeout = 30 * time.Minute
)

// running is set while a Server of this process holds the gateway, from
// posix.New until RunVersityGW has returned. It is process-wide on purpose:
// versitygw allows one gateway per process, and a second posix.New would move
// the working directory out from under the running one.
var running atomic.Bool

// Server is the S3 store component. Create it with New.
type Server struct {
	cfg    config.Config
	log    *slog.Logger
	addr   string
	creds  Credentials
	cancel context.CancelFunc
	done   chan struct{} // closed when RunVersityGW has returned
	runErr error         // RunVersityGW's result, read after done is closed
}

// New returns the S3 store for cfg, listening on 127.0.0.1:cfg.S3Port. A nil
// logger discards logs.
func New(cfg config.Config, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: logger, addr: config.Addr(cfg.S3Port)}
}

// Name returns "s3".
func (s *Server) Name() string { return "s3" }

// Endpoint returns the store's URL, e.g. "http://127.0.0.1:9000".
func (s *Server) Endpoint() string { return "http://" + s.addr }

// Credentials returns the root credentials. They are known once Start has
// succeeded.
func (s *Server) Credentials() Credentials { return s.creds }

// Start prepares the data dirs and credentials and launches the gateway in a
// goroutine bound to ctx. It fails at once when the port is taken.
func (s *Server) Start(ctx context.Context) error {
	if s.done != nil {
		return errors.New("S3 store: already started")
	}
	dataDir, err := filepath.Abs(s.cfg.Path("s3", "data"))
	if err != nil {
		return fmt.Errorf("S3 store: data dir: %w", err)
	}
	metaDir, err := filepath.Abs(s.cfg.Path("s3", "meta"))
	if err != nil {
		return fmt.Errorf("S3 store: metadata dir: %w", err)
	}
	// versitygw rejects a sidecar dir whose path string-prefixes the root.
	if strings.HasPrefix(metaDir, dataDir) {
		return fmt.Errorf("S3 store: metadata dir %s must not start with data dir %s", metaDir, dataDir)
	}
	for _, d := range []string{dataDir, metaDir} {
		if err := mkdirAll(d); err != nil {
			return fmt.Errorf("S3 store: %w", err)
		}
	}
	creds, err := ensureCredentials(s.cfg)
	if err != nil {
		return fmt.Errorf("S3 store: %w", err)
	}

	// versitygw binds its own listener inside RunVersityGW and reports a busy
	// port only from there; probe it here so Start fails fast and clearly.
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("S3 store: %w", err)
	}
	if err := ln.Close(); err != nil {
		return fmt.Errorf("S3 store: release probe listener: %w", err)
	}

	if !running.CompareAndSwap(false, true) {
		return errors.New("S3 store: another S3 store is running in this process")
	}
	ms, err := meta.NewSideCar(metaDir)
	if err != nil {
		running.Store(false)
		return fmt.Errorf("S3 store: metadata dir %s: %w", metaDir, err)
	}
	// posix.New calls os.Chdir(dataDir) for the whole process and the
	// backend works with paths relative to it afterwards. The previous
	// working directory is deliberately not restored: doing so makes new
	// buckets land under the old directory.
	be, err := posix.New(dataDir, ms, posix.PosixOpts{
		SideCarDir:          metaDir,
		CopyObjectThreshold: copyObjectThreshold,
	})
	if err != nil {
		running.Store(false)
		return fmt.Errorf("S3 store: open posix backend %s: %w", dataDir, err)
	}

	gwCfg := &embedgw.Config{
		RootUserAccess:    creds.AccessKey,
		RootUserSecret:    creds.SecretKey,
		Region:            creds.Region,
		Ports:             []string{s.addr},
		MaxConnections:    maxConnections,
		MaxRequests:       maxRequests,
		MultipartMaxParts: multipartMaxParts,
		HealthPath:        HealthPath,
		KeepAlive:         true,
		Quiet:             true,
		S3Options:         []s3api.Option{s3api.WithMiddleware("/", connDeadline(requestTimeout))},
	}
	runCtx, cancel := context.WithCancel(ctx)
	s.creds, s.cancel, s.done = creds, cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		defer running.Store(false)
		err := embedgw.RunVersityGW(runCtx, be, gwCfg)
		// RunVersityGW releases the backend itself, except when it fails
		// before serving; closing it again is harmless.
		be.Shutdown()
		if err != nil {
			s.runErr = fmt.Errorf("S3 store: %w", err)
			s.log.Error("S3 store stopped", "err", err)
		}
	}()
	s.log.Info("S3 store starting", "endpoint", s.Endpoint(), "data", dataDir)
	return nil
}

// connDeadline sets the connection's deadline to d from now at every
// request. versitygw v1.8.0 builds its fasthttp server with no read, write
// or idle timeout and offers no option for them; with none, fasthttp never
// touches a connection's deadlines, so this one bounds the request's body,
// its response and the keep-alive wait after it. The headers of a
// connection's first request stay unbounded: MaxConnections caps those.
func connDeadline(d time.Duration) fiber.Handler {
	return func(c fiber.Ctx) error {
		if conn := c.RequestCtx().Conn(); conn != nil {
			_ = conn.SetDeadline(time.Now().Add(d))
		}
		return c.Next()
	}
}

// Ready blocks until the gateway answers on HealthPath, the gateway fails or
// ctx is done.
func (s *Server) Ready(ctx context.Context) error {
	if s.done == nil {
		return errors.New("S3 store: not started")
	}
	exited := func() error {
		select {
		case <-s.done:
			if s.runErr != nil {
				return s.runErr
			}
			return errors.New("S3 store: gateway exited before it was ready")
		default:
			return nil
		}
	}
	if err := healthz.Poll(ctx, healthz.Client(nil), s.Endpoint()+HealthPath, exited); err != nil {
		return fmt.Errorf("S3 store: %w", err)
	}
	return nil
}

// mkdirAll creates dir and its parents, private to the user.
func mkdirAll(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}

// Stop cancels the gateway and waits until it has shut down or ctx is done.
// It returns the gateway's error if it failed while running.
func (s *Server) Stop(ctx context.Context) error {
	if s.done == nil {
		return nil
	}
	s.cancel()
	select {
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("S3 store: wait for shutdown: %w", ctx.Err())
	}
	s.log.Info("S3 store stopped")
	return s.runErr
}
