// Package scheduler runs the upstream kube-scheduler inside the octo daemon.
package scheduler

import (
	"context"
	"fmt"

	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedoptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed/healthz"
	"github.com/octohq/octo/internal/embed/kubeflags"
	"github.com/octohq/octo/internal/pki"
)

// Port is the scheduler's loopback health and metrics port.
const Port = 10259

// Scheduler is the kube-scheduler component.
type Scheduler struct {
	pki    *pki.PKI
	cancel context.CancelFunc
	done   chan error
}

// New returns the scheduler of a cluster whose PKI is p.
func New(p *pki.PKI) *Scheduler { return &Scheduler{pki: p} }

// Name implements embed.Component.
func (s *Scheduler) Name() string { return "kube-scheduler" }

// Start sets the scheduler up and runs it in a goroutine.
func (s *Scheduler) Start(ctx context.Context) error {
	opts := schedoptions.NewOptions()
	kc := s.pki.KubeconfigPath("scheduler")
	args := []string{
		"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--bind-address=" + config.Host, fmt.Sprintf("--secure-port=%d", Port),
		"--tls-cert-file=" + s.pki.Path(pki.ServingName+".crt"), "--tls-private-key-file=" + s.pki.Path(pki.ServingName+".key"),
		"--leader-elect=false", "--profiling=false",
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
	s.done = make(chan error, 1)
	go func() { s.done <- schedapp.Run(ctx, cc, sched) }()
	return nil
}

// Ready waits for the component's /healthz.
func (s *Scheduler) Ready(ctx context.Context) error {
	return healthz.Wait(ctx, Port, s.pki, s.done)
}

// Stop cancels the scheduler.
func (s *Scheduler) Stop(context.Context) error {
	if s.cancel != nil {
		s.cancel()
	}
	return nil
}
