package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/octohq/octo/internal/platform"
)

// gatewayOptions configure `octo gateway`.
type gatewayOptions struct {
	kubeconfig string
	s3         platform.S3
	cfg        platform.GatewayConfig
}

func newGatewayCommand(g *globals) *cobra.Command {
	o := &gatewayOptions{}
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run only the Workers gateway against a cluster",
		Long: `Run the gateway that serves deployed Workers by Host
(<script>.<subdomain>.workers.localhost) from the pods of a cluster: the
kubeconfig's current context. 'octo up' runs it as a child process that owns
the edge port, with --upstream and --tail-feed pointing at the daemon's
sockets; on its own it serves the Workers only (other hosts get 404, and no
Worker is traced for 'wrangler tail').

It needs to read WorkerAccounts, WorkerReleases, WorkerVersions and the
Workers' pods, and to patch WorkerBundles and delete pods (a request past its
CPU limit ends its pod).`,
		Example: `  octo gateway --kubeconfig ~/.kube/config --listen 127.0.0.1:8080`,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runGateway(cmd.Context(), g, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.cfg.Listen, "listen", "127.0.0.1:8787", "address to serve the Workers on")
	addKubeconfigFlag(f, &o.kubeconfig)
	f.StringVar(&o.cfg.Upstream, "upstream", "", "unix socket of the daemon's edge: requests for other hosts go there")
	f.StringVar(&o.cfg.TailFeed, "tail-feed", "", "unix socket of the tail hub's watched feed (which scripts are tailed)")
	f.StringVar(&o.cfg.TailFeedURL, "tail-feed-url", "", "URL of the watched feed of the 'octo api --tails' that holds the tail sessions, asked with OCTO_TAIL_FEED_TOKEN (cluster mode)")
	f.StringVar(&o.cfg.Kubelet.RootDir, "kubelet-root", "", "kubelet root directory when it runs on this host: its pods are reached on their unix sockets")
	f.StringVar(&o.cfg.Kubelet.NodeName, "node-name", "", "name of this host's node (with --kubelet-root)")
	addS3Flags(f, &o.s3, "S3 endpoint host:port (plain HTTP) of the Workers' static assets; keys from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (without: assets-only Workers answer 503)")
	f.StringSliceVar(&o.cfg.HostSuffixes, "host-suffix", nil, "domains the Workers answer under, <script>.<subdomain>.<suffix> (default workers.localhost and workers.dev)")
	f.BoolVar(&o.cfg.Replicated, "replicated", false, "other gateways serve the same Workers (replicas on a cluster): keep the stall marks they may have set")
	f.StringVar(&o.cfg.Metrics.File, "metrics-file", "", "file that keeps the request metrics (a day of minutes per Worker version) across restarts")
	f.StringVar(&o.cfg.Metrics.Socket, "metrics-socket", "", "unix socket serving the request metrics: /metrics (Prometheus) and /series (JSON)")
	f.StringSliceVar(&o.cfg.Warm.Sockets, "warm-socket", nil, "unix sockets of the warm-start hosts, in order (embedded mode): they serve the Workers of --warm-snapshot that no pod serves yet")
	f.StringVar(&o.cfg.Warm.Snapshot, "warm-snapshot", "", "directory of the warm-start snapshot the --warm-socket hosts serve")
	f.Var(timeValue{&o.cfg.Kubelet.Started}, "node-started", "when this host's node started, RFC 3339 (with --kubelet-root): its pods from before get no request until the kubelet reports them again")
	return cmd
}

func runGateway(ctx context.Context, g *globals, o *gatewayOptions) error {
	if (o.cfg.Kubelet.RootDir == "") != (o.cfg.Kubelet.NodeName == "") {
		return exitf(ExitPrecondition, "--kubelet-root and --node-name go together")
	}
	rc, err := restConfig(o.kubeconfig)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	o.cfg.RestConfig = rc
	if o.cfg.TailFeedURL != "" {
		if o.cfg.TailFeedToken = os.Getenv("OCTO_TAIL_FEED_TOKEN"); o.cfg.TailFeedToken == "" {
			return exitf(ExitPrecondition, "--tail-feed-url needs OCTO_TAIL_FEED_TOKEN")
		}
	}
	if o.s3.Endpoint != "" {
		o.s3.AccessKey, o.s3.SecretKey = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
		if o.s3.AccessKey == "" || o.s3.SecretKey == "" {
			return exitf(ExitPrecondition, "--s3-endpoint needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
		}
		o.cfg.S3 = &o.s3
	}
	o.cfg.Log = slog.New(slog.NewTextHandler(g.errOut, nil))
	gw, err := platform.StartGateway(ctx, o.cfg)
	if err != nil {
		return err
	}
	o.cfg.Log.Info("serving Workers", "listen", o.cfg.Listen, "upstream", o.cfg.Upstream)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return gw.Stop(sctx)
}

// timeValue is a flag holding an RFC 3339 time.
type timeValue struct{ t *time.Time }

func (v timeValue) String() string {
	if v.t == nil || v.t.IsZero() {
		return ""
	}
	return v.t.Format(time.RFC3339Nano)
}

func (v timeValue) Set(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("want an RFC 3339 time such as 2006-01-02T15:04:05Z: %w", err)
	}
	*v.t = t
	return nil
}

func (v timeValue) Type() string { return "time" }
