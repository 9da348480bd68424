// Package podapi serves, on the pod bridge address, what workerd pods call
// on the host: KV, R2, D1, the tail collector, and the code of new versions
// for the loader host of every bundle pod (GET /code/<script>/<version>).
//
// The workerd config of every bundle reaches it at 10.42.0.1:<port>:
// kvNamespace bindings are external HTTP services whose requests carry
// x-octo-kv: <accountID>/<namespaceID>, and the "octo-tail" worker POSTs
// trace items to /tail/<service name> with x-octo-account: <accountID>. It
// listens on the bridge only, so it is reachable from pods and the host, not
// from the network.
//
// Every KV and collector request must come from a pod address and carry, in
// x-octo-auth, the pod credential of the account it names (see Key): the
// builder writes it into the bundle's config as a static header of those
// services, so a pod acts as its own account only. Anything else is refused
// with 403 before the body is read.
package podapi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed/httpserve"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/tail"
	"github.com/octohq/octo/internal/workerd"
)

// Timeouts of the pod API's HTTP server: a client that sends its request
// or reads its answer too slowly is cut off instead of holding a
// connection and its buffers. The pods are on a local bridge, where a
// 25 MiB KV value takes milliseconds.
const (
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout = 5 * time.Second
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout = 30 * time.Second
	// WriteTimeout bounds a request from the end of its headers to the end
	// of the answer (S3 reads included).
	WriteTimeout = time.Minute
	// IdleTimeout closes kept-alive connections left idle.
	IdleTimeout = 2 * time.Minute
	// MaxHeaderBytes bounds a request's headers (workerd sends a few
	// hundred bytes, KV metadata at most 1 KiB).
	MaxHeaderBytes = 64 << 10
)

// Options configure a Server.
type Options struct {
	// Host is the listen address; empty means config.BridgeIP.
	Host string
	// Port is the listen port; the workerd configs must use the same.
	Port int
	// Key checks the pods' credentials; nil refuses every KV and collector
	// request.
	Key *Key
	// KV is the store behind the KV protocol; nil answers 503 to KV requests.
	KV *store.KV
	// R2 is the store behind the R2 protocol; nil answers 503 to R2
	// requests.
	R2 *store.R2
	// D1 is the store behind the D1 protocol; nil answers 503 to D1
	// requests.
	D1 *store.D1
	// Tail collects the trace events of the tail Workers; nil drops them.
	Tail *tail.Hub
	// Code returns the code of a version for the loader hosts of the
	// account's pods (store.Store.LoaderCode); nil answers 503.
	Code CodeFunc
	// Assets reads the static assets behind assets bindings
	// (store.AssetFiles); nil answers 503.
	Assets store.AssetReader
	// Sources, when set, are the networks the pods call from (a cluster's
	// pod CIDRs); nil: the embedded cluster's pod network, bridge excluded.
	// Loopback is refused either way.
	Sources []netip.Prefix
	Log     *slog.Logger
}

// CodeFunc returns what the loader host needs to run version id of script
// in account (docs/adr/0007).
type CodeFunc func(ctx context.Context, account, script, id string) (workerd.LoaderCode, error)

// Server is the pod-facing component.
type Server struct {
	addr string
	key  *Key
	kv   http.Handler
	r2   http.Handler
	d1   http.Handler
	// assets serves assets bindings.
	assets http.Handler
	// tail collects the trace items of account's pods.
	tail func(w http.ResponseWriter, r *http.Request, account string)
	code CodeFunc
	// source admits the client address of KV and collector requests:
	// podSource (tests replace it to call from loopback).
	source func(netip.Addr) bool
	log    *slog.Logger

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
	s := &Server{addr: net.JoinHostPort(host, strconv.Itoa(opts.Port)), key: opts.Key, source: podSource, log: log, code: opts.Code}
	if opts.Sources != nil {
		s.source = sourceIn(opts.Sources)
	}
	if opts.KV != nil {
		s.kv = KVProtocol(opts.KV, log)
	}
	if opts.R2 != nil {
		s.r2 = R2Protocol(opts.R2, log)
	}
	if opts.D1 != nil {
		s.d1 = D1Protocol(opts.D1, log)
	}
	if opts.Tail != nil {
		s.tail = opts.Tail.Collect
	}
	if opts.Assets != nil {
		s.assets = AssetsBinding(opts.Assets, log)
	}
	return s
}

// Name implements embed.Component.
func (s *Server) Name() string { return "pod-api" }

// Endpoint implements embed.Endpointer.
func (s *Server) Endpoint() string { return "http://" + s.addr }

// Handler routes the pods' requests: x-octo-kv → KV, x-octo-r2 → R2,
// x-octo-d1 → D1, POST /tail/* → the collector, GET /code/* → a version's
// code for the loader host, GET /healthz. All but /healthz are
// authenticated first (see authenticate).
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get(workerd.KVHeader) != "":
			s.serveStore(w, r, workerd.KVHeader, "KV", s.kv)
		case r.Header.Get(workerd.R2Header) != "":
			s.serveStore(w, r, workerd.R2Header, "R2", s.r2)
		case r.Header.Get(workerd.D1Header) != "":
			s.serveStore(w, r, workerd.D1Header, "D1", s.d1)
		case r.Header.Get(workerd.AssetsHeader) != "":
			s.serveStore(w, r, workerd.AssetsHeader, "Static assets", s.assets)
		case strings.HasPrefix(r.URL.Path, tail.Path) && r.Method == http.MethodPost:
			account := strings.TrimSpace(r.Header.Get(workerd.AccountHeader))
			if !s.authenticate(w, r, account) {
				return
			}
			if s.tail == nil {
				w.WriteHeader(http.StatusNoContent) // nobody tails; drop
				return
			}
			s.tail(w, r, account)
		case strings.HasPrefix(r.URL.Path, workerd.LoaderCodePath) && r.Method == http.MethodGet:
			account := strings.TrimSpace(r.Header.Get(workerd.AccountHeader))
			if !s.authenticate(w, r, account) {
				return
			}
			s.serveCode(w, r, account)
		case r.URL.Path == "/healthz":
			_, _ = w.Write([]byte("ok"))
		default:
			http.Error(w, "octo pod API: unknown request "+r.Method+" "+r.URL.Path+
				" (KV requests carry "+workerd.KVHeader+"; trace items are POSTed to "+tail.Path+"<service>)", http.StatusNotFound)
		}
	})
}

// serveStore serves a KV, R2 or D1 request, whose header names
// "<account>/<id>", with h once the account is authenticated; a nil h
// answers 503.
func (s *Server) serveStore(w http.ResponseWriter, r *http.Request, header, what string, h http.Handler) {
	account, _, _ := strings.Cut(strings.TrimSpace(r.Header.Get(header)), "/")
	if !s.authenticate(w, r, account) {
		return
	}
	if h == nil {
		http.Error(w, what+" is not available", http.StatusServiceUnavailable)
		return
	}
	h.ServeHTTP(w, r)
}

// authenticate admits a request that names account only when it comes from
// a pod address and carries the account's pod credential in
// workerd.AuthHeader; otherwise it answers 403, before reading the body.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, account string) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !s.source(ap.Addr()) {
		s.log.Warn("pod API request refused: not from a pod", "remote", r.RemoteAddr, "account", account, "method", r.Method, "path", r.URL.Path)
		http.Error(w, "octo pod API: requests are accepted from pods only", http.StatusForbidden)
		return false
	}
	if account == "" {
		http.Error(w, "octo pod API: the request names no account", http.StatusForbidden)
		return false
	}
	if !s.key.Verify(account, strings.TrimSpace(r.Header.Get(workerd.AuthHeader))) {
		s.log.Warn("pod API request refused: bad credential", "remote", r.RemoteAddr, "account", account, "method", r.Method, "path", r.URL.Path)
		http.Error(w, "octo pod API: missing or wrong "+workerd.AuthHeader+" credential for account "+strconv.Quote(account), http.StatusForbidden)
		return false
	}
	return true
}

// httpServer is the server Start runs: with timeouts, so that slow clients
// cannot hold connections.
func (s *Server) httpServer() *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// Start listens on the bridge address; the bridge (cni0) must exist, which
// the pod network component ensures.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen on %s (is the pod bridge up?): %w", s.addr, err)
	}
	if s.key == nil {
		s.log.Warn("pod API has no key: every KV and tail request will be refused")
	}
	s.http.ServeWith(ln, s.httpServer())
	return nil
}

// Ready waits for /healthz.
func (s *Server) Ready(ctx context.Context) error {
	return s.http.Ready(ctx, s.Endpoint()+"/healthz")
}

// Stop lets requests in flight finish for up to 2 s, then closes the rest.
func (s *Server) Stop(ctx context.Context) error {
	if err := s.http.Stop(ctx); err != nil {
		return fmt.Errorf("stop pod API: %w", err)
	}
	return nil
}
