// Package edge is octo's one loopback HTTP port for humans and tools: the
// Cloudflare API under /client/v4 (wrangler), the dashboard, and the Workers
// gateway selected by Host. It mounts whatever Registrars it is given.
package edge

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

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

// Server is the edge component.
type Server struct {
	addr  string
	log   *slog.Logger
	parts []Registrar
	http  httpserve.Server
}

// New returns the edge server on 127.0.0.1:port, serving parts.
func New(port int, log *slog.Logger, parts ...Registrar) *Server {
	return &Server{addr: config.Addr(port), log: log, parts: parts}
}

// Name implements embed.Component.
func (s *Server) Name() string { return "edge" }

// Endpoint implements embed.Endpointer.
func (s *Server) Endpoint() string { return "http://" + s.addr }

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
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s.http.Serve(ln, byHost(e, hosts))
	return nil
}

// byHost sends the hosts a HostHandler handles to it, everything else to e.
func byHost(e http.Handler, hosts []HostHandler) http.Handler {
	if len(hosts) == 0 {
		return e
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range hosts {
			if h.Handles(r.Host) {
				h.ServeHTTP(w, r)
				return
			}
		}
		e.ServeHTTP(w, r)
	})
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

// Ready waits for /healthz.
func (s *Server) Ready(ctx context.Context) error {
	return s.http.Ready(ctx, s.Endpoint()+"/healthz")
}

// Stop shuts the server down.
func (s *Server) Stop(ctx context.Context) error { return s.http.Stop(ctx) }
