// Package kubeproxy runs the upstream kube-proxy (iptables mode) inside the
// octo daemon.
package kubeproxy

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"
	proxyapp "k8s.io/kubernetes/cmd/kube-proxy/app"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed/healthz"
	"github.com/octohq/octo/internal/pki"
)

// Loopback ports of kube-proxy.
const (
	HealthzPort = 10256
	MetricsPort = 10249
)

// KubeProxy is the kube-proxy component.
type KubeProxy struct {
	cfg    config.Config
	pki    *pki.PKI
	cancel context.CancelFunc
	done   chan error
}

// New returns the kube-proxy of cfg.
func New(cfg config.Config, p *pki.PKI) *KubeProxy { return &KubeProxy{cfg: cfg, pki: p} }

// Name implements embed.Component.
func (k *KubeProxy) Name() string { return "kube-proxy" }

// ConfigPath is where the KubeProxyConfiguration is written.
func (k *KubeProxy) ConfigPath() string { return k.cfg.Path("kube-proxy.yaml") }

// Configuration renders the KubeProxyConfiguration. conntrack values of 0
// leave the host's conntrack settings alone.
func (k *KubeProxy) Configuration() string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: %s
bindAddress: %s
healthzBindAddress: %s
metricsBindAddress: %s
hostnameOverride: %s
clientConnection:
  kubeconfig: %q
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  minSyncPeriod: 0s
  syncPeriod: 30s
`, config.ClusterCIDR, config.Host, config.Addr(HealthzPort), config.Addr(MetricsPort), k.cfg.NodeName,
		k.pki.KubeconfigPath("kube-proxy"))
}

// Start writes the configuration and runs the proxy in a goroutine.
func (k *KubeProxy) Start(ctx context.Context) error {
	if err := config.WriteFileAtomic(k.ConfigPath(), []byte(k.Configuration()), 0o600); err != nil {
		return err
	}
	opts := proxyapp.NewOptions()
	fs := pflag.NewFlagSet("kube-proxy", pflag.ContinueOnError)
	opts.AddFlags(fs)
	if err := fs.Parse([]string{"--config=" + k.ConfigPath()}); err != nil {
		return fmt.Errorf("flags: %w", err)
	}
	if err := opts.Complete(fs); err != nil {
		return fmt.Errorf("complete options: %w", err)
	}
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("validate options: %w", err)
	}
	ctx, k.cancel = context.WithCancel(ctx)
	k.done = make(chan error, 1)
	go func() { k.done <- opts.Run(ctx) }()
	return nil
}

// Ready waits until kube-proxy's healthz answers 200 (its first sync is done).
func (k *KubeProxy) Ready(ctx context.Context) error {
	return healthz.Poll(ctx, healthz.Client(nil), "http://"+config.Addr(HealthzPort)+"/healthz", healthz.Exited(k.done))
}

// Stop cancels the proxy. Its iptables rules stay until the teardown.
func (k *KubeProxy) Stop(context.Context) error {
	if k.cancel != nil {
		k.cancel()
	}
	return nil
}
