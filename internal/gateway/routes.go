package gateway

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	toolscache "k8s.io/client-go/tools/cache"

	"github.com/octohq/octo/internal/store"
)

// Changes counts the changes of the pods and of the WorkerReleases and
// WorkerVersions the gateway routes by. While a count stays the same, the
// gateway reuses what it computed from those objects (an account's ready
// pods, a host's deployments) instead of reading the cache on every
// request. ClusterOptions feeds it from the informers; a Gateway without
// Changes reads on every request.
type Changes struct {
	pods, releases atomic.Uint64
}

// PodsChanged records a change of a pod.
func (c *Changes) PodsChanged() { c.pods.Add(1) }

// ReleasesChanged records a change of a WorkerRelease or WorkerVersion.
func (c *Changes) ReleasesChanged() { c.releases.Add(1) }

// handler counts every event of an informer with count.
func handler(count func()) toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { count() },
		UpdateFunc: func(any, any) { count() },
		DeleteFunc: func(any) { count() },
	}
}

// routes memoises, per change count, an account's ready pods and what a
// host's first label resolves to.
type routes struct {
	mu       sync.RWMutex
	pods     map[accountKey]podsEntry
	resolved map[hostKey]resolveEntry
}

type accountKey struct{ namespace, id string }

type hostKey struct {
	account accountKey
	first   string
}

type podsEntry struct {
	gen  uint64
	pods []pod
	// starting: a local pod may start serving before the next change
	// (early.go), so the entry is recomputed after earlyRecheck.
	starting bool
	at       time.Time
}

type resolveEntry struct {
	gen   uint64
	route route
	err   error
}

// maxRoutes bounds each memo table; past it, the table starts over.
const maxRoutes = 8192

// cachedReadyPods is readyPods, memoised while no pod changes.
func (g *Gateway) cachedReadyPods(ctx context.Context, a store.Account) ([]pod, error) {
	if g.changes == nil {
		pods, _, err := g.readyPods(ctx, a)
		return pods, err
	}
	key := accountKey{a.Namespace, a.ID}
	gen := g.changes.pods.Load()
	g.routes.mu.RLock()
	e, ok := g.routes.pods[key]
	g.routes.mu.RUnlock()
	if ok && e.gen == gen && (!e.starting || time.Since(e.at) < earlyRecheck) {
		return e.pods, nil
	}
	now := time.Now()
	pods, starting, err := g.readyPods(ctx, a)
	if err != nil {
		return nil, err
	}
	g.routes.mu.Lock()
	if len(g.routes.pods) >= maxRoutes {
		clear(g.routes.pods)
	}
	g.routes.pods[key] = podsEntry{gen: gen, pods: pods, starting: starting, at: now}
	g.routes.mu.Unlock()
	return pods, nil
}

// cachedResolve is resolve, memoised while no release or version changes.
func (g *Gateway) cachedResolve(ctx context.Context, a store.Account, first string) (route, error) {
	if g.changes == nil {
		return g.resolve(ctx, a, first)
	}
	key := hostKey{accountKey{a.Namespace, a.ID}, first}
	gen := g.changes.releases.Load()
	g.routes.mu.RLock()
	e, ok := g.routes.resolved[key]
	g.routes.mu.RUnlock()
	if ok && e.gen == gen {
		return e.route, e.err
	}
	r, err := g.resolve(ctx, a, first)
	var nf notFoundError
	if err != nil && !errors.As(err, &nf) {
		return r, err // not memoised: may pass
	}
	g.routes.mu.Lock()
	if len(g.routes.resolved) >= maxRoutes {
		clear(g.routes.resolved)
	}
	g.routes.resolved[key] = resolveEntry{gen: gen, route: r, err: err}
	g.routes.mu.Unlock()
	return r, err
}
