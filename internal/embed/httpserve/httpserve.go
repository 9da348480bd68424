// Package httpserve runs an http.Handler on a listener with the embedded
// components' lifecycle: serve in the background, wait for a health URL,
// shut down with a short grace period.
package httpserve

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/octohq/octo/internal/embed/healthz"
)

// Server is an HTTP server of one component.
type Server struct {
	srv  *http.Server
	done chan error
}

// Serve serves h on ln in a goroutine, with header and idle timeouts.
func (s *Server) Serve(ln net.Listener, h http.Handler) {
	s.ServeWith(ln, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute})
}

// ServeWith serves srv, configured by the caller (handler, timeouts,
// limits), on ln in a goroutine.
func (s *Server) ServeWith(ln net.Listener, srv *http.Server) {
	s.srv = srv
	s.done = make(chan error, 1)
	go func() { s.done <- s.srv.Serve(ln) }()
}

// Started reports whether Serve or ServeWith ran.
func (s *Server) Started() bool { return s.srv != nil }

// Ready waits until url answers 200 or the server stops.
func (s *Server) Ready(ctx context.Context, url string) error {
	return s.ReadyWith(ctx, healthz.Client(nil), url)
}

// ReadyWith is Ready with the caller's client (e.g. one that dials a unix
// socket).
func (s *Server) ReadyWith(ctx context.Context, client *http.Client, url string) error {
	return healthz.Poll(ctx, client, url, healthz.Exited(s.done))
}

// Stop lets requests in flight finish for up to 2 s, then closes the rest.
func (s *Server) Stop(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return s.srv.Close()
}
