package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed"
	"github.com/octohq/octo/internal/embed/s3"
	"github.com/octohq/octo/internal/envvars"
	"github.com/octohq/octo/internal/pki"
	"github.com/octohq/octo/internal/platform"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
	"github.com/octohq/octo/web"
)

// services is the component that builds the platform (platform.Build: the
// store, tail hub, Cloudflare API, gateway and dashboard) once the API server
// and S3 are up. The edge, the pod-facing server and the operators of the
// next phase are made from what it built (see deferred).
type services struct {
	cfg config.Config
	log *slog.Logger
	// status reports the daemon's parts to the dashboard.
	status func() web.Status

	// extracted is closed once workerd is extracted to the data dir
	// (workerdPath or extractErr set); the daemon starts it first.
	extracted   chan struct{}
	workerdPath string
	extractErr  error
	// validator starts uploaded Workers once, sandboxed; the API and the
	// builder share it (and its concurrency bound). Set by build.
	validator *workerd.Validator

	started  sync.Once
	done     chan struct{} // closed when Start's build has ended
	platform *platform.Platform
	err      error
}

func newServices(cfg config.Config, log *slog.Logger) *services {
	return &services{cfg: cfg, log: log, extracted: make(chan struct{}), done: make(chan struct{})}
}

// extractWorkerd writes the workerd binary to the data dir in the
// background: it needs nothing else, so the daemon calls it first.
func (s *services) extractWorkerd() {
	go func() {
		defer close(s.extracted)
		s.workerdPath, s.extractErr = workerd.Extract(s.cfg.BinDir())
	}()
}

// Name implements embed.Component.
func (s *services) Name() string { return "services" }

// Start builds the platform in the background; ctx bounds its services.
//
// The daemon calls it as soon as the API server starts (the build waits
// until it serves), so that the CRDs are installed while the API server
// still runs its post-start hooks; the call of the services' own phase then
// does nothing.
func (s *services) Start(ctx context.Context) error {
	s.started.Do(func() {
		go func() {
			defer close(s.done)
			s.platform, s.err = s.build(ctx)
		}()
	})
	return nil
}

// Ready waits for the build.
func (s *services) Ready(ctx context.Context) error {
	select {
	case <-s.done:
		return s.err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Stop saves what the platform keeps (the pods' usage samples); the rest
// of the services end with the daemon's context.
func (s *services) Stop(context.Context) error {
	select {
	case <-s.done:
		if s.platform != nil {
			s.platform.Stop()
		}
	default: // never built, or still building: nothing sampled yet
	}
	return nil
}

func (s *services) build(ctx context.Context) (*platform.Platform, error) {
	cfg, log := s.cfg, s.log
	id, err := store.EnsureIdentity(cfg)
	if err != nil {
		return nil, err
	}
	creds, err := s3.LoadCredentials(cfg)
	if err != nil {
		return nil, err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.KubeconfigPath())
	if err != nil {
		return nil, fmt.Errorf("admin kubeconfig: %w", err)
	}
	// A new dashboard login key at every start: earlier login links stop
	// working; `sudo octo dashboard` signs new ones with it.
	loginKey, err := web.CreateLoginKey(cfg.DashboardLoginKeyPath())
	if err != nil {
		return nil, err
	}
	if err := waitServing(ctx, rc); err != nil {
		return nil, err
	}
	t0 := time.Now()
	<-s.extracted
	if s.extractErr != nil {
		return nil, s.extractErr
	}
	s.validator = &workerd.Validator{Bin: s.workerdPath, Log: log.With("component", "validate")}
	p, err := platform.Build(ctx, platform.Config{
		RestConfig: rc,
		S3: platform.S3{Endpoint: config.Addr(cfg.S3Port), AccessKey: creds.AccessKey, SecretKey: creds.SecretKey,
			Region: creds.Region, Bucket: store.Bucket},
		Identity: id,
		Validate: store.WorkerdValidator(s.validator),
		EdgePort: cfg.EdgePort,
		D1Dir:    cfg.Path("d1"),
		Status:   func() web.Status { return s.status() },
		// The dashboard shows only the variables' names (web.EnvNames).
		Env:               func() []string { return envvars.Lines(cfg, creds, id) },
		DashboardLoginKey: loginKey,
		Kubelet: platform.Kubelet{Addr: config.Addr(cfg.KubeletPort), NodeName: cfg.NodeName,
			CAFile: pki.New(cfg).Path("ca.crt"), RootDir: cfg.KubeletDir()},
		GatewayMetrics: GatewayMetricsSocket(cfg),
		WorkerLogsDir:  cfg.Path("worker-logs"),
		UsageFile:      cfg.Path("metrics", "usage.json"),
		LogsRetention:  time.Duration(cfg.LogsRetentionDays) * 24 * time.Hour,
		Log:            log,
	})
	if err != nil {
		return nil, err
	}
	log.Info("services built", "after", time.Since(t0).Round(time.Millisecond))
	return p, nil
}

// deferred is a component made from the built platform once it is built;
// the daemon lists it by name from the beginning.
func (s *services) deferred(name, endpoint string, make func(*platform.Platform) embed.Component) *deferred {
	return &deferred{name: name, endpoint: endpoint, make: func(ctx context.Context) (embed.Component, error) {
		select {
		case <-s.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the services: %w", context.Cause(ctx))
		}
		if s.err != nil {
			return nil, fmt.Errorf("services: %w", s.err)
		}
		return make(s.platform), nil
	}}
}

// deferred is a component made from the built services: its Start waits
// for the build (see services.deferred).
type deferred struct {
	name     string
	endpoint string
	make     func(context.Context) (embed.Component, error)
	c        embed.Component
}

// Name implements embed.Component.
func (d *deferred) Name() string { return d.name }

// Endpoint implements embed.Endpointer.
func (d *deferred) Endpoint() string { return d.endpoint }

// Start waits for the services, makes the component and starts it.
func (d *deferred) Start(ctx context.Context) error {
	c, err := d.make(ctx)
	if err != nil {
		return err
	}
	d.c = c
	return c.Start(ctx)
}

// Ready waits for the component.
func (d *deferred) Ready(ctx context.Context) error { return d.c.Ready(ctx) }

// Stop stops the component if it was made.
func (d *deferred) Stop(ctx context.Context) error {
	if d.c == nil {
		return nil
	}
	return d.c.Stop(ctx)
}

// servingPoll is how often waitServing asks the API server.
const servingPoll = 50 * time.Millisecond

// waitServing waits until the API server answers its version: it serves
// then, while its post-start hooks (RBAC roles, priority classes) still run.
func waitServing(ctx context.Context, rc *rest.Config) error {
	rc = rest.CopyConfig(rc)
	rc.Timeout = 2 * time.Second
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return fmt.Errorf("discovery client: %w", err)
	}
	for {
		_, err := dc.ServerVersion()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the API server to serve: %w (last: %v)", context.Cause(ctx), err)
		case <-time.After(servingPoll):
		}
	}
}
