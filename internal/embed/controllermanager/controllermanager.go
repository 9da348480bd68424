// Package controllermanager runs the upstream kube-controller-manager inside
// the octo daemon.
package controllermanager

import (
	"context"
	"fmt"

	cmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	cmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed/healthz"
	"github.com/octohq/octo/internal/embed/kubeflags"
	"github.com/octohq/octo/internal/pki"
)

// Port is the controller-manager's loopback health and metrics port.
const Port = 10257

// ControllerManager is the kube-controller-manager component.
type ControllerManager struct {
	pki    *pki.PKI
	opts   *cmoptions.KubeControllerManagerOptions
	cancel context.CancelFunc
	done   chan error
}

// New builds the controller-manager's options. It must be called before the
// API server's options are built: its flags override a default of the
// process-wide feature gate, which is refused once another component added
// the feature-gate flags.
func New(cfg config.Config, p *pki.PKI) (*ControllerManager, error) {
	s, err := cmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return nil, fmt.Errorf("kube-controller-manager options: %w", err)
	}
	sets := s.Flags(cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases())
	s.ParsedFlags = &sets
	kc := p.KubeconfigPath("controller-manager")
	args := []string{
		"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--bind-address=" + config.Host, fmt.Sprintf("--secure-port=%d", Port),
		"--tls-cert-file=" + p.Path(pki.ServingName+".crt"), "--tls-private-key-file=" + p.Path(pki.ServingName+".key"),
		"--service-account-private-key-file=" + p.Path("sa.key"),
		"--root-ca-file=" + p.Path("ca.crt"),
		"--cluster-signing-cert-file=" + p.Path("ca.crt"),
		"--cluster-signing-key-file=" + p.Path("ca.key"),
		"--use-service-account-credentials=true",
		"--leader-elect=false",
		"--allocate-node-cidrs=true",
		"--cluster-cidr=" + config.ClusterCIDR,
		"--node-cidr-mask-size=24",
		"--service-cluster-ip-range=" + config.ServiceCIDR,
		// Without the controllers of attachable and expandable volumes:
		// octo's volumes (local-path) are neither, and those controllers
		// set up the CSI volume plugin, whose process-wide node info the
		// kubelet in this process needs (CSINode): set up by them after
		// the kubelet's, it has no node name and the kubelet exits. So
		// both start at once.
		"--controllers=*,-service,-route,-cloud-node-lifecycle,-attachdetach,-persistentvolume-expander",
		"--profiling=false",
	}
	if _, err := kubeflags.Parse("kube-controller-manager", sets, args); err != nil {
		return nil, err
	}
	return &ControllerManager{pki: p, opts: s}, nil
}

// Name implements embed.Component.
func (c *ControllerManager) Name() string { return "kube-controller-manager" }

// Start runs the controllers in a goroutine; the API server must be ready.
func (c *ControllerManager) Start(ctx context.Context) error {
	if err := c.opts.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("feature gates: %w", err)
	}
	ctx, c.cancel = context.WithCancel(ctx)
	conf, err := c.opts.Config(ctx, cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases())
	if err != nil {
		c.cancel()
		return fmt.Errorf("config: %w", err)
	}
	c.done = make(chan error, 1)
	go func() { c.done <- cmapp.Run(ctx, conf.Complete()) }()
	return nil
}

// Ready waits for the component's /healthz.
func (c *ControllerManager) Ready(ctx context.Context) error {
	return healthz.Wait(ctx, Port, c.pki, c.done)
}

// Stop cancels the controllers.
func (c *ControllerManager) Stop(ctx context.Context) error {
	if c.cancel != nil {
		c.cancel()
	}
	return nil
}
