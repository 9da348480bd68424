package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/octohq/octo/internal/builder"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/operators/controllers"
)

// operators runs the controllers (accounts → bundles → builds → workloads)
// in a controller-runtime manager, on the services the edge built.
type operators struct {
	svc    *services
	mgr    manager.Manager
	cancel context.CancelFunc
	done   chan error
}

func (o *operators) Name() string { return "operators" }

// Start builds the manager and runs it.
func (o *operators) Start(ctx context.Context) error {
	s := o.svc
	if err := s.build(ctx); err != nil {
		return err
	}
	log := s.log.With("component", "operators")
	if err := os.MkdirAll(s.cfg.Path("tmp"), 0o700); err != nil {
		return fmt.Errorf("create build dir: %w", err)
	}
	ctrl.SetLogger(logr.FromSlogHandler(log.Handler()))
	b := &builder.Builder{
		Registry: s.cfg.RegistryAddr(), WorkerdPath: s.workerd, Blobs: s.apiOpts.Blobs,
		Log: s.log.With("component", "builder"), TempDir: s.cfg.Path("tmp"),
	}
	opts, err := controllers.ManagerOptions(log)
	if err != nil {
		return err
	}
	if o.mgr, err = ctrl.NewManager(s.rc, opts); err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	err = controllers.Setup(o.mgr, controllers.Options{
		Builder: b, Registry: s.cfg.RegistryAddr(),
		PodHost:     config.BridgeIP + ":" + strconv.Itoa(s.cfg.EdgePort),
		GatewayPort: s.cfg.EdgePort, Log: log, Blobs: s.apiOpts.Blobs,
	})
	if err != nil {
		return fmt.Errorf("controllers: %w", err)
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
