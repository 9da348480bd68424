// Package edge is octo's one loopback HTTP port for humans and tools: the
// Cloudflare API under /client/v4 (wrangler), the dashboard, and the Workers
// gateway selected by Host. It mounts whatever Registrars it is given.
package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed/httpserve"
)

// Registrar adds routes to the edge server.
type Registrar interface {
	Register(e *echo.Echo)
}

// ErrorRenderer is implemented by registrars that render errors of the
// routes under their path prefix themselves (the API's JSON envelope).
type ErrorRenderer interface {
	ErrorPrefix() string
	RenderError(err error, c echo.Context)
}

// HostHandler is implemented by registrars that serve whole hosts (the
// Workers gateway): the edge sends requests whose Host they handle to them
// before echo sees them.
type HostHandler interface {
	Handles(host string) bool
	http.Handler
}

// timeouts bound the edge's connections. Requests that stream lift the
// read and write deadlines (see lift): WebSocket upgrades, Server-Sent
// Events and every request for a Worker, whose response may stream as long
// as the client stays.
type timeouts struct {
	// ReadHeader bounds the request line and headers.
	ReadHeader time.Duration
	// Read bounds the whole request, body included.
	Read time.Duration
	// Write bounds the handling of a request, from its headers to the end
	// of the response.
	Write time.Duration
	// Idle bounds a keep-alive connection between requests.
	Idle time.Duration
	// BodyIdle bounds each read of a streamed request body (a Worker's).
	BodyIdle time.Duration
}

// defaultTimeouts are the edge's timeouts: enough for a 100 MiB KV bulk
// write or a script upload over a slow link, short enough that a stalled
// client does not hold a connection for long.
func defaultTimeouts() timeouts {
	return timeouts{
		ReadHeader: 10 * time.Second,
		Read:       5 * time.Minute,
		Write:      5 * time.Minute,
		Idle:       2 * time.Minute,
		BodyIdle:   2 * time.Minute,
	}
}

// Server is the edge component.
type Server struct {
	name     string
	network  string // "tcp" or "unix"
	addr     string
	log      *slog.Logger
	parts    []Registrar
	timeouts timeouts
	http     httpserve.Server
}

// New returns the edge server on 127.0.0.1:port, serving parts.
func New(port int, log *slog.Logger, parts ...Registrar) *Server {
	return NewTCP("edge", config.Addr(port), log, parts...)
}

// NewTCP returns an edge server named name on addr (host:port), serving
// parts.
func NewTCP(name, addr string, log *slog.Logger, parts ...Registrar) *Server {
	return &Server{name: name, network: "tcp", addr: addr, log: log, parts: parts, timeouts: defaultTimeouts()}
}

// NewUnix returns an edge server named name on the unix socket path (mode
// 0600), serving parts: the daemon's API and dashboard behind the gateway
// process, which owns the loopback port (see Upstream).
func NewUnix(name, path string, log *slog.Logger, parts ...Registrar) *Server {
	return &Server{name: name, network: "unix", addr: path, log: log, parts: parts, timeouts: defaultTimeouts()}
}

// newHTTPServer is the edge's http.Server: every timeout set.
func newHTTPServer(h http.Handler, t timeouts, log *slog.Logger) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
	}
	if log != nil {
		srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	}
	return srv
}

// Name implements embed.Component.
func (s *Server) Name() string { return s.name }

// Endpoint implements embed.Endpointer.
func (s *Server) Endpoint() string {
	if s.network == "unix" {
		return "unix:" + s.addr
	}
	return "http://" + s.addr
}

// Start builds the routes and listens.
func (s *Server) Start(ctx context.Context) error {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Use(middleware.Recover())
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	var renderers []ErrorRenderer
	var hosts []HostHandler
	for _, p := range s.parts {
		p.Register(e)
		if r, ok := p.(ErrorRenderer); ok {
			renderers = append(renderers, r)
		}
		if h, ok := p.(HostHandler); ok {
			hosts = append(hosts, h)
		}
	}
	e.HTTPErrorHandler = errorHandler(e, renderers)
	ln, err := s.listen()
	if err != nil {
		return err
	}
	s.http.ServeWith(ln, newHTTPServer(byHost(e, hosts, s.timeouts.BodyIdle), s.timeouts, s.log))
	return nil
}

// byHost sends the hosts a HostHandler handles to it, everything else to e.
// Requests that stream have their deadlines lifted first.
func byHost(e http.Handler, hosts []HostHandler, bodyIdle time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range hosts {
			if h.Handles(r.Host) {
				h.ServeHTTP(w, lift(w, r, bodyIdle))
				return
			}
		}
		if streams(r) {
			r = lift(w, r, bodyIdle)
		}
		e.ServeHTTP(w, r)
	})
}

// streams reports whether a request for the edge's own routes may last: a
// WebSocket upgrade (`wrangler tail`) or an event stream (the dashboard's
// live tail, which EventSource asks for with Accept: text/event-stream).
func streams(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" ||
		strings.Contains(r.Header.Get("Accept"), "text/event-stream") ||
		strings.HasPrefix(r.URL.Path, "/dashboard/api/tail/")
}

// lift clears the server's write deadline, so that the response may stream
// (a hijacked connection keeps it otherwise), and replaces the read
// deadline: none once the body is read (the server's background read would
// otherwise cancel the request when it passes), bodyIdle for each read of
// the body before that.
func lift(w http.ResponseWriter, r *http.Request, bodyIdle time.Duration) *http.Request {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	if r.Body == nil || r.Body == http.NoBody {
		_ = rc.SetReadDeadline(time.Time{})
		return r
	}
	_ = rc.SetReadDeadline(time.Now().Add(bodyIdle))
	r2 := new(http.Request)
	*r2 = *r
	r2.Body = &idleBody{ReadCloser: r.Body, ctx: r.Context(), rc: rc, idle: bodyIdle}
	return r2
}

// idleBody is a request body each read of which must progress within idle;
// at its end the read deadline goes. Once the request is over (a proxy may
// still read from another goroutine) it leaves the connection alone.
type idleBody struct {
	io.ReadCloser
	ctx  context.Context
	rc   *http.ResponseController
	idle time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	if b.ctx.Err() != nil {
		return b.ReadCloser.Read(p)
	}
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.ReadCloser.Read(p)
	if err != nil && b.ctx.Err() == nil {
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// errorHandler lets each renderer answer errors under its prefix (the API's
// envelope) and echo's default handler everything else.
func errorHandler(e *echo.Echo, renderers []ErrorRenderer) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		for _, r := range renderers {
			if strings.HasPrefix(c.Request().URL.Path, r.ErrorPrefix()) {
				r.RenderError(err, c)
				return
			}
		}
		e.DefaultHTTPErrorHandler(err, c)
	}
}

// listen opens the server's socket; a unix socket replaces a stale one
// and is readable by its owner only.
func (s *Server) listen() (net.Listener, error) {
	if s.network != "unix" {
		ln, err := net.Listen(s.network, s.addr)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		return ln, nil
	}
	return ListenUnix(s.addr)
}

// ListenUnix listens on the unix socket path, replacing a stale one, with
// mode 0600: only root reaches what the daemon serves there.
func ListenUnix(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	return ln, nil
}

// Ready waits for /healthz.
func (s *Server) Ready(ctx context.Context) error {
	if !s.http.Started() {
		return fmt.Errorf("%s: not started", s.name)
	}
	if s.network == "unix" {
		return s.http.ReadyWith(ctx, UnixClient(s.addr, time.Second), "http://"+unixHost+"/healthz")
	}
	return s.http.Ready(ctx, s.Endpoint()+"/healthz")
}

// Stop lets requests in flight finish for up to 2 s, then closes the rest
// (streams never finish on their own).
func (s *Server) Stop(ctx context.Context) error {
	if err := s.http.Stop(ctx); err != nil {
		return fmt.Errorf("%s: stop: %w", s.name, err)
	}
	return nil
}
