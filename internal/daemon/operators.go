package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/authn"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/octohq/octo/internal/builder"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/controller"
	"github.com/octohq/octo/internal/cron"
	"github.com/octohq/octo/internal/podapi"
	"github.com/octohq/octo/internal/store"
)

// operators runs the controllers (accounts → bundles → builds → workloads)
// in a controller-runtime manager.
type operators struct {
	cfg config.Config
	log *slog.Logger
	// rc reaches the cluster; blobs holds the versions' code; workerdPath
	// is the extracted runtime the builder puts in the base image.
	rc          *rest.Config
	blobs       *store.BlobStore
	workerdPath string
	// podKey gives the builder each account's pod API credential.
	podKey *podapi.Key
	// validate starts a Worker once: the services' sandboxed validator.
	validate builder.ValidateFunc
	// watched reports whether someone tails a script (the tail hub): its
	// cron runs then go to its traced twin.
	watched func(account, script string) bool

	mgr    manager.Manager
	cancel context.CancelFunc
	done   chan error
}

func (o *operators) Name() string { return "operators" }

// Start builds the manager and runs it.
func (o *operators) Start(ctx context.Context) error {
	s := o
	log := s.log.With("component", "operators")
	if err := os.MkdirAll(s.cfg.Path("tmp"), 0o700); err != nil {
		return fmt.Errorf("create build dir: %w", err)
	}
	ctrl.SetLogger(logr.FromSlogHandler(log.Handler()))
	rc, err := config.LoadRegistryCredentials(s.cfg)
	if err != nil {
		return fmt.Errorf("registry credentials: %w", err)
	}
	b := &builder.Builder{
		Registry: s.cfg.RegistryAddr(), WorkerdPath: s.workerdPath, Blobs: s.blobs,
		Log: s.log.With("component", "builder"), TempDir: s.cfg.Path("tmp"),
		PodCredential: s.podKey.Credential, Validate: s.validate,
		Auth:      &authn.Basic{Username: rc.Username, Password: rc.Password},
		BaseCache: s.cfg.Path("builder", "base.json"),
	}
	opts, err := controller.ManagerOptions(log)
	if err != nil {
		return err
	}
	if o.mgr, err = ctrl.NewManager(s.rc, opts); err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	err = controller.Setup(o.mgr, controller.Options{
		Puller:  newCRIPuller(s.cfg),
		Builder: b, Registry: s.cfg.RegistryAddr(),
		PodHost:     config.BridgeIP + ":" + strconv.Itoa(s.cfg.EdgePort),
		GatewayPort: s.cfg.EdgePort, Log: log, Blobs: s.blobs,
		WorkersPerBundle: s.cfg.WorkersPerBundle,
		ObjectStorage:    controller.HostObjectStorage{Dir: s.cfg.DurableObjectsDir()},
	})
	if err != nil {
		return fmt.Errorf("controllers: %w", err)
	}
	if err := o.mgr.Add(cron.New(cron.Options{Client: o.mgr.GetClient(), Reader: o.mgr.GetAPIReader(),
		Watched: s.watched, Credential: s.podKey.Credential, Log: log.With("part", "cron")})); err != nil {
		return fmt.Errorf("cron scheduler: %w", err)
	}
	ctx, o.cancel = context.WithCancel(ctx)
	o.done = make(chan error, 1)
	go func() { o.done <- o.mgr.Start(ctx) }()
	// The base image (workerd) is built once per workerd version; warm it now.
	go func() {
		if _, err := b.EnsureBase(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("base image", "err", err)
		}
	}()
	return nil
}

// Ready waits for the manager's caches.
func (o *operators) Ready(ctx context.Context) error {
	if !o.mgr.GetCache().WaitForCacheSync(ctx) {
		select {
		case err := <-o.done:
			return fmt.Errorf("manager exited: %v", err)
		default:
			return errors.New("caches did not sync")
		}
	}
	return nil
}

// Stop stops the manager.
func (o *operators) Stop(context.Context) error {
	if o.cancel != nil {
		o.cancel()
		<-o.done
	}
	return nil
}
