// Package podapi serves, on the pod bridge address, what workerd pods call
// on the host: KV and the tail collector.
//
// The workerd config of every bundle reaches it at 10.42.0.1:<port>:
// kvNamespace bindings are external HTTP services whose requests carry
// x-octo-kv: <accountID>/<namespaceID>, and the "octo-tail" worker POSTs
// trace items to /tail/<service name>. It listens on the bridge only, so it
// is reachable from pods and the host, not from the network.
package podapi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed/httpserve"
)

// KVHeader is the header that marks a KV protocol request (the value is
// "<accountID>/<namespaceID>"); it matches fakecf.KVHeader.
const KVHeader = "x-octo-kv"

// TailPath is the collector's path prefix; it matches tail.Path.
const TailPath = "/tail/"

// Options configure a Server.
type Options struct {
	// Host is the listen address; empty means config.BridgeIP.
	Host string
	// Port is the listen port; the workerd configs must use the same.
	Port int
	// KV serves the KV protocol (fakecf.Server.KVProtocolHandler).
	KV http.Handler
	// Tail is the tail collector (tail.Hub.Collector).
	Tail http.Handler
	Log  *slog.Logger
}

// Server is the pod-facing component.
type Server struct {
	addr string
	kv   http.Handler
	tail http.Handler
	log  *slog.Logger
	http httpserve.Server
}

// New returns the pod-facing server.
func New(opts Options) *Server {
	host := opts.Host
	if host == "" {
		host = config.BridgeIP
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{addr: net.JoinHostPort(host, strconv.Itoa(opts.Port)), kv: opts.KV, tail: opts.Tail, log: log}
}

// Name implements embed.Component.
func (s *Server) Name() string { return "pod-api" }

// Endpoint implements embed.Endpointer.
func (s *Server) Endpoint() string { return "http://" + s.addr }

// Handler routes the pods' requests: x-octo-kv → KV, POST /tail/* → the
// collector, GET /healthz.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get(KVHeader) != "":
			if s.kv == nil {
				http.Error(w, "KV is not available", http.StatusServiceUnavailable)
				return
			}
			s.kv.ServeHTTP(w, r)
		case strings.HasPrefix(r.URL.Path, TailPath) && r.Method == http.MethodPost:
			if s.tail == nil {
				w.WriteHeader(http.StatusNoContent) // nobody tails; drop
				return
			}
			s.tail.ServeHTTP(w, r)
		case r.URL.Path == "/healthz":
			_, _ = w.Write([]byte("ok"))
		default:
			http.Error(w, "octo pod API: unknown request "+r.Method+" "+r.URL.Path+
				" (KV requests carry "+KVHeader+"; trace items are POSTed to "+TailPath+"<service>)", http.StatusNotFound)
		}
	})
}

// Start listens on the bridge address; the bridge (cni0) must exist, which
// the pod network component ensures.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen on %s (is the pod bridge up?): %w", s.addr, err)
	}
	s.http.Serve(ln, s.Handler())
	return nil
}

// Ready waits for /healthz.
func (s *Server) Ready(ctx context.Context) error {
	return s.http.Ready(ctx, s.Endpoint()+"/healthz")
}

// Stop shuts the server down.
func (s *Server) Stop(ctx context.Context) error { return s.http.Stop(ctx) }
