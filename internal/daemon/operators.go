package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/google/go-containerregistry/pkg/authn"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/octohq/octo/internal/builder"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/controller"
	"github.com/octohq/octo/internal/platform"
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
	// code reads a version's code for the warm-start snapshot
	// (keepWarmSnapshot).
	code VersionCodeFunc

	mgr    manager.Manager
	cancel context.CancelFunc
	done   chan error
}

func (o *operators) Name() string { return "operators" }

// Start builds the manager and runs it.
func (o *operators) Start(ctx context.Context) error {
	log := o.log.With("component", "operators")
	if err := os.MkdirAll(o.cfg.Path("tmp"), 0o700); err != nil {
		return fmt.Errorf("create build dir: %w", err)
	}
	rc, err := config.LoadRegistryCredentials(o.cfg)
	if err != nil {
		return fmt.Errorf("registry credentials: %w", err)
	}
	ops, err := platform.NewOperators(platform.OperatorsConfig{
		RestConfig: o.rc, Blobs: o.blobs, Registry: o.cfg.RegistryAddr(),
		RegistryAuth: &authn.Basic{Username: rc.Username, Password: rc.Password},
		WorkerdPath:  o.workerdPath, Validate: o.validate, PodCredential: o.podKey.Credential,
		PodHost:     config.BridgeIP + ":" + strconv.Itoa(o.cfg.EdgePort),
		GatewayPort: o.cfg.EdgePort, WorkersPerBundle: o.cfg.WorkersPerBundle,
		ObjectStorage: controller.HostObjectStorage{Dir: o.cfg.DurableObjectsDir()},
		Puller:        newCRIPuller(o.cfg), Watched: o.watched,
		TempDir: o.cfg.Path("tmp"), BaseCache: o.cfg.Path("builder", "base.json"),
		Log: log,
	})
	if err != nil {
		return err
	}
	o.mgr = ops.Manager
	if err := o.mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		return keepWarmSnapshot(ctx, o.mgr.GetCache(), warmSnapshot(o.cfg), o.code, log)
	})); err != nil {
		return fmt.Errorf("warm-start snapshot: %w", err)
	}
	ctx, o.cancel = context.WithCancel(ctx)
	o.done = make(chan error, 1)
	go func() { o.done <- o.mgr.Start(ctx) }()
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
