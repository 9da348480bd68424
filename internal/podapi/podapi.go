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
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/tail"
	"github.com/octohq/octo/internal/workerd"
)

// Options configure a Server.
type Options struct {
	// Host is the listen address; empty means config.BridgeIP.
	Host string
	// Port is the listen port; the workerd configs must use the same.
	Port int
	// KV is the store behind the KV protocol; nil answers 503 to KV requests.
	KV *store.KV
	// Tail collects the trace events of the tail Workers; nil drops them.
	Tail *tail.Hub
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
	s := &Server{addr: net.JoinHostPort(host, strconv.Itoa(opts.Port)), log: log}
	if opts.KV != nil {
		s.kv = KVProtocol(opts.KV, log)
	}
	if opts.Tail != nil {
		s.tail = opts.Tail.Collector()
	}
	return s
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
		case r.Header.Get(workerd.KVHeader) != "":
			if s.kv == nil {
				http.Error(w, "KV is not available", http.StatusServiceUnavailable)
				return
			}
			s.kv.ServeHTTP(w, r)
		case strings.HasPrefix(r.URL.Path, tail.Path) && r.Method == http.MethodPost:
			if s.tail == nil {
				w.WriteHeader(http.StatusNoContent) // nobody tails; drop
				return
			}
			s.tail.ServeHTTP(w, r)
		case r.URL.Path == "/healthz":
			_, _ = w.Write([]byte("ok"))
		default:
			http.Error(w, "octo pod API: unknown request "+r.Method+" "+r.URL.Path+
				" (KV requests carry "+workerd.KVHeader+"; trace items are POSTed to "+tail.Path+"<service>)", http.StatusNotFound)
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
