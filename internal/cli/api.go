package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/octohq/octo/internal/cfapi"
	"github.com/octohq/octo/internal/platform"
	"github.com/octohq/octo/internal/store"
)

// apiOptions configure `octo api`.
type apiOptions struct {
	listen     string
	kubeconfig string
	s3         platform.S3
	id         store.Identity
}

func newAPICommand(g *globals) *cobra.Command {
	o := &apiOptions{}
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Run only the Cloudflare API against an existing cluster and S3 store",
		Long: `Run the fake Cloudflare API (what wrangler talks to) on its own, against any
Kubernetes cluster (the kubeconfig's current context) and any S3 store: the
cluster mode of octo. It installs the api.cf-worker/v1 CRDs, creates the
default account and serves until interrupted. Credentials come from flags or
the environment (OCTO_API_TOKEN, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).`,
		Example: `  OCTO_API_TOKEN=secret AWS_ACCESS_KEY_ID=minio AWS_SECRET_ACCESS_KEY=minio123 \
    octo api --s3-endpoint minio.local:9000 --account-id 0123456789abcdef0123456789abcdef`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runAPI(cmd.Context(), g, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:8787", "address to serve the API on")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default: $KUBECONFIG, ~/.kube/config or in-cluster)")
	f.StringVar(&o.s3.Endpoint, "s3-endpoint", "", "S3 endpoint host:port (plain HTTP)")
	f.StringVar(&o.s3.Region, "s3-region", "us-east-1", "S3 region")
	f.StringVar(&o.s3.Bucket, "s3-bucket", store.Bucket, "S3 bucket for code and KV data (created if missing)")
	f.StringVar(&o.id.AccountID, "account-id", "", "ID of the default account (32 hex)")
	f.StringVar(&o.id.AccountName, "account-name", "octo", "name of the default account")
	f.StringVar(&o.id.Subdomain, "subdomain", "octo", "workers subdomain of the default account")
	f.StringVar(&o.id.Email, "email", "dev@octo.localhost", "e-mail address /user reports")
	return cmd
}

func runAPI(ctx context.Context, g *globals, o *apiOptions) error {
	o.id.Token = os.Getenv("OCTO_API_TOKEN")
	o.s3.AccessKey, o.s3.SecretKey = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	switch {
	case o.id.Token == "":
		return exitf(ExitPrecondition, "set OCTO_API_TOKEN: the API refuses to run without a token")
	case o.s3.Endpoint == "" || o.s3.AccessKey == "" || o.s3.SecretKey == "":
		return exitf(ExitPrecondition, "set --s3-endpoint, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	case len(o.id.AccountID) != 32:
		return exitf(ExitPrecondition, "--account-id must be 32 hex characters")
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
	core, err := platform.Connect(ctx, rc, o.s3, o.id, nil)
	if err != nil {
		return err
	}
	api := cfapi.New(cfapi.Options{Identity: o.id, Store: core.Store, Log: log})
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = cfapi.ErrorHandler
	api.Register(e)
	srv := apiServer(o.listen, e)
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
