package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/octohq/octo/internal/cfapi"
	"github.com/octohq/octo/internal/gateway"
	"github.com/octohq/octo/internal/platform"
	"github.com/octohq/octo/internal/podapi"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/tail"
)

// apiOptions configure `octo api`.
type apiOptions struct {
	listen     string
	kubeconfig string
	s3         platform.S3
	id         store.Identity
	skipCRDs   bool
	// The pod API, when podListen is set.
	podListen  string
	podKeyFile string
	podCIDRs   []string
	// validate starts each upload once in workerd (extracted to workDir).
	validate bool
	workDir  string
	// d1Dir and tails make this process the owner of the D1 databases and
	// the tail sessions; owner is the owner's URL for the replicas that
	// pass both through to it (platform.Owner).
	d1Dir string
	tails bool
	owner string
}

func newAPICommand(g *globals) *cobra.Command {
	o := &apiOptions{}
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Run only the Cloudflare API (and the pod API) against an existing cluster and S3 store",
		Long: `Run the fake Cloudflare API (what wrangler talks to) on its own, against any
Kubernetes cluster (the kubeconfig's current context) and any S3 store: the
cluster mode of octo. It installs the api.cf-worker/v1 CRDs (unless
--skip-crds), creates the default account and serves until interrupted.

With --pod-api-listen it also serves the pod API, which the Workers' pods
call for KV, R2, static assets and the loader, with the credentials that
'octo operators' derives from the same --pod-api-key-file. With --validate
every upload is started once in workerd before it is stored.

Credentials come from the environment (OCTO_API_TOKEN, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY).`,
		Example: `  OCTO_API_TOKEN=secret AWS_ACCESS_KEY_ID=minio AWS_SECRET_ACCESS_KEY=minio123 \
    octo api --s3-endpoint minio.local:9000 --account-id 0123456789abcdef0123456789abcdef`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runAPI(cmd.Context(), g, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:8787", "address to serve the API on")
	addKubeconfigFlag(f, &o.kubeconfig)
	addS3Flags(f, &o.s3, "S3 endpoint host:port (plain HTTP) of the code and the KV and R2 data")
	f.StringVar(&o.id.AccountID, "account-id", "", "ID of the default account (32 hex)")
	f.StringVar(&o.id.AccountName, "account-name", "octo", "name of the default account")
	f.StringVar(&o.id.Subdomain, "subdomain", "octo", "workers subdomain of the default account")
	f.StringVar(&o.id.Email, "email", "dev@octo.localhost", "e-mail address /user reports")
	f.StringVar(&o.id.Namespace, "account-namespace", store.DefaultNamespace, "namespace of the default account's objects (created if missing)")
	f.StringVar(&o.id.ImagePullSecret, "image-pull-secret", "", "pull secret (in --account-namespace) of the default account's bundle images, when octo creates the account")
	f.BoolVar(&o.skipCRDs, "skip-crds", false, "do not install the CRDs (a chart did): they must exist")
	f.StringVar(&o.podListen, "pod-api-listen", "", "address to serve the pod API on (empty: not served)")
	f.StringVar(&o.podKeyFile, "pod-api-key-file", "", "file of the platform key (32 bytes) that the pods' credentials derive from (with --pod-api-listen)")
	f.StringSliceVar(&o.podCIDRs, "pod-cidr", []string{"0.0.0.0/0", "::/0"}, "networks the pods call the pod API from (loopback is always refused)")
	f.StringVar(&o.d1Dir, "d1-dir", "", "directory of the D1 databases: this process owns them (one replica, on a volume)")
	f.BoolVar(&o.tails, "tails", false, "hold the tail sessions ('wrangler tail'): the pods' trace events come here, the gateways follow "+
		platform.FeedPath+" with OCTO_TAIL_FEED_TOKEN (one replica)")
	f.StringVar(&o.owner, "owner", "", "URL of the 'octo api --d1-dir --tails' that owns the D1 databases and the tail sessions: their API is passed through to it")
	f.BoolVar(&o.validate, "validate", false, "start every upload once in workerd before it is stored")
	f.StringVar(&o.workDir, "work-dir", os.TempDir(), "directory for workerd (with --validate)")
	return cmd
}

func runAPI(ctx context.Context, g *globals, o *apiOptions) error {
	o.id.Token = os.Getenv("OCTO_API_TOKEN")
	switch {
	case o.id.Token == "":
		return exitf(ExitPrecondition, "set OCTO_API_TOKEN: the API refuses to run without a token")
	case len(o.id.AccountID) != 32:
		return exitf(ExitPrecondition, "--account-id must be 32 hex characters")
	case o.podListen != "" && o.podKeyFile == "":
		return exitf(ExitPrecondition, "--pod-api-listen needs --pod-api-key-file")
	case (o.d1Dir != "" || o.tails) && o.owner != "":
		return exitf(ExitPrecondition, "--owner excludes --d1-dir and --tails: a process owns the D1 databases and tails, or passes them through")
	}
	var owner *platform.Owner
	if o.owner != "" {
		u, err := url.Parse(o.owner)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return exitf(ExitPrecondition, "--owner %q: want a URL such as http://octo-state.octo-system.svc", o.owner)
		}
		owner = &platform.Owner{URL: u, Token: o.id.Token}
	}
	if err := s3Keys(&o.s3); err != nil {
		return err
	}
	pod, err := o.podServer()
	if err != nil {
		return err
	}
	rc, err := restConfig(o.kubeconfig)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(g.errOut, nil))
	if len(o.id.Token) < minTokenLength {
		log.Warn("OCTO_API_TOKEN is short: anyone who can reach the API may guess it", "length", len(o.id.Token), "recommended", minTokenLength)
	}
	var validate store.ValidateFunc
	if o.validate {
		v, err := podValidator(o.workDir, log)
		if err != nil {
			return err
		}
		validate = store.WorkerdValidator(v)
	}
	copts := platform.ConnectOptions{S3: o.s3, Identity: o.id, Validate: validate, SkipCRDs: o.skipCRDs, D1Dir: o.d1Dir}
	if owner != nil {
		copts.D1Catalog = owner
	}
	core, err := platform.Connect(ctx, rc, copts)
	if err != nil {
		return err
	}
	var hub *tail.Hub
	if o.tails {
		hub = tail.New(ctx, tail.Options{Resolve: gateway.TailResolver(core.Client), Log: log.With("component", "tail")})
	}
	if pod != nil {
		pod.opts.KV, pod.opts.R2, pod.opts.Code = core.Store.KV(), core.Store.R2(), core.Store.LoaderCode
		if o.d1Dir != "" {
			pod.opts.D1 = core.Store.D1()
		}
		pod.opts.Tail = hub
		pod.opts.Assets = store.CachedManifests(store.AssetFiles{Blobs: core.Store.Blobs()}, platform.ManifestCacheFiles)
		pod.opts.Log = log.With("component", "pod-api")
		srv := podapi.New(pod.opts)
		if err := srv.Start(ctx); err != nil {
			return err
		}
		defer srv.Stop(context.Background())
		log.Info("serving the pod API", "listen", o.podListen)
	}
	api := cfapi.New(cfapi.Options{Identity: o.id, Store: core.Store, Tails: hub, Log: log})
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = cfapi.ErrorHandler
	api.Register(e)
	if hub != nil {
		hub.Register(e)
		if feedToken := os.Getenv("OCTO_TAIL_FEED_TOKEN"); feedToken != "" {
			e.GET(platform.FeedPath, echo.WrapHandler(platform.FeedHandler(hub.FeedHandler(), feedToken)))
		} else {
			log.Warn("no OCTO_TAIL_FEED_TOKEN: the gateways cannot follow which scripts are tailed, and tails get no requests")
		}
	}
	var h http.Handler = e
	if owner != nil {
		h = owner.Proxy(e)
	}
	srv := apiServer(o.listen, h)
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("serving the Cloudflare API", "url", "http://"+o.listen+cfapi.BasePath)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// podServer holds the pod API's options until the store is connected; nil
// when it is not served.
type podServer struct{ opts podapi.Options }

// podServer checks the pod API's flags and loads its key.
func (o *apiOptions) podServer() (*podServer, error) {
	if o.podListen == "" {
		return nil, nil
	}
	host, port, err := net.SplitHostPort(o.podListen)
	if err != nil {
		return nil, exitf(ExitPrecondition, "--pod-api-listen %q: %v", o.podListen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, exitf(ExitPrecondition, "--pod-api-listen %q: bad port", o.podListen)
	}
	key, err := loadPodKey(o.podKeyFile)
	if err != nil {
		return nil, err
	}
	var nets []netip.Prefix
	for _, c := range o.podCIDRs {
		n, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, exitf(ExitPrecondition, "--pod-cidr %q: %v", c, err)
		}
		nets = append(nets, n)
	}
	// An empty host listens on every address of the pod.
	return &podServer{opts: podapi.Options{Host: cmp.Or(host, "0.0.0.0"), Port: p, Key: key, Sources: nets}}, nil
}

// restConfig loads the kubeconfig at path, or the default one ($KUBECONFIG,
// ~/.kube/config, in-cluster) when path is empty: the cluster of the roles
// that run on their own (`octo api`, `octo gateway`).
func restConfig(path string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return rc, nil
}

// minTokenLength is the token length below which `octo api` warns (octo up
// makes 40 hex digits).
const minTokenLength = 16

// apiServer is the http.Server of `octo api`, every timeout set: the API
// has no streams (tails are not served here), only uploads of at most a few
// MiB and KV bulk writes of at most 100 MiB.
func apiServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
	}
}
