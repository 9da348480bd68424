package fakecf

import (
	"context"
	"fmt"
	"log/slog"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/internal/operators/api/v1"
	"github.com/octohq/octo/internal/operators/crds"
)

// S3Config is how the API reaches its S3 store.
type S3Config struct {
	Endpoint  string // host:port, plain HTTP
	AccessKey string
	SecretKey string
	Region    string
	Bucket    string
}

// Scheme returns a scheme with the Kubernetes built-in types and api.cf-worker/v1.
func Scheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := apiv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return scheme, nil
}

// Assemble connects everything the API needs on a cluster: it installs the
// CRDs, creates the default account and opens the S3 bucket. The daemon and
// the standalone `octo api` both use it. opts' Client and Blobs are filled in.
func Assemble(ctx context.Context, rc *rest.Config, s3 S3Config, opts Options) (*Server, Options, error) {
	// client-go's default of 5 requests/s would make bursts of uploads
	// (each one a few requests) queue for seconds.
	rc = rest.CopyConfig(rc)
	rc.QPS, rc.Burst = 200, 400
	if err := crds.Install(ctx, rc); err != nil {
		return nil, opts, err
	}
	scheme, err := Scheme()
	if err != nil {
		return nil, opts, err
	}
	c, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		return nil, opts, fmt.Errorf("cluster client: %w", err)
	}
	if err := EnsureDefaultAccount(ctx, c, opts.Identity); err != nil {
		return nil, opts, err
	}
	blobs, err := NewBlobStore(ctx, s3.Endpoint, s3.AccessKey, s3.SecretKey, s3.Region, s3.Bucket)
	if err != nil {
		return nil, opts, err
	}
	opts.Client, opts.Blobs = c, blobs
	if opts.Accounts == nil {
		opts.Accounts = ClusterAccounts{Client: c}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return New(opts), opts, nil
}
