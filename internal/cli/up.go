package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/vishvananda/netlink"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/controller"
	"github.com/octohq/octo/internal/daemon"
	"github.com/octohq/octo/internal/kubeconfig"
	"github.com/octohq/octo/internal/precheck"
	"github.com/octohq/octo/internal/teardown"
	"github.com/octohq/octo/web"
)

type upOptions struct {
	foreground bool
	noMerge    bool
	wait       time.Duration
	ports      config.Config // only the port fields are used
	// workersPerBundle is --workers-per-bundle.
	workersPerBundle  int
	logsRetentionDays int
	// platform is --workers-platform (false: config.BareCluster).
	platform bool
	// insecure is --insecure-registry.
	insecure []string
}

func newUpCommand(g *globals) *cobra.Command {
	o := &upOptions{ports: config.Default("")}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start octo and wait until every part is healthy",
		Long: `Start the octo daemon in the background and wait until every part (kine,
kube-apiserver, controller-manager, scheduler, kubelet, kube-proxy, containerd,
S3 store, registry) is ready, printing a checklist as parts come up.

State in the data dir is kept across 'octo down' / 'octo up': Kubernetes objects
and their pods, S3 objects and registry images come back. If a previous daemon
was killed, 'octo up' cleans what it left on the host first.

Ports given here are saved in the data dir and reused by later commands.`,
		Example: `  sudo octo up
  sudo octo up --data-dir /tmp/octo --edge-port 18787 --s3-port 19000
  sudo octo up --foreground      # run attached; Ctrl-C stops and cleans up
  sudo octo up --workers-platform=false   # a bare cluster, S3 and registry only`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runUp(cmd, g, o) },
	}
	f := cmd.Flags()
	f.BoolVar(&o.foreground, "foreground", false, "run the daemon attached to this terminal (Ctrl-C = down)")
	f.BoolVar(&o.noMerge, "no-kubeconfig-merge", false, "do not merge the cluster into ~/.kube/config as context \"octo\"")
	f.DurationVar(&o.wait, "wait", daemon.StartTimeout, "how long to wait for every part to be ready")
	f.IntVar(&o.ports.EdgePort, "edge-port", config.DefaultEdgePort, "loopback port of the edge server (API, dashboard, Workers)")
	f.IntVar(&o.ports.RegistryPort, "registry-port", config.DefaultRegistryPort, "loopback port of the OCI registry")
	f.IntVar(&o.ports.S3Port, "s3-port", config.DefaultS3Port, "loopback port of the S3 store")
	f.IntVar(&o.ports.APIServerPort, "apiserver-port", config.DefaultAPIServerPort, "loopback port of kube-apiserver")
	f.IntVar(&o.ports.KubeletPort, "kubelet-port", config.DefaultKubeletPort, "loopback port of the kubelet API")
	f.IntVar(&o.workersPerBundle, "workers-per-bundle", controller.DefaultWorkersPerBundle,
		"most scripts one workerd process runs; an account with more gets more bundles (kept for later 'octo up')")
	f.BoolVar(&o.platform, "workers-platform", true,
		"run octo's Workers platform (API, dashboard, gateway, operators); false leaves a bare cluster with S3 and a registry, "+
			"to install octo's chart into as on any cluster (kept for later 'octo up')")
	f.StringSliceVar(&o.insecure, "insecure-registry", nil,
		"registry host:port the node pulls from over plain HTTP, e.g. one on the pod bridge 10.42.0.1 (repeatable; kept for later 'octo up')")
	f.IntVar(&o.logsRetentionDays, "logs-retention-days", 3,
		"days the logs of Workers with [observability] enabled are kept (kept for later 'octo up')")
	return cmd
}

// resolveUpConfig merges the saved configuration with the flags the user set.
func resolveUpConfig(cmd *cobra.Command, g *globals, o *upOptions) (config.Config, error) {
	cfg, err := g.config()
	if err != nil {
		return cfg, err
	}
	f := cmd.Flags()
	set := func(name string, dst *int, v int) {
		if f.Changed(name) {
			*dst = v
		}
	}
	set("edge-port", &cfg.EdgePort, o.ports.EdgePort)
	set("registry-port", &cfg.RegistryPort, o.ports.RegistryPort)
	set("s3-port", &cfg.S3Port, o.ports.S3Port)
	set("apiserver-port", &cfg.APIServerPort, o.ports.APIServerPort)
	set("kubelet-port", &cfg.KubeletPort, o.ports.KubeletPort)
	set("workers-per-bundle", &cfg.WorkersPerBundle, o.workersPerBundle)
	if f.Changed("workers-per-bundle") && o.workersPerBundle < 1 {
		return cfg, fmt.Errorf("--workers-per-bundle must be 1 or more, not %d", o.workersPerBundle)
	}
	set("logs-retention-days", &cfg.LogsRetentionDays, o.logsRetentionDays)
	if f.Changed("logs-retention-days") && (o.logsRetentionDays < 1 || o.logsRetentionDays > 365) {
		return cfg, fmt.Errorf("--logs-retention-days must be from 1 to 365, not %d", o.logsRetentionDays)
	}
	if f.Changed("workers-platform") {
		cfg.BareCluster = !o.platform
	}
	if f.Changed("insecure-registry") {
		for _, r := range o.insecure {
			if _, _, err := net.SplitHostPort(r); err != nil {
				return cfg, fmt.Errorf("--insecure-registry %q: want host:port", r)
			}
		}
		cfg.InsecureRegistries = o.insecure
	}
	if f.Changed("no-kubeconfig-merge") || cfg.NodeName == "" {
		cfg.MergeKubeconfig = !o.noMerge
	}
	if cfg.NodeName, err = os.Hostname(); err != nil {
		return cfg, fmt.Errorf("hostname: %w", err)
	}
	if cfg.NodeIP, err = nodeIP(); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func runUp(cmd *cobra.Command, g *globals, o *upOptions) error {
	cfg, err := resolveUpConfig(cmd, g, o)
	if err != nil {
		return exitf(ExitPrecondition, "%v", err)
	}
	if pid, alive := daemon.RunningPID(cfg); alive {
		return exitf(ExitFailure, "octo is already running (pid %d, data dir %s): see 'octo status', or stop it with 'octo down'", pid, cfg.DataDir)
	}
	if daemon.StalePIDFile(cfg) {
		fmt.Fprintln(g.errOut, "• A previous octo did not stop cleanly; cleaning up what it left on the host")
		if err := teardown.Clean(cmd.Context(), cfg, quietLogger(g.errOut)); err != nil {
			fmt.Fprintf(g.errOut, "  warning: %v\n", err)
		}
		_ = os.Remove(cfg.PIDPath())
	}
	if problems := precheck.Run(cfg, precheck.Options{}); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(g.errOut, "✗ %s\n", p.Message)
		}
		return exitf(ExitPrecondition, "%d precondition(s) failed; nothing was started", len(problems))
	}
	if err := cfg.Save(); err != nil {
		return err
	}
	if o.foreground {
		return runForeground(cmd.Context(), g, cfg, o)
	}
	pid, err := spawnDaemon(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.errOut, "Starting octo (pid %d, data dir %s)\n", pid, cfg.DataDir)
	st, err := waitReady(cmd.Context(), cfg, o.wait, g.errOut)
	if err != nil {
		return err
	}
	return afterReady(g, cfg, st)
}

// afterReady merges the kubeconfig and prints the endpoints.
func afterReady(g *globals, cfg config.Config, st daemon.Status) error {
	if cfg.MergeKubeconfig {
		path, err := kubeconfig.Merge(cfg.KubeconfigPath(), kubeconfig.DefaultPath())
		if err != nil {
			fmt.Fprintf(g.errOut, "warning: kubeconfig not merged: %v\n", err)
		} else {
			fmt.Fprintf(g.errOut, "Kubeconfig context \"octo\" set in %s\n", path)
		}
	}
	fmt.Fprintf(g.errOut, "octo is up after %s.\n\n", time.Since(st.StartedAt).Round(100*time.Millisecond))
	es := endpoints(cfg, defaultSubdomain(cfg))
	if cfg.BareCluster {
		renderEndpoints(g.out, es)
		fmt.Fprintln(g.out, "\nA bare cluster: octo's Workers platform is off (--workers-platform=false).")
		fmt.Fprintln(g.out, "\nNext: octo kubectl get nodes   ·   octo status   ·   octo down")
		return nil
	}
	link, err := dashboardLoginURL(cfg, time.Now())
	if err != nil {
		fmt.Fprintf(g.errOut, "warning: no dashboard login link: %v\n", err)
	} else {
		es = withLoginLink(es, link)
	}
	renderEndpoints(g.out, es)
	if err == nil {
		fmt.Fprintf(g.out, "\nThe dashboard login link works once, within %d minutes: 'sudo octo dashboard' prints a new one.\n",
			int(web.LoginTTL/time.Minute))
	}
	fmt.Fprintln(g.out, "\nNext: octo kubectl get nodes   ·   eval \"$(octo env)\"   ·   octo status   ·   octo down")
	return nil
}

func spawnDaemon(cfg config.Config) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find own executable: %w", err)
	}
	if err := os.MkdirAll(cfg.Path("logs"), 0o700); err != nil {
		return 0, fmt.Errorf("create log dir: %w", err)
	}
	logf, err := os.OpenFile(cfg.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("open daemon log: %w", err)
	}
	defer logf.Close()
	c := exec.Command(self, daemon.DaemonCommand, "--data-dir", cfg.DataDir)
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return 0, fmt.Errorf("start daemon: %w", err)
	}
	pid := c.Process.Pid
	_ = c.Process.Release()
	return pid, nil
}

// waitReady follows the daemon's published status and prints a checklist
// line per component as it becomes ready.
func waitReady(ctx context.Context, cfg config.Config, timeout time.Duration, w io.Writer) (daemon.Status, error) {
	deadline := time.Now().Add(timeout)
	printed := map[string]bool{}
	var last daemon.Status
	seenRunning := false
	for {
		st, err := daemon.ReadStatus(cfg)
		if err == nil {
			last = st
			for _, c := range st.Components {
				if c.State == daemon.Ready && !printed[c.Name] {
					printed[c.Name] = true
					fmt.Fprintf(w, " ✓ %-24s %s\n", c.Name, time.Duration(c.ReadyAfter).Round(10*time.Millisecond))
				}
				if c.State == daemon.Failed && !printed[c.Name] {
					printed[c.Name] = true
					fmt.Fprintf(w, " ✗ %-24s %s\n", c.Name, c.Error)
				}
			}
			switch st.State {
			case daemon.Ready:
				return st, nil
			case daemon.Failed, daemon.Stopping:
				return st, exitf(ExitFailure, "octo failed to start: %s\n  logs: octo logs, octo logs <part> (parts: %s)", st.Error, cfg.Path("logs"))
			case daemon.NotRunning:
				if seenRunning || time.Since(deadline.Add(-timeout)) > 5*time.Second {
					return st, exitf(ExitFailure, "the octo daemon exited during start; see 'octo logs' (%s)", cfg.LogPath())
				}
			default:
				seenRunning = true
			}
		}
		if time.Now().After(deadline) {
			return last, exitf(ExitFailure, "octo was not ready after %s; see 'octo status' and 'octo logs'", timeout)
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(statusPoll):
		}
	}
}

// statusPoll is how often waitReady reads the daemon's status file: a read
// of a small file, often enough that octo up returns within a few
// milliseconds of the daemon being ready.
const statusPoll = 20 * time.Millisecond

// runForeground runs the daemon in this process until Ctrl-C or SIGTERM.
func runForeground(ctx context.Context, g *globals, cfg config.Config, o *upOptions) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(g.errOut, nil))
	daemon.TuneMemory()
	d, err := daemon.New(cfg, log)
	if err != nil {
		return err
	}
	go func() {
		if st, err := waitReady(ctx, cfg, o.wait, io.Discard); err == nil {
			_ = afterReady(g, cfg, st)
		}
	}()
	return d.Run(ctx)
}

func newDaemonCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    daemon.DaemonCommand,
		Short:  "Run the octo daemon (started by 'octo up')",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			daemon.TuneMemory()
			d, err := daemon.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
			if err != nil {
				return err
			}
			return d.Run(ctx)
		},
	}
}

// nodeIP is the IPv4 address of the interface holding the default route: the
// kubelet refuses a loopback node address.
func nodeIP() (string, error) {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err == nil {
		for _, r := range routes {
			if r.Dst != nil && !r.Dst.IP.IsUnspecified() {
				continue
			}
			link, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil {
				continue
			}
			addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
			if err == nil && len(addrs) > 0 {
				return addrs[0].IP.String(), nil
			}
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() && !n.IP.Equal(net.ParseIP(config.BridgeIP)) {
			return n.IP.String(), nil
		}
	}
	return "", errors.New("no non-loopback IPv4 address found: the kubelet needs one as the node address")
}

func quietLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
