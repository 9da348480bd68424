package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/octohq/octo/internal/controller"
	"github.com/octohq/octo/internal/platform"
	"github.com/octohq/octo/internal/podapi"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
)

// operatorsOptions configure `octo operators`.
type operatorsOptions struct {
	kubeconfig   string
	s3           platform.S3
	registry     string
	podAPI       string
	ownerPodAPI  string
	podKeyFile   string
	hostSuffix   string
	workDir      string
	leaderNS     string
	leaderID     string
	storageClass string
	perBundle    int
}

func newOperatorsCommand(g *globals) *cobra.Command {
	o := &operatorsOptions{}
	cmd := &cobra.Command{
		Use:   "operators",
		Short: "Run only the operators (controllers, image builder, cron) against a cluster",
		Long: `Run octo's operators on their own, against any Kubernetes cluster (the
kubeconfig's current context, or the pod's service account): the controllers
that turn WorkerAccounts and WorkerReleases into bundle images, Deployments
and Services, the image builder and the cron scheduler. Its Helm chart
(deploy/octo) runs two replicas that elect a leader with a Lease.

The builder reads the Workers' code from S3 and pushes the bundle images to
--registry, from where the nodes pull them (a WorkerAccount's
podTemplate.imagePullSecret names the pull secret). The Workers' pods reach
the pod API (KV, R2, assets, the loader) at --pod-api with credentials
derived from the platform key (--pod-api-key-file, shared with 'octo api').
Durable Objects live on a PersistentVolumeClaim per account.

Credentials come from the environment: AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY for S3, REGISTRY_USERNAME and REGISTRY_PASSWORD for
the registry (none: anonymous pushes).`,
		Example: `  AWS_ACCESS_KEY_ID=minio AWS_SECRET_ACCESS_KEY=minio123 \
    octo operators --s3-endpoint minio.storage:9000 --registry registry.example.com:5000 \
      --pod-api octo-pod-api.octo-system.svc.cluster.local:8788 --pod-api-key-file /etc/octo/pod-api.key \
      --leader-elect-namespace octo-system`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runOperators(cmd.Context(), g, o) },
	}
	f := cmd.Flags()
	addKubeconfigFlag(f, &o.kubeconfig)
	addS3Flags(f, &o.s3, "S3 endpoint host:port (plain HTTP) of the Workers' code")
	f.StringVar(&o.registry, "registry", "", "registry host:port that the builder pushes the bundle images to and the nodes pull them from")
	f.StringVar(&o.podAPI, "pod-api", "", "host:port of the pod API ('octo api --pod-api-listen') as the Workers' pods reach it")
	f.StringVar(&o.ownerPodAPI, "owner-pod-api", "", "host:port of the pod API of the owner of the D1 databases and the tail sessions ('octo api --d1-dir --tails'), when it is not --pod-api")
	f.StringVar(&o.podKeyFile, "pod-api-key-file", "", "file of the platform key (32 bytes) from which the pods' credentials derive")
	f.StringVar(&o.hostSuffix, "host-suffix", controller.DefaultHostSuffix, "domain under which Workers answer: <script>.<subdomain>.<host-suffix>")
	f.StringVar(&o.workDir, "work-dir", os.TempDir(), "directory for workerd and the builds' files")
	f.StringVar(&o.leaderNS, "leader-elect-namespace", inClusterNamespace(), "namespace of the replicas' leader Lease (empty: no election, run one replica only)")
	f.StringVar(&o.leaderID, "leader-elect-id", platform.LeaderElectionID, "name of the leader Lease (one per installation in a namespace)")
	f.StringVar(&o.storageClass, "object-storage-class", "", "StorageClass of the Durable Objects' claims (default: the cluster's default)")
	f.IntVar(&o.perBundle, "workers-per-bundle", controller.DefaultWorkersPerBundle, "most scripts one WorkerBundle (one workerd pod) runs")
	return cmd
}

// addKubeconfigFlag adds --kubeconfig, the cluster a role runs against
// (restConfig).
func addKubeconfigFlag(f *pflag.FlagSet, path *string) {
	f.StringVar(path, "kubeconfig", "", "kubeconfig of the cluster (default: $KUBECONFIG, ~/.kube/config or in-cluster)")
}

// addS3Flags adds the flags that reach an S3 store; the keys come from the
// environment (s3Keys).
func addS3Flags(f *pflag.FlagSet, s3 *platform.S3, endpointHelp string) {
	f.StringVar(&s3.Endpoint, "s3-endpoint", "", endpointHelp)
	f.StringVar(&s3.Region, "s3-region", "us-east-1", "S3 region")
	f.StringVar(&s3.Bucket, "s3-bucket", store.Bucket, "S3 bucket (created if missing)")
}

// s3Keys reads the S3 keys from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
func s3Keys(s3 *platform.S3) error {
	s3.AccessKey, s3.SecretKey = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if s3.Endpoint == "" || s3.AccessKey == "" || s3.SecretKey == "" {
		return exitf(ExitPrecondition, "set --s3-endpoint, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	return nil
}

// inClusterNamespace is the namespace of the pod this runs in, or "".
func inClusterNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func runOperators(ctx context.Context, g *globals, o *operatorsOptions) error {
	if err := s3Keys(&o.s3); err != nil {
		return err
	}
	switch {
	case o.registry == "":
		return exitf(ExitPrecondition, "set --registry: the builder pushes the bundle images there")
	case o.podAPI == "" || o.podKeyFile == "":
		return exitf(ExitPrecondition, "set --pod-api and --pod-api-key-file: the Workers' pods call the pod API")
	}
	key, err := loadPodKey(o.podKeyFile)
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
	blobs, err := store.NewBlobStore(ctx, o.s3.Endpoint, o.s3.AccessKey, o.s3.SecretKey, o.s3.Region, o.s3.Bucket)
	if err != nil {
		return err
	}
	validator, err := podValidator(o.workDir, log)
	if err != nil {
		return err
	}
	// Durable Objects live on a claim per account, made through a client of
	// their own (the manager's is built by NewOperators).
	scheme, err := controller.Scheme()
	if err != nil {
		return err
	}
	claims, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("cluster client: %w", err)
	}
	var auth authn.Authenticator = authn.Anonymous
	if u := os.Getenv("REGISTRY_USERNAME"); u != "" {
		auth = &authn.Basic{Username: u, Password: os.Getenv("REGISTRY_PASSWORD")}
	}
	ops, err := platform.NewOperators(platform.OperatorsConfig{
		RestConfig: rc, Blobs: blobs, Registry: o.registry, RegistryAuth: auth,
		WorkerdPath: validator.Bin, Validate: validator.Validate, PodCredential: key.Credential,
		PodHost: o.podAPI, OwnerHost: o.ownerPodAPI, HostSuffix: o.hostSuffix, WorkersPerBundle: o.perBundle,
		ObjectStorage: controller.ClaimObjectStorage{Client: claims, StorageClass: o.storageClass},
		TempDir:       filepath.Join(o.workDir, "builds"), LeaderElectionNamespace: o.leaderNS, LeaderElectionID: o.leaderID, Log: log,
	})
	if err != nil {
		return err
	}
	log.Info("operators starting", "registry", o.registry, "pod-api", o.podAPI, "leader-election", o.leaderNS != "")
	if err := ops.Manager.Start(ctx); err != nil {
		return fmt.Errorf("operators: %w", err)
	}
	return nil
}

// loadPodKey reads the platform key of the pods' credentials.
func loadPodKey(path string) (*podapi.Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, exitf(ExitPrecondition, "read the pod API key: %v", err)
	}
	return podapi.NewKey(b)
}

// podValidator extracts workerd into dir and returns a validator for the
// roles that run in a pod: workerd keeps the pod's user, and the pod's
// resource limits bound it (a pod cannot make cgroups of its own).
func podValidator(dir string, log *slog.Logger) (*workerd.Validator, error) {
	for _, d := range []string{"bin", "validate", "builds"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("work dir: %w", err)
		}
	}
	bin, err := workerd.Extract(filepath.Join(dir, "bin"))
	if err != nil {
		return nil, err
	}
	return &workerd.Validator{Bin: bin, Log: log.With("component", "validate"),
		Sandbox: workerd.Sandbox{AllowNoCgroup: true, TempDir: filepath.Join(dir, "validate")}}, nil
}
