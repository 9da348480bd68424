// Package scheduler runs the upstream kube-scheduler inside the octo daemon.
package scheduler

import (
	"context"
	"fmt"

	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedoptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"k8s.io/kubernetes/pkg/scheduler"

	"github.com/octohq/octo/internal/embed/kubeflags"
	"github.com/octohq/octo/internal/pki"
)

// Scheduler is the kube-scheduler component. It serves no port: its health
// and metrics endpoints would cost it a self-signed loopback certificate,
// two RSA keys made at every start (~0.2 s of CPU, while a warm start keeps
// both cores busy), and nothing reads them; Ready watches its informers
// instead.
type Scheduler struct {
	pki    *pki.PKI
	sched  *scheduler.Scheduler
	cancel context.CancelFunc
	done   chan error
}

// New returns the scheduler, authenticating with p's scheduler kubeconfig.
func New(p *pki.PKI) *Scheduler { return &Scheduler{pki: p} }

// Name implements embed.Component.
func (s *Scheduler) Name() string { return "kube-scheduler" }

// Start runs the scheduler in a goroutine; the API server must be ready.
func (s *Scheduler) Start(ctx context.Context) error {
	opts := schedoptions.NewOptions()
	kc := s.pki.KubeconfigPath("scheduler")
	args := []string{
		"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--secure-port=0", "--leader-elect=false", "--profiling=false",
	}
	if _, err := kubeflags.Parse("kube-scheduler", *opts.Flags, args); err != nil {
		return err
	}
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("feature gates: %w", err)
	}
	ctx, s.cancel = context.WithCancel(ctx)
	cc, sched, err := schedapp.Setup(ctx, opts)
	if err != nil {
		s.cancel()
		return fmt.Errorf("setup: %w", err)
	}
	s.sched = sched
	s.done = make(chan error, 1)
	go func() { s.done <- schedapp.Run(ctx, cc, sched) }()
	return nil
}

// Ready waits until the scheduler's event handlers have had the initial
// list of every informer: it schedules from then on, as its own readiness
// check says.
func (s *Scheduler) Ready(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	synced := make(chan error, 1)
	go func() { synced <- s.sched.WaitForHandlersSync(ctx) }()
	select {
	case err := <-synced:
		if err != nil {
			return fmt.Errorf("informers not synced: %w", err)
		}
		return nil
	case err := <-s.done:
		s.done <- err
		return fmt.Errorf("exited: %v", err)
	}
}

// Stop cancels the scheduler's context.
func (s *Scheduler) Stop(context.Context) error {
	if s.cancel != nil {
		s.cancel()
	}
	return nil
}
