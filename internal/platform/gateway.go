package platform

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/octohq/octo/internal/edge"
	"github.com/octohq/octo/internal/gateway"
	"github.com/octohq/octo/internal/metrics"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/tail"
	"github.com/octohq/octo/internal/warmstart"
)

// GatewayConfig configures the gateway role: the Workers gateway in a
// process of its own, serving a loopback port (see RunGateway).
type GatewayConfig struct {
	RestConfig *rest.Config
	// Listen is the address the gateway serves, host:port.
	Listen string
	// Upstream is the unix socket of the daemon's edge (the API, the
	// dashboard, `wrangler tail`): requests for other hosts than Workers go
	// there. Empty: they get 404.
	Upstream string
	// TailFeed is the unix socket of the tail hub's watched feed
	// (tail.Hub.FeedHandler). Empty: no script is ever traced.
	TailFeed string
	// TailFeedURL is the watched feed of a tail hub in another process
	// (an Owner's FeedPath), asked with TailFeedToken; used without
	// TailFeed.
	TailFeedURL, TailFeedToken string
	// Kubelet names this host's node and kubelet root (embedded mode):
	// its pods are reached on their unix sockets.
	Kubelet Kubelet
	// S3 is the store of the Workers' static assets; nil: none are served.
	S3 *S3
	// HostSuffixes are the domains the Workers answer under; nil:
	// workers.localhost and workers.dev.
	HostSuffixes []string
	// Replicated says other gateways serve beside this one (a cluster's
	// replicas): at start it clears only the stall marks of gone pods.
	Replicated bool
	// Metrics keeps and serves the requests counted per Worker version
	// (always counted; see GatewayMetrics).
	Metrics GatewayMetrics
	// Warm is the warm-start hosts of the embedded daemon: their sockets
	// and the snapshot they serve (internal/warmstart). Empty: none.
	Warm WarmHosts
	Log  *slog.Logger
}

// WarmHosts are the warm-start hosts the gateway may send requests to
// while no pod serves a Worker (gateway.Warm).
type WarmHosts struct {
	// Sockets are the hosts' unix sockets, in warmstart.HostIndex order.
	Sockets []string
	// Snapshot is the directory of the snapshot they serve.
	Snapshot string
}

// ManifestCacheFiles bounds the asset manifests the gateway and the pod
// API keep in memory: entries of all manifests together (~100 bytes each).
const ManifestCacheFiles = 200_000

// Gateway is the running gateway role.
type Gateway struct {
	*gateway.Gateway
	edge        *edge.Server
	stopMetrics func()
}

// StartGateway syncs the gateway's watch cache, clears the stall marks of
// a previous run and starts serving cfg.Listen; it returns once the port
// serves. ctx bounds the cache, the tail feed and the stall watchdog; Stop
// closes the port. At a warm start (cfg.Warm) the port serves before the
// cache syncs: the snapshot's Workers at once, from their hosts, and the
// rest once the cache has synced (gateway.Starting).
//
// The gateway runs apart from the daemon's control plane so that its
// requests neither share a Go scheduler with the API server and the
// operators nor wait on their garbage collections (ADR 0005).
func StartGateway(ctx context.Context, cfg GatewayConfig) (*Gateway, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The gateway's caches are controller-runtime's: without a logger it
	// writes a stack trace to stderr for each of its informers.
	ctrl.SetLogger(logr.FromSlogHandler(log.Handler()))
	_, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("gateway: listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("gateway: listen address %q: %w", cfg.Listen, err)
	}
	rc := withQPS(cfg.RestConfig)
	scheme, err := store.Scheme()
	if err != nil {
		return nil, err
	}
	recorder := metrics.New(0, nil)
	// The last run's request minutes are read once the cache has synced.
	synced := make(chan struct{})
	stopMetrics, err := startMetrics(ctx, cfg.Metrics, recorder, log, synced)
	if err != nil {
		return nil, err
	}
	gw := &Gateway{stopMetrics: stopMetrics}
	fail := func(err error) (*Gateway, error) {
		if gw.edge != nil {
			_ = gw.edge.Stop(context.Background())
		}
		stopMetrics()
		return nil, err
	}
	warm := warmHosts(cfg.Warm, log)
	var starting *gateway.Starting
	if warm != nil {
		starting = gateway.NewStarting(gateway.Options{EdgePort: port, HostSuffixes: cfg.HostSuffixes, StartWait: gateway.DefaultStartWait,
			Metrics: recorder, Warm: warm, Log: log})
		if gw.edge, err = serveEdge(ctx, cfg, log, starting); err != nil {
			return fail(err)
		}
		log.Info("serving the warm start's Workers while the cache syncs", "listen", cfg.Listen, "versions", len(warm.Entries))
	}
	t0 := time.Now()
	opts, err := gateway.ClusterOptions(ctx, rc, scheme, log)
	if err != nil {
		return fail(err)
	}
	log.Info("gateway cache synced", "after", time.Since(t0).Round(time.Millisecond))
	close(synced)
	c, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		return fail(fmt.Errorf("gateway: cluster client: %w", err))
	}
	opts.EdgePort = port
	opts.HostSuffixes = cfg.HostSuffixes
	opts.StartWait = gateway.DefaultStartWait
	opts.Metrics = recorder
	opts.Warm = warm
	if cfg.S3 != nil {
		blobs, err := store.NewBlobStore(ctx, cfg.S3.Endpoint, cfg.S3.AccessKey, cfg.S3.SecretKey, cfg.S3.Region, cfg.S3.Bucket)
		if err != nil {
			return fail(fmt.Errorf("gateway: assets store: %w", err))
		}
		opts.Assets = store.CachedManifests(store.AssetFiles{Blobs: blobs}, ManifestCacheFiles)
	}
	switch {
	case cfg.TailFeed != "":
		opts.Watched = tail.Follow(ctx, edge.UnixClient(cfg.TailFeed, tail.FeedPoll+5*time.Second), "http://octo/watched", log.With("part", "tail-feed")).Watched
	case cfg.TailFeedURL != "":
		c := &http.Client{Timeout: tail.FeedPoll + 5*time.Second, Transport: bearer{token: cfg.TailFeedToken, next: http.DefaultTransport}}
		opts.Watched = tail.Follow(ctx, c, cfg.TailFeedURL, log.With("part", "tail-feed")).Watched
	}
	if cfg.Kubelet.RootDir != "" && cfg.Kubelet.NodeName != "" {
		opts.LocalSockets = gateway.NodeSockets(cfg.Kubelet.RootDir, cfg.Kubelet.NodeName)
		opts.NodeStarted = cfg.Kubelet.Started
	}
	// A stalled pod's bundle gets a surge pod, and a request past its CPU
	// limit ends its pod (gateway.WatchStalls).
	opts.Stalls, opts.Kill = gateway.BundleStalls(c), gateway.DeletePods(c)
	g := gateway.New(opts)
	gw.Gateway = g
	// No pod is stalled yet: marks a previous run left would keep surge
	// pods. Clearing them waits on a list of every bundle, seconds at a
	// warm start with many Workers: the port serves meanwhile, and stall
	// detection starts once they are cleared.
	go func() {
		if err := gateway.ClearStalls(ctx, c, cfg.Replicated); err != nil {
			log.Warn("clear stall marks of a previous run", "err", err)
		}
		g.WatchStalls(ctx)
	}()
	if starting != nil {
		starting.Serve(g)
		return gw, nil
	}
	if gw.edge, err = serveEdge(ctx, cfg, log, g); err != nil {
		return fail(err)
	}
	return gw, nil
}

// warmHosts returns what the warm-start hosts serve, or nil without them
// (or when their snapshot cannot be read: the pods serve).
func warmHosts(w WarmHosts, log *slog.Logger) *gateway.Warm {
	if len(w.Sockets) == 0 {
		return nil
	}
	entries, err := warmstart.Snapshot{Dir: w.Snapshot}.Entries()
	if err != nil {
		log.Warn("gateway: no warm start", "err", err)
		return nil
	}
	return &gateway.Warm{Sockets: w.Sockets, Entries: entries}
}

// serveEdge serves cfg.Listen: the Workers' hosts with workers, the rest
// through cfg.Upstream; it returns once the port serves.
func serveEdge(ctx context.Context, cfg GatewayConfig, log *slog.Logger, workers edge.Registrar) (*edge.Server, error) {
	parts := []edge.Registrar{workers}
	if cfg.Upstream != "" {
		parts = append(parts, edge.NewUpstream(cfg.Upstream, log))
	}
	srv := edge.NewTCP("gateway", cfg.Listen, log, parts...)
	if err := srv.Start(ctx); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if err := srv.Ready(ctx); err != nil {
		_ = srv.Stop(context.Background())
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return srv, nil
}

// Stop closes the gateway's port, letting requests in flight finish for up
// to 2 s, then saves the request metrics.
func (g *Gateway) Stop(ctx context.Context) error {
	err := g.edge.Stop(ctx)
	g.stopMetrics()
	return err
}
