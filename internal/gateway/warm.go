package gateway

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/warmstart"
)

// The warm start (docs/adr/0015-warm-start.md). After `octo up` on a data
// dir with Workers, the kubelet starts every bundle pod again, which takes
// seconds of CPU per pod. Until the pods serve, a version that the
// warm-start hosts hold (warmstart.Hosts, outside Kubernetes, loaded from
// the snapshot `octo down` saved) is served by the host that holds it,
// even once its own pod runs: the pods yield the CPU to everything else
// until the hosts retire, so a pod's first answers would wait on the
// kubelet starting the others. Once every pod serves, the hosts stop;
// their sockets go with them, and pick finds the pods.

// Warm is where the warm-start hosts serve, and what.
type Warm struct {
	// Sockets are the hosts' unix sockets, in warmstart.HostIndex order.
	Sockets []string
	// Entries are the versions the hosts hold (warmstart.Snapshot.Entries).
	Entries []warmstart.Entry
}

// warmKey is a version the hosts hold, under its account and script.
type warmKey struct{ account, script, version string }

// pickWarm returns a target on the warm-start host that holds the version
// the newest deployment picks, or nil when no host holds it or the hosts
// are gone.
func (g *Gateway) pickWarm(a store.Account, script string, deployments [][]apiv1.VersionTraffic) *target {
	if len(g.warmSockets) == 0 || g.warmGone.Load() || len(deployments) == 0 || len(deployments[0]) == 0 {
		return nil
	}
	version := g.pickVersion(deployments[0])
	if !g.warmHeld[warmKey{a.ID, script, version}] {
		return nil
	}
	return g.warmTarget(a.ID, script, version)
}

// warmTarget returns a target on the warm-start host of a version the
// hosts hold, or nil once they are gone.
func (g *Gateway) warmTarget(account, script, version string) *target {
	i := warmstart.HostIndex(version, len(g.warmSockets))
	if _, err := os.Stat(g.warmSockets[i]); err != nil {
		g.warmGone.Store(true) // retired, all at once: the pods serve
		return nil
	}
	return &target{script: script, primary: backend{pod: "warm-start", addr: warmstart.HostAddr(i), version: version,
		limit: apiv1.DefaultCPULimit, loaderScript: script, loaderAccount: account}}
}

// warmDialer reaches the warm-start hosts' addresses on their sockets, and
// the rest with next.
func (g *Gateway) warmDialer(next func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if len(g.warmSockets) == 0 {
		return next
	}
	return warmstart.Dialer(g.warmSockets, next)
}

// Starting is the gateway of a warm start while its cache syncs, which
// takes seconds with many Workers (StartGateway): it serves from the first
// moment the snapshot's Workers its hosts hold, and every other request
// once the synced gateway takes over (Serve), waiting for it up to
// Options.StartWait, MaxStartWaiters of them at most. Only hosts whose script the snapshot holds one
// version of, under an account subdomain it names, are served early: the
// rest (a gradual deployment, a version preview, anything newer than the
// snapshot) waits for the cache.
type Starting struct {
	early   *Gateway
	routes  map[subScript]warmstart.Entry
	wait    time.Duration
	waiters chan struct{} // MaxStartWaiters slots, as the synced gateway's
	ready   chan struct{}
	g       atomic.Pointer[Gateway]
}

// subScript is a Workers host: the first label under the subdomain.
type subScript struct{ sub, script string }

// NewStarting returns the gateway that serves opts.Warm while the cache
// syncs; opts needs neither readers nor pods.
func NewStarting(opts Options) *Starting {
	s := &Starting{early: New(opts), routes: map[subScript]warmstart.Entry{}, wait: opts.StartWait,
		waiters: make(chan struct{}, MaxStartWaiters), ready: make(chan struct{})}
	if opts.Warm == nil || len(opts.Warm.Sockets) == 0 {
		return s
	}
	versions := map[subScript]int{}
	for _, e := range opts.Warm.Entries {
		if e.Subdomain == "" {
			continue
		}
		k := subScript{strings.ToLower(e.Subdomain), e.Script}
		versions[k]++
		s.routes[k] = e
	}
	for k, n := range versions {
		if n > 1 {
			delete(s.routes, k) // a gradual deployment: its shares are in the cache
		}
	}
	return s
}

// Register implements edge.Registrar: Starting adds no echo route.
func (s *Starting) Register(*echo.Echo) {}

// Handles implements edge.HostHandler: the Workers hosts.
func (s *Starting) Handles(host string) bool { return s.early.Handles(host) }

// Serve hands every request over to g, the gateway of the synced cache.
func (s *Starting) Serve(g *Gateway) {
	s.g.Store(g)
	close(s.ready)
}

// ServeHTTP serves a snapshot's Worker from its host until the synced
// gateway takes over; other requests wait for that gateway.
func (s *Starting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g := s.g.Load(); g != nil {
		g.ServeHTTP(w, r)
		return
	}
	if first, sub, ok := scriptHost(r.Host, s.early.suffixes); ok {
		if e, ok := s.routes[subScript{sub, first}]; ok {
			if t := s.early.warmTarget(e.Account, e.Script, e.Version); t != nil {
				version := e.Version
				w, observed := s.early.observe(w, r, e.Account, e.Script, &version)
				defer observed()
				s.early.forward(w, r, t)
				return
			}
		}
	}
	// At most MaxStartWaiters requests wait; the others are told at once.
	select {
	case s.waiters <- struct{}{}:
		defer func() { <-s.waiters }()
	default:
		startingUnavailable(w)
		return
	}
	timer := time.NewTimer(s.wait)
	defer timer.Stop()
	select {
	case <-s.ready:
		s.g.Load().ServeHTTP(w, r)
	case <-timer.C:
		startingUnavailable(w)
	case <-r.Context().Done():
	}
}

// startingUnavailable answers a request Starting cannot serve yet.
func startingUnavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	text(w, http.StatusServiceUnavailable, "octo is starting; retry in a moment")
}
