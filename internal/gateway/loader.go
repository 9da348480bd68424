package gateway

import (
	"context"
	"net/http"
	"time"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/assets"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
)

// The fast path of a redeploy (docs/adr/0007-fast-redeploy-with-the-worker-loader.md).
// A new deployment is served by a new pod once its image is built and the
// pod runs, 1–3 s after the upload. Until then, every bundle pod has a
// loader host (workerd.LoaderWorker) that can run a version it was not
// built with: pickLoader sends the new version's requests to the loader of
// the pod that serves the script's previous deployment, with the version in
// workerd.LoaderVersionHeader. Once a pod serves the new deployment
// statically, pickIn finds it first and the loader is no longer asked; the
// old pod, with the children it loaded, goes away with the rollout.
//
// Only redeploys take the fast path (the script's own pod rolls out next,
// which bounds what its loader holds), never preview hosts, and only
// versions the loader can run (workerd.Loadable: no KV, R2, D1 or service
// bindings yet).
//
// The loader host also runs the traced twins of the versions it can run
// (pickIn): the builder gives those no static twin, so a Worker costs one
// isolate at start, not two, and its twin is loaded only while someone
// tails it.

// pickLoader returns a target on the loader host of served's pod for the
// newest deployment, whose versions no pod serves yet, or nil when the fast
// path does not apply. served is what pickIn chose in an older deployment;
// it becomes the fallback should the load fail.
func (g *Gateway) pickLoader(ctx context.Context, a store.Account, script string, newest []apiv1.VersionTraffic, pods []pod, served *target, traced bool) *target {
	if g.noLoader {
		return nil
	}
	var p *pod
	for i := range pods {
		if pods[i].name == served.primary.pod {
			p = &pods[i]
			break
		}
	}
	if p == nil {
		return nil
	}
	port, ok := p.sockets[workerd.LoaderWorkerName]
	if !ok || !validPort(port) {
		return nil // an image built before the loader
	}
	version := g.pickVersion(newest)
	l := g.loadability(ctx, a, script, version)
	if !l.ok {
		return nil
	}
	g.announce(script, version, p.name)
	t := &target{script: script, primary: backend{pod: p.name, addr: p.addr(port), version: version, load: p.load,
		limit: l.cpuLimit, loaderScript: script}}
	if traced {
		t.primary.trace = workerd.ServiceName(script, version)
	}
	t.alts = append([]backend{served.primary}, served.alts...)
	return t
}

// loadability is what the gateway needs to know of a version for the
// loader: whether it can run it, and the version's CPU limit.
type loadability struct {
	ok       bool
	cpuLimit time.Duration
	// assets are the version's static assets (nil: none); code is false
	// for an assets-only version, which no pod runs.
	assets *apiv1.VersionAssets
	code   bool
	// assetsConfig is how assets are served, their _redirects and
	// _headers parsed once.
	assetsConfig assets.Config
}

// loadable reports whether the loader can run version id of script.
func (g *Gateway) loadable(ctx context.Context, a store.Account, script, id string) bool {
	return g.loadability(ctx, a, script, id).ok
}

// loadability reads version id of script (workerd.Loadable, its CPU
// limit), memoised. A version not in the cache yet is not loadable for now.
func (g *Gateway) loadability(ctx context.Context, a store.Account, script, id string) loadability {
	g.loadableMu.Lock()
	l, known := g.loadables[id]
	g.loadableMu.Unlock()
	if known {
		return l
	}
	versions, err := store.ReadVersions(ctx, g.reader, a, script)
	if err != nil {
		g.log.Warn("gateway: read versions", "script", script, "err", err)
		return loadability{}
	}
	for i := range versions {
		if versions[i].Spec.VersionID != id {
			continue
		}
		err := workerd.Loadable(&versions[i])
		if err != nil {
			g.log.Debug("gateway: version takes the slow path", "script", script, "version", id, "reason", err)
		}
		l = loadability{ok: err == nil, cpuLimit: versions[i].Spec.CPULimit(), assets: versions[i].Spec.Assets, code: len(versions[i].Spec.Modules) > 0}
		if a := l.assets; a != nil {
			l.assetsConfig = assetsConfig(a, g.log)
		}
		g.loadableMu.Lock()
		if len(g.loadables) >= maxRoutes {
			clear(g.loadables)
		}
		g.loadables[id] = l
		g.loadableMu.Unlock()
		return l
	}
	return loadability{}
}

// announce logs, once per version, that its pod's loader serves it.
func (g *Gateway) announce(script, version, pod string) {
	g.loadableMu.Lock()
	first := !g.announced[version]
	if first {
		if len(g.announced) >= maxRoutes {
			clear(g.announced)
		}
		g.announced[version] = true
	}
	g.loadableMu.Unlock()
	if first {
		g.log.Info("gateway: the loader serves a new version until its pod is ready", "script", script, "version", version, "pod", pod)
	}
}

// loaderHeaders sets, on a request to b, the loader's headers when b is a
// loader host, and removes them otherwise: no client chooses a version.
func loaderHeaders(h http.Header, b backend) {
	h.Del(workerd.LoaderTraceHeader)
	// Only octo's scheduler asks for a scheduled run (with the account's
	// credential too): a client's headers never do.
	h.Del(workerd.ScheduledCronHeader)
	h.Del(workerd.ScheduledTimeHeader)
	h.Del(workerd.AuthHeader)
	h.Del(workerd.LoaderPreloadHeader)
	h.Del(workerd.LoaderAccountHeader)
	if b.loaderAccount != "" {
		h.Set(workerd.LoaderAccountHeader, b.loaderAccount)
	}
	if b.loaderScript != "" {
		h.Set(workerd.LoaderVersionHeader, b.version)
		h.Set(workerd.LoaderScriptHeader, b.loaderScript)
		if b.trace != "" {
			h.Set(workerd.LoaderTraceHeader, b.trace)
		}
		return
	}
	h.Del(workerd.LoaderVersionHeader)
	h.Del(workerd.LoaderScriptHeader)
}

// validPort reports whether a sockets annotation's port can be dialled.
func validPort(port int) bool { return port > 0 && port < 65536 }

// loadFailed reports whether resp is a loader host's own answer that it
// could not load the version of t.
func loadFailed(t *target, resp *http.Response) bool {
	return t != nil && t.primary.loaderScript != "" && resp != nil &&
		resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get(workerd.LoaderFailedHeader) != ""
}
