package platform

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/authn"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/octohq/octo/internal/builder"
	"github.com/octohq/octo/internal/controller"
	"github.com/octohq/octo/internal/cron"
	"github.com/octohq/octo/internal/store"
)

// OperatorsConfig is what the operators (the controllers, the image builder
// and the cron scheduler) need: the embedded daemon and `octo operators` on
// an existing cluster fill it from their own settings.
type OperatorsConfig struct {
	RestConfig *rest.Config
	// Blobs holds the versions' code.
	Blobs *store.BlobStore
	// Registry is the registry's host:port, where the builder pushes and
	// from where the nodes pull; RegistryAuth signs the pushes.
	Registry     string
	RegistryAuth authn.Authenticator
	// WorkerdPath is the workerd binary put in the base image.
	WorkerdPath string
	// Validate starts a Worker once before its image is built; nil: the
	// builder's default sandbox.
	Validate builder.ValidateFunc
	// PodCredential gives each account's pods their pod API credential.
	PodCredential func(accountID string) string
	// PodHost is host:port of the pod API as the Workers' pods reach it.
	PodHost string
	// OwnerHost is host:port of the pod API of the owner of the D1
	// databases and the tail sessions (Owner); empty: PodHost.
	OwnerHost string
	// HostSuffix ends the Workers' hosts; empty: workers.localhost.
	HostSuffix string
	// GatewayPort completes the URLs written to the releases' status; 0:
	// none.
	GatewayPort int
	// WorkersPerBundle bounds the scripts per bundle; 0: the default.
	WorkersPerBundle int
	// ObjectStorage stores the Durable Objects; nil: such Workers do not run.
	ObjectStorage controller.ObjectStorage
	// Puller fetches built images onto the node ahead of the pods (one node
	// only); nil: the kubelet pulls them.
	Puller controller.ImagePuller
	// Watched reports whether someone tails a script; nil: nobody.
	Watched func(account, script string) bool
	// TempDir holds the builds' files; BaseCache remembers the base image
	// (empty: none).
	TempDir, BaseCache string
	// LeaderElectionNamespace, when set, makes the replicas elect one
	// leader with a Lease there (several replicas on a cluster); empty: this
	// is the only one.
	LeaderElectionNamespace string
	// LeaderElectionID names the Lease; empty: LeaderElectionID.
	LeaderElectionID string
	Log              *slog.Logger
}

// LeaderElectionID is the default name of the operators' Lease.
const LeaderElectionID = "octo-operators"

// Operators is the operators' manager and the builder it drives.
type Operators struct {
	Manager manager.Manager
	Builder *builder.Builder
}

// NewOperators builds the manager with every controller and the cron
// scheduler; Start runs it.
func NewOperators(cfg OperatorsConfig) (*Operators, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctrl.SetLogger(logr.FromSlogHandler(log.Handler()))
	b := &builder.Builder{
		Registry: cfg.Registry, WorkerdPath: cfg.WorkerdPath, Blobs: cfg.Blobs,
		Log: log.With("component", "builder"), TempDir: cfg.TempDir,
		PodCredential: cfg.PodCredential, Validate: cfg.Validate,
		Auth: cfg.RegistryAuth, BaseCache: cfg.BaseCache,
	}
	opts, err := controller.ManagerOptions(log)
	if err != nil {
		return nil, err
	}
	if cfg.LeaderElectionNamespace != "" {
		opts.LeaderElection = true
		opts.LeaderElectionID = cmp.Or(cfg.LeaderElectionID, LeaderElectionID)
		opts.LeaderElectionNamespace = cfg.LeaderElectionNamespace
		// A replica that stops hands the Lease over at once, not after
		// its 15 s lease duration.
		opts.LeaderElectionReleaseOnCancel = true
	}
	mgr, err := ctrl.NewManager(cfg.RestConfig, opts)
	if err != nil {
		return nil, fmt.Errorf("manager: %w", err)
	}
	err = controller.Setup(mgr, controller.Options{
		Puller: cfg.Puller, Builder: b, Registry: cfg.Registry,
		PodHost: cfg.PodHost, OwnerHost: cfg.OwnerHost, HostSuffix: cfg.HostSuffix, GatewayPort: cfg.GatewayPort,
		Log: log, Blobs: cfg.Blobs, WorkersPerBundle: cfg.WorkersPerBundle, ObjectStorage: cfg.ObjectStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("controllers: %w", err)
	}
	if err := mgr.Add(cron.New(cron.Options{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(),
		Watched: cfg.Watched, Credential: cfg.PodCredential, Log: log.With("part", "cron")})); err != nil {
		return nil, fmt.Errorf("cron scheduler: %w", err)
	}
	// The base image (workerd) is built once per workerd version; the leader
	// warms it as soon as it leads.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		if _, err := b.EnsureBase(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("base image", "err", err)
		}
		return nil
	})); err != nil {
		return nil, fmt.Errorf("base image: %w", err)
	}
	return &Operators{Manager: mgr, Builder: b}, nil
}
