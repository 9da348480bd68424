// Package platform builds octo's shared services in one place: the
// connection to the cluster and the S3 store, the domain layer over them
// (internal/store), the tail hub, the Cloudflare API and the dashboard; and
// the gateway role (StartGateway). Each consumer (the edge, the pod-facing server, the operators,
// `octo api`) gets its typed dependencies from a Platform, built once, before
// any of them starts.
package platform

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/rest"
	"k8s.io/component-base/metrics/legacyregistry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/octohq/octo/internal/cfapi"
	"github.com/octohq/octo/internal/crds"
	"github.com/octohq/octo/internal/edge"
	"github.com/octohq/octo/internal/gateway"
	"github.com/octohq/octo/internal/metrics"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/tail"
	"github.com/octohq/octo/web"
)

// S3 is how the platform reaches its S3 store.
type S3 struct {
	Endpoint  string // host:port, plain HTTP
	AccessKey string
	SecretKey string
	Region    string
	Bucket    string
}

// Core is the cluster client and the domain layer: what every mode of octo
// needs, the embedded daemon and `octo api` on an existing cluster alike.
type Core struct {
	// RestConfig reaches the cluster (with a QPS for upload bursts).
	RestConfig *rest.Config
	// Client reads and writes octo's objects directly (no cache).
	Client client.Client
	Store  *store.Store
}

// ConnectOptions are what Connect needs besides the cluster.
type ConnectOptions struct {
	S3       S3
	Identity store.Identity
	// Validate, when not nil, starts every new version once before it is
	// stored.
	Validate store.ValidateFunc
	// D1Dir holds the D1 databases; empty leaves D1 unavailable.
	D1Dir string
	// D1Catalog finds the databases that uploads bind to when another
	// process owns them (Owner); nil: D1Dir's.
	D1Catalog store.D1Catalog
	// SkipCRDs leaves the CRDs as they are (installed by a chart): they
	// must exist.
	SkipCRDs bool
}

// Connect installs the CRDs (unless opts.SkipCRDs), creates the default
// account, opens the S3 bucket and returns the store over them.
func Connect(ctx context.Context, rc *rest.Config, opts ConnectOptions) (*Core, error) {
	rc = withQPS(rc)
	if !opts.SkipCRDs {
		if err := crds.Install(ctx, rc); err != nil {
			return nil, err
		}
	}
	return connect(ctx, rc, opts)
}

// withQPS copies rc with a QPS for bursts: client-go's default of 5
// requests/s would make bursts of uploads (each one a few requests) queue
// for seconds.
func withQPS(rc *rest.Config) *rest.Config {
	rc = rest.CopyConfig(rc)
	rc.QPS, rc.Burst = 200, 400
	return rc
}

// connect is Connect once the CRDs are installed.
func connect(ctx context.Context, rc *rest.Config, opts ConnectOptions) (*Core, error) {
	s3, id := opts.S3, opts.Identity
	scheme, err := store.Scheme()
	if err != nil {
		return nil, err
	}
	mapper, hc, err := crds.ClusterMapper(rc)
	if err != nil {
		return nil, err
	}
	c, err := client.New(rc, client.Options{Scheme: scheme, HTTPClient: hc, Mapper: mapper})
	if err != nil {
		return nil, fmt.Errorf("cluster client: %w", err)
	}
	if err := store.EnsureDefaultAccount(ctx, c, id); err != nil {
		return nil, err
	}
	blobs, err := store.NewBlobStore(ctx, s3.Endpoint, s3.AccessKey, s3.SecretKey, s3.Region, s3.Bucket)
	if err != nil {
		return nil, err
	}
	st := store.New(store.Options{Client: c, Blobs: blobs, AuthorEmail: id.Email, Validate: opts.Validate,
		D1Dir: opts.D1Dir, D1Catalog: opts.D1Catalog})
	return &Core{RestConfig: rc, Client: c, Store: st}, nil
}

// Config is what Build needs besides the cluster and S3.
type Config struct {
	RestConfig *rest.Config
	S3         S3
	Identity   store.Identity
	// Validate starts new versions once before they are stored (nil: none).
	Validate store.ValidateFunc
	// EdgePort is the loopback port of the API, the dashboard and the
	// Workers.
	EdgePort int
	// D1Dir is where the D1 databases live (<data dir>/d1); empty leaves
	// D1 unavailable.
	D1Dir string
	// Status reports the daemon's parts to the dashboard.
	Status func() web.Status
	// Env returns the `octo env` lines the dashboard shows.
	Env func() []string
	// DashboardLoginKey checks the dashboard's login links
	// (web.CreateLoginKey); empty: no login works.
	DashboardLoginKey []byte
	// Kubelet is where the dashboard reads the pods' memory; empty: nowhere.
	Kubelet Kubelet
	// GatewayMetrics is the unix socket of the gateway's request metrics
	// (GatewayMetrics.Socket): the dashboard's charts and, with the
	// operators' own metrics, the API's /metrics. Empty: none.
	GatewayMetrics string
	// WorkerLogsDir keeps the logs of the Workers that enable them
	// (workerlogs); empty: none are kept.
	WorkerLogsDir string
	// LogsRetention is how long they are kept; 0: workerlogs.DefaultRetention.
	LogsRetention time.Duration
	// UsageFile keeps the CPU time and memory of the Workers' pods,
	// sampled from the Kubelet (needs Kubelet); empty: not sampled.
	UsageFile string
	Log       *slog.Logger
}

// Platform is every shared service of a running octo.
type Platform struct {
	Core
	Tails     *tail.Hub
	API       *cfapi.Server
	Dashboard *web.Dashboard

	usage *usageSampler // nil: the pods' usage is not sampled
}

// Stop ends what Build started that keeps state: the pods' usage samples
// are saved.
func (p *Platform) Stop() {
	if p.usage != nil {
		p.usage.Stop()
	}
}

// Build connects to the cluster and S3 and builds the services; ctx bounds
// the services' lifetime (the tail hub and the gateway's cache).
func Build(ctx context.Context, cfg Config) (*Platform, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t0 := time.Now()
	rc := withQPS(cfg.RestConfig)
	if err := crds.Install(ctx, rc); err != nil {
		return nil, err
	}
	log.Info("CRDs established", "after", time.Since(t0).Round(time.Millisecond))
	core, err := connect(ctx, rc, ConnectOptions{S3: cfg.S3, Identity: cfg.Identity, Validate: cfg.Validate, D1Dir: cfg.D1Dir})
	if err != nil {
		return nil, err
	}
	log.Info("store connected (default account, S3 bucket)", "after", time.Since(t0).Round(time.Millisecond))
	p := &Platform{Core: *core}
	// The tail hub names the scripts of workerd services from the
	// WorkerVersions; the gateway process follows its watched set (FeedHandler).
	var logs *workerLogs
	tailOpts := tail.Options{Resolve: gateway.TailResolver(core.Client), Log: log.With("component", "tail")}
	if cfg.WorkerLogsDir != "" {
		logs = newWorkerLogs(cfg.WorkerLogsDir, cfg.LogsRetention, core.Store)
		tailOpts.Logs = logs
	}
	p.Tails = tail.New(ctx, tailOpts)
	edgeURL := fmt.Sprintf("http://127.0.0.1:%d", cfg.EdgePort)
	var stats func(ctx context.Context) (map[string]PodStat, error)
	var podMemory func(ctx context.Context) (map[string]uint64, error)
	var usage func(ctx context.Context, account, bundle string, from, to time.Time) ([]metrics.UsageMinute, error)
	own := prometheus.NewRegistry()
	own.MustRegister(podRestarts{c: core.Client})
	if cfg.Kubelet.Addr != "" {
		if stats, err = PodStats(core.RestConfig, cfg.Kubelet); err != nil {
			return nil, err
		}
		podMemory = memoryOf(stats)
		if cfg.UsageFile != "" {
			u := metrics.NewUsage(0, nil)
			p.usage = newUsageSampler(stats, core.Client, u, cfg.UsageFile, log.With("component", "usage"))
			p.usage.start(ctx)
			usage = usageReader(u)
			own.MustRegister(metrics.UsageCollector{U: u})
		}
	}
	var series func(ctx context.Context, account, script string, from, to time.Time) ([]metrics.Point, error)
	var scrape http.Handler
	if cfg.GatewayMetrics != "" {
		mc := NewMetricsClient(cfg.GatewayMetrics)
		series = mc.Series
		// The Workers' series from the gateway, the operators' (work queues,
		// reconciles, builds) from controller-runtime's registry, the pods'
		// restarts and usage from octo's own.
		scrape = promhttp.HandlerFor(prometheus.Gatherers{ctrlmetrics.Registry, mc, own, queueGatherer{legacyregistry.DefaultGatherer}},
			promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, ErrorLog: slogPrinter{log}})
	}
	p.API = cfapi.New(cfapi.Options{
		Identity: cfg.Identity, Store: core.Store, Tails: p.Tails, EdgeURL: edgeURL, Log: log.With("component", "api"),
		Metrics: scrape,
	})
	p.Dashboard, err = web.New(web.Options{
		PodMemory: podMemory, Usage: usage,
		Status: cfg.Status, Reader: core.Client, Store: core.Store, DefaultAccount: cfg.Identity.DefaultAccount(),
		APIURL: edgeURL + cfapi.BasePath, Tail: p.Tails, EdgePort: cfg.EdgePort, Env: cfg.Env,
		LoginKey: cfg.DashboardLoginKey, Metrics: series, Logs: logs.search(),
		Log: log.With("component", "dashboard"),
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// EdgeParts are what the daemon's edge server mounts: the API, the tail
// WebSocket and the dashboard. The Workers are served by the gateway role
// (StartGateway), in a process of its own, in front of it.
func (p *Platform) EdgeParts() []edge.Registrar {
	return []edge.Registrar{p.API, p.Tails, p.Dashboard}
}
