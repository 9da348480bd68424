// Package daemon runs every embedded part of octo in one process: it starts
// the components phase by phase, publishes their state for `octo up` and
// `octo status`, and on SIGTERM stops them in reverse order and cleans the host.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/octohq/octo/internal/cfapi"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/edge"
	"github.com/octohq/octo/internal/embed"
	"github.com/octohq/octo/internal/embed/apiserver"
	"github.com/octohq/octo/internal/embed/containerd"
	"github.com/octohq/octo/internal/embed/controllermanager"
	"github.com/octohq/octo/internal/embed/coredns"
	"github.com/octohq/octo/internal/embed/kine"
	"github.com/octohq/octo/internal/embed/kubelet"
	"github.com/octohq/octo/internal/embed/kubeproxy"
	"github.com/octohq/octo/internal/embed/localpath"
	"github.com/octohq/octo/internal/embed/podnet"
	"github.com/octohq/octo/internal/embed/registry"
	"github.com/octohq/octo/internal/embed/s3"
	"github.com/octohq/octo/internal/embed/scheduler"
	"github.com/octohq/octo/internal/logs"
	"github.com/octohq/octo/internal/pki"
	"github.com/octohq/octo/internal/platform"
	"github.com/octohq/octo/internal/podapi"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/teardown"
	"github.com/octohq/octo/internal/version"
	"github.com/octohq/octo/internal/warmstart"
	"github.com/octohq/octo/web"
)

// DaemonCommand is the hidden argv[1] under which `octo up` starts the daemon.
const DaemonCommand = "daemon"

// StartTimeout bounds how long all components may take to become ready.
const StartTimeout = 3 * time.Minute

// Daemon is one running octo instance.
type Daemon struct {
	cfg config.Config
	log *slog.Logger
	svc *services
	// warm is the warm-start hosts (nil in a bare cluster).
	warm *warmstart.Hosts
	// ready is closed once every component is ready.
	ready  chan struct{}
	phases [][]embed.Component
	// apiserver's start also starts the services' build (services.Start):
	// it installs the CRDs as soon as the API server serves.
	apiserver embed.Component

	mu     sync.Mutex
	status Status
}

// New assembles the components of cfg in start order. Components in one phase
// start concurrently; a phase starts when the previous one is ready.
func New(cfg config.Config, log *slog.Logger) (*Daemon, error) {
	started := time.Now()
	p := pki.New(cfg)
	// The controller-manager's options must be built before the API server's
	// (process-wide feature gate defaults; see controllermanager.New).
	cm, err := controllermanager.New(cfg, p)
	if err != nil {
		return nil, err
	}
	k := kine.New(cfg, log.With("component", "kine"))
	svc := newServices(cfg, log)
	// The pods' credentials for the pod API derive from this key: the
	// builder writes them into the images, the pod API checks them.
	podKey, err := podapi.EnsureKey(cfg.PodAPIKeyPath())
	if err != nil {
		return nil, err
	}
	podAPI := podapi.New(podapi.Options{Port: cfg.EdgePort})
	api := apiserver.New(cfg, p, k.Endpoint())
	// The pod network (the bridge, its firewall, ~0.4 s of iptables) is for
	// containerd's pods and the cluster DNS: the API server starts without
	// waiting for it. containerd starts beside the API server and holds
	// nothing back but the kubelet: at a warm start with many pods it takes
	// seconds longer than the API server.
	pnet := startEarly(podnet.New(cfg, log))
	ctrd := startEarly(gate(containerd.New(cfg, log), pnet.Wait))
	kl := kubelet.New(cfg, p)
	klet := startEarly(gate(kl, all(ctrd.Wait, api.HooksIfWarm)))
	// The warm start (internal/warmstart): with a snapshot of an earlier
	// run, hosts outside Kubernetes load its Workers from the first phase
	// on, while the cluster starts; the gateway sends them what no pod
	// serves yet.
	var warm *early
	var warmHosts *warmstart.Hosts
	ready := make(chan struct{})
	if !cfg.BareCluster {
		warmHosts = newWarmHosts(cfg, svc, log)
		warm = startEarly(warmHosts)
		kl.HoldPods = podsAfterWarmStart(warm, warmHosts, ready)
	}
	d := &Daemon{cfg: cfg, log: log, svc: svc, apiserver: api, warm: warmHosts, ready: ready, phases: [][]embed.Component{
		{pnet, k, s3.New(cfg, log), registry.New(cfg, log)},
		{api, ctrd},
		// The services need only the API server and S3 (they began to build
		// with the API server, see start); what is made from them starts as
		// soon as they are built, beside the node's parts: none of them
		// waits for the kubelet or kube-proxy. The gateway process owns the
		// edge port and passes the daemon's edge (API, dashboard, tail)
		// through from a unix socket. In a phase the last stops first.
		// The controller-manager, the scheduler and kube-proxy authorize
		// through the cluster's default roles, which the API server writes
		// after it serves (~1.8 s at a cold start); the kubelet (the Node
		// authorizer) and octo's parts (admin) need none of them. The
		// controller-manager also needs every post-start hook done (it gives
		// up unless /healthz passes within 10 s), and the hooks, a chain of
		// ~300 requests, took 16–24 s under the load of a warm start with
		// 1,000 Workers: at a warm start the kubelet, the gateway and the
		// operators, which bring that load, start after them (HooksIfWarm),
		// and so do the scheduler, kube-proxy, the cluster DNS and the
		// volume provisioner, which are ready within a second and would
		// otherwise take the core the hooks' ~300 requests need (the RBAC
		// hook took 2–2.3 s after /readyz, 1.3–1.6 s without them).
		// The edge, the API and the pod API start at once.
		{
			gate(cm, api.Bootstrapped), gate(scheduler.New(p), all(api.RolesExist, api.HooksIfWarm)), klet,
			gate(kubeproxy.New(cfg, p), all(api.RolesExist, api.HooksIfWarm)), gate(coredns.New(cfg, log.With("component", "coredns")), all(pnet.Wait, api.HooksIfWarm)),
			gate(localpath.New(cfg, log.With("component", "local-path")), api.HooksIfWarm),
		},
	}}
	// The Workers platform, unless the cluster is to stay bare (octo's
	// chart is installed into it instead).
	if !cfg.BareCluster {
		d.phases[0] = append(d.phases[0], warm)
		d.phases[2] = append(d.phases[2], svc,
			svc.deferred("edge", "http://"+config.Addr(cfg.EdgePort), func(pf *platform.Platform) embed.Component {
				return edge.NewUnix("edge", EdgeSocket(cfg), log, pf.EdgeParts()...)
			}),
			gate(svc.deferred("gateway", "http://*.workers.localhost:"+strconv.Itoa(cfg.EdgePort), func(pf *platform.Platform) embed.Component {
				return newGatewayProcess(cfg, log, pf.Tails.FeedHandler(), started, warmHosts)
			}), all(api.HooksIfWarm, warm.Wait)),
			svc.deferred(podAPI.Name(), podAPI.Endpoint(), func(pf *platform.Platform) embed.Component {
				return podapi.New(podapi.Options{Port: cfg.EdgePort, Key: podKey, KV: pf.Store.KV(), R2: pf.Store.R2(), D1: pf.Store.D1(), Tail: pf.Tails,
					Code: pf.Store.LoaderCode, Assets: store.CachedManifests(store.AssetFiles{Blobs: pf.Store.Blobs()}, platform.ManifestCacheFiles), Log: log.With("component", "pod-api")})
			}),
			gate(svc.deferred("operators", "", func(pf *platform.Platform) embed.Component {
				return &operators{cfg: cfg, log: log, rc: pf.RestConfig, blobs: pf.Store.Blobs(), workerdPath: svc.workerdPath, podKey: podKey,
					validate: svc.validator.Validate, watched: pf.Tails.Watched, code: pf.Store.VersionCode}
			}), api.HooksIfWarm),
		)
	}
	svc.status = d.webStatus
	d.status = Status{PID: os.Getpid(), Version: version.Octo, DataDir: cfg.DataDir, StartedAt: started, State: Starting}
	for _, phase := range d.phases {
		for _, c := range phase {
			cs := ComponentStatus{Name: c.Name(), State: Pending}
			if e, ok := c.(embed.Endpointer); ok {
				cs.Endpoint = e.Endpoint()
			}
			d.status.Components = append(d.status.Components, cs)
		}
	}
	return d, nil
}

// Run starts everything, serves until ctx is done, then stops everything and
// tears down what the cluster left on the host. It returns the start error,
// if any, after cleaning up.
func (d *Daemon) Run(ctx context.Context) error {
	cfg := d.cfg
	if err := config.WriteFileAtomic(cfg.PIDPath(), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(cfg.PIDPath())
	defer os.Remove(cfg.StatusPath())
	d.publish()
	if addr := os.Getenv(PprofEnv); addr != "" {
		servePprof(addr, d.log)
	}
	// klog's exit hook is process-wide: embedded components end the
	// process through it (klog.FlushAndExit).
	klog.OsExit = exitUnlessStopping(ctx, os.Exit)

	router, err := logs.NewRouter(cfg.Path("logs"))
	if err != nil {
		return err
	}
	defer router.Close()
	if err := routeKlog(router); err != nil {
		return err
	}
	if f, err := os.OpenFile(cfg.ComponentLogPath("kine"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
		logrus.SetOutput(f)
		defer f.Close()
	}

	startErr := d.start(ctx)
	if startErr == nil {
		d.setState(Ready, "")
		d.log.Info("octo is ready", "startup", time.Since(d.status.StartedAt).Round(time.Millisecond))
		setGCPercent(runGCPercent)
		close(d.ready)
		<-ctx.Done()
	} else {
		d.setState(Failed, startErr.Error())
		d.log.Error("start failed", "err", startErr)
	}
	d.setState(Stopping, "")
	d.stop()
	d.log.Info("cleaning up the host")
	if err := teardown.Clean(context.Background(), cfg, d.log); err != nil {
		d.log.Warn("teardown incomplete", "err", err)
	}
	return startErr
}

// The daemon's GOGC, unless the user set one: while it starts its heap
// may grow 4x before a collection (at a warm start with 1,000 Workers a
// third of its CPU went to collections at GOGC 50, while every cache
// filled); once ready, 0.5x, since an idle laptop cluster should not hold
// twice its live heap.
const (
	startGCPercent = 400
	runGCPercent   = 50
)

// TuneMemory sets the daemon's GOGC for its start (startGCPercent); Run
// lowers it once octo is ready (runGCPercent).
func TuneMemory() { setGCPercent(startGCPercent) }

func setGCPercent(p int) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(p)
	}
}

// exitUnlessStopping is klog's exit for the daemon. Embedded components
// end the process with klog.FlushAndExit when they fail to start: the
// controller-manager does when `octo down` cancels a controller it is
// starting, and the daemon then ended without its teardown (one stop in
// ~10 within 15 s of a warm start). Once ctx is done the daemon is
// stopping anyway: the calling goroutine ends instead (its deferred calls
// run; the caller, which expects no return, never resumes) and the stop
// goes on. Before that, exit ends the process as klog would.
func exitUnlessStopping(ctx context.Context, exit func(int)) func(int) {
	return func(code int) {
		if ctx.Err() != nil {
			runtime.Goexit()
		}
		exit(code)
	}
}

// webStatus is the daemon's status as the dashboard shows it: the API and
// the dashboard are served by the edge.
func (d *Daemon) webStatus() web.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := web.Status{State: string(d.status.State), Version: d.status.Version, StartedAt: d.status.StartedAt}
	for _, c := range d.status.Components {
		s.Parts = append(s.Parts, web.Part{Name: c.Name, State: string(c.State), Endpoint: c.Endpoint, Error: c.Error})
		if c.Name == "edge" {
			s.Parts = append(s.Parts,
				web.Part{Name: "api", State: string(c.State), Endpoint: c.Endpoint + cfapi.BasePath, Error: c.Error},
				web.Part{Name: "dashboard", State: string(c.State), Endpoint: web.URL(d.cfg.EdgePort), Error: c.Error})
		}
	}
	return s
}

// routeKlog sends every klog line, once, to router instead of stderr, and
// the API's warnings there too, each message once.
func routeKlog(router *logs.Router) error {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	for name, value := range map[string]string{"logtostderr": "false", "alsologtostderr": "false", "one_output": "true"} {
		if err := fs.Set(name, value); err != nil {
			return fmt.Errorf("klog flag %s: %w", name, err)
		}
	}
	klog.SetOutput(router)
	// The apiserver warns its own loopback clients about deprecated kinds
	// (v1 Endpoints, every 10 s): once per message is enough.
	rest.SetDefaultWarningHandler(rest.NewWarningWriter(router, rest.WarningWriterOptions{Deduplicate: true}))
	return nil
}

// start brings the phases up in order.
func (d *Daemon) start(ctx context.Context) error {
	cfg := d.cfg
	if err := teardown.SaveSysctls(cfg); err != nil {
		return fmt.Errorf("save sysctls: %w", err)
	}
	d.svc.extractWorkerd()
	p := pki.New(cfg)
	if _, err := p.Ensure(); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := p.WriteAdminKubeconfig(cfg.KubeconfigPath()); err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	if d.warm != nil {
		entries, _ := warmSnapshot(cfg).Entries()
		podsYieldCPU(ctx, len(entries) > 0, d.warm.Preloaded(), d.ready, d.warm.Retired(), d.log)
	}
	readyCtx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	var late sync.WaitGroup // components started early (see early)
	var lateErrs []error
	var lateMu sync.Mutex
	for _, phase := range d.phases {
		if slices.Contains(phase, d.apiserver) && !cfg.BareCluster {
			if err := d.svc.Start(ctx); err != nil {
				return err
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, len(phase))
		for i, c := range phase {
			if e, ok := c.(*early); ok {
				late.Go(func() {
					err := d.startOne(ctx, readyCtx, c)
					e.finish(err)
					lateMu.Lock()
					lateErrs = append(lateErrs, err)
					lateMu.Unlock()
				})
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = d.startOne(ctx, readyCtx, c)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			late.Wait()
			return err
		}
	}
	late.Wait()
	if err := errors.Join(lateErrs...); err != nil {
		return err
	}
	if d.warm != nil && len(d.warm.Sockets()) > 0 && d.svc.platform != nil {
		go retireWarmHosts(ctx, d.svc.platform.Client, d.warm, d.status.StartedAt, d.log)
	}
	return nil
}

func (d *Daemon) startOne(runCtx, readyCtx context.Context, c embed.Component) error {
	t0 := time.Now()
	d.setComponent(c.Name(), Starting, "", 0)
	d.log.Info("starting", "component", c.Name())
	if err := c.Start(runCtx); err != nil {
		err = &embed.Error{Component: c.Name(), Op: "start", Err: err}
		d.setComponent(c.Name(), Failed, err.Error(), 0)
		return err
	}
	if err := c.Ready(readyCtx); err != nil {
		err = &embed.Error{Component: c.Name(), Op: "ready", Err: err}
		d.setComponent(c.Name(), Failed, err.Error(), 0)
		return err
	}
	d.setComponent(c.Name(), Ready, "", time.Since(t0))
	d.log.Info("ready", "component", c.Name(), "after", time.Since(t0).Round(time.Millisecond))
	return nil
}

// stop stops every component that started, in reverse order.
func (d *Daemon) stop() {
	for i := len(d.phases) - 1; i >= 0; i-- {
		for j := len(d.phases[i]) - 1; j >= 0; j-- {
			c := d.phases[i][j]
			if s, _ := d.componentState(c.Name()); s == Pending {
				continue
			}
			t0 := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			if err := c.Stop(ctx); err != nil {
				d.log.Warn("stop", "component", c.Name(), "err", err)
			}
			cancel()
			d.log.Info("stopped", "component", c.Name(), "after", time.Since(t0).Round(time.Millisecond))
			d.setComponent(c.Name(), Stopped, "", 0)
		}
	}
}

func (d *Daemon) componentState(name string) (State, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.status.Component(name)
	return c.State, ok
}

func (d *Daemon) setComponent(name string, s State, errMsg string, after time.Duration) {
	d.mu.Lock()
	for i := range d.status.Components {
		if d.status.Components[i].Name == name {
			d.status.Components[i].State = s
			d.status.Components[i].Error = errMsg
			if after > 0 {
				d.status.Components[i].ReadyAfter = Duration(after)
			}
		}
	}
	d.mu.Unlock()
	d.publish()
}

func (d *Daemon) setState(s State, errMsg string) {
	d.mu.Lock()
	d.status.State = s
	if errMsg != "" {
		d.status.Error = errMsg
	}
	d.mu.Unlock()
	d.publish()
}

func (d *Daemon) publish() {
	d.mu.Lock()
	s := d.status
	s.Components = append([]ComponentStatus(nil), d.status.Components...)
	d.mu.Unlock()
	if err := writeStatus(d.cfg, s); err != nil {
		d.log.Warn("publish status", "err", err)
	}
}
