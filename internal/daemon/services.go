package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/edge"
	"github.com/octohq/octo/internal/embed/s3"
	"github.com/octohq/octo/internal/envvars"
	"github.com/octohq/octo/internal/fakecf"
	"github.com/octohq/octo/internal/gateway"
	"github.com/octohq/octo/internal/tail"
	"github.com/octohq/octo/internal/workerd"
	"github.com/octohq/octo/web"
)

// services are the platform's own parts built on the running cluster: the
// Cloudflare API, the tail hub and the gateway. The edge server builds them
// when it starts; the pod-facing server and the operators use them after.
type services struct {
	cfg config.Config
	log *slog.Logger

	once sync.Once
	err  error
	// extracted is closed once workerd is extracted (extractErr set).
	extractOnce sync.Once
	extracted   chan struct{}
	extractErr  error
	rc          *rest.Config
	workerd     string // extracted workerd binary
	api         *fakecf.Server
	apiOpts     fakecf.Options
	hub         *tail.Hub
	gw          *gateway.Gateway
	dash        *web.Dashboard
	// status reports the daemon's parts to the dashboard (set by New).
	status func() web.Status
}

// extractWorkerd writes the workerd binary to the data dir in the
// background: it needs nothing else, so the daemon starts it first.
func (s *services) extractWorkerd() {
	s.extractOnce.Do(func() {
		s.extracted = make(chan struct{})
		go func() {
			defer close(s.extracted)
			s.workerd, s.extractErr = workerd.Extract(s.cfg.BinDir())
		}()
	})
}

// build assembles the services once; ctx must live as long as the daemon.
func (s *services) build(ctx context.Context) error {
	s.once.Do(func() { s.err = s.assemble(ctx) })
	return s.err
}

func (s *services) assemble(ctx context.Context) error {
	cfg, log := s.cfg, s.log
	id, err := fakecf.EnsureIdentity(cfg)
	if err != nil {
		return err
	}
	creds, err := s3.LoadCredentials(cfg)
	if err != nil {
		return err
	}
	if s.rc, err = clientcmd.BuildConfigFromFlags("", cfg.KubeconfigPath()); err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	t0 := time.Now()
	defer func() { log.Info("services assembled", "after", time.Since(t0).Round(time.Millisecond)) }()
	s.extractWorkerd()
	<-s.extracted
	log.Info("workerd extracted", "after", time.Since(t0).Round(time.Millisecond))
	if s.extractErr != nil {
		return s.extractErr
	}
	// The API installs the CRDs, which the gateway's cache needs; the tail
	// hub resolves workerd service names through that cache, set up after.
	var resolve tail.ResolveFunc
	s.hub = tail.New(ctx, tail.Options{
		Resolve: func(service string) (string, string, string, bool) { return resolve(service) },
		Log:     log.With("component", "tail"),
	})
	s.api, s.apiOpts, err = fakecf.Assemble(ctx, s.rc,
		fakecf.S3Config{Endpoint: config.Addr(cfg.S3Port), AccessKey: creds.AccessKey, SecretKey: creds.SecretKey, Region: creds.Region, Bucket: fakecf.Bucket},
		fakecf.Options{
			Identity: id,
			Log:      log.With("component", "api"),
			Validate: fakecf.WorkerdValidator(s.workerd),
			Tails:    s.hub,
			EdgeURL:  "http://" + config.Addr(cfg.EdgePort),
		})
	if err != nil {
		return err
	}
	log.Info("API assembled (CRDs, default account, S3 bucket)", "after", time.Since(t0).Round(time.Millisecond))
	scheme, err := fakecf.Scheme()
	if err != nil {
		return err
	}
	gwOpts, err := gateway.ClusterOptions(ctx, s.rc, scheme, log.With("component", "gateway"))
	if err != nil {
		return err
	}
	gwOpts.EdgePort = cfg.EdgePort
	resolve = gateway.TailResolver(gwOpts.Reader)
	log.Info("gateway cache synced", "after", time.Since(t0).Round(time.Millisecond))
	s.gw = gateway.New(gwOpts)
	s.dash, err = web.New(web.Options{
		Status:   func() web.Status { return s.status() },
		Reader:   s.apiOpts.Client,
		API:      web.API{Token: id.Token, AccountID: id.AccountID, Subdomain: id.Subdomain},
		Tail:     s.hub,
		EdgePort: cfg.EdgePort,
		Env:      func() []string { return envvars.Lines(cfg, creds, id) },
		Log:      log.With("component", "dashboard"),
	})
	return err
}

// edgeParts is what the edge server mounts: the API, the tail websocket and
// the gateway.
func (s *services) edgeParts(ctx context.Context) ([]edge.Registrar, error) {
	if err := s.build(ctx); err != nil {
		return nil, err
	}
	return []edge.Registrar{s.api, s.hub, s.gw, s.dash}, nil
}

// kvProtocol and tailCollector serve pods through the pod-facing server;
// they are valid once the edge has started.
func (s *services) kvProtocol() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.api.KVProtocolHandler().ServeHTTP(w, r) })
}

func (s *services) tailCollector() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.hub.Collector().ServeHTTP(w, r) })
}
