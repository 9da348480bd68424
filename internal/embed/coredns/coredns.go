// Package coredns runs the cluster's DNS server in the daemon's process, as
// k3s runs CoreDNS: Service and pod names under cluster.local resolve from
// the API server, other names are forwarded to the host's resolvers. It
// listens on the pods' gateway (config.BridgeIP), which only the host and
// the pods reach (the pod network's firewall), and the kubelet hands that
// address to every pod (clusterDNS).
package coredns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"k8s.io/klog/v2"

	// The plugins the Corefile uses; each registers itself.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/kubernetes"

	"github.com/octohq/octo/internal/config"
)

// Port is the DNS port the server listens on, at config.ClusterDNS.
const Port = 53

// startMu serializes caddy.Start: CoreDNS's setup shares package state
// (klog's logger among it).
var startMu sync.Mutex

// klogBack is the directive, placed right after "kubernetes", that gives
// klog back to the daemon's router: the kubernetes plugin's setup takes it
// over (klog.SetLogger), and caddy.Start then waits up to 5 s for the
// plugin's first list, while the embedded Kubernetes parts start and log.
const klogBack = "octo_klog"

// registerKlogBack registers klogBack once (startMu held).
func registerKlogBack() {
	if slices.Contains(dnsserver.Directives, klogBack) {
		return
	}
	plugin.Register(klogBack, func(*caddy.Controller) error {
		klog.ClearLogger()
		return nil
	})
	i := slices.Index(dnsserver.Directives, "kubernetes")
	dnsserver.Directives = slices.Insert(dnsserver.Directives, i+1, klogBack)
}

// Server is the embedded CoreDNS.
type Server struct {
	cfg config.Config
	log *slog.Logger
	// started is closed once caddy.Start has returned, with inst or err.
	started chan struct{}
	inst    *caddy.Instance
	err     error
	// listen is the bind address and port (Address, Port by default; tests
	// use loopback and a free port).
	listen string
	port   int
	// upstream is where other names go: a resolv.conf file or addresses.
	upstream string
}

// New returns the server for cfg, listening on config.ClusterDNS:Port and forwarding
// other names to the host's /etc/resolv.conf.
func New(cfg config.Config, log *slog.Logger) *Server {
	return &Server{cfg: cfg, log: log, listen: config.ClusterDNS, port: Port, upstream: "/etc/resolv.conf"}
}

// Name implements embed.Component.
func (s *Server) Name() string { return "coredns" }

// Endpoint implements embed.Endpointer.
func (s *Server) Endpoint() string {
	return "dns://" + net.JoinHostPort(s.listen, strconv.Itoa(s.port))
}

// Corefile is the server's configuration: the kubernetes plugin answers
// for config.ClusterDomain and the reverse zones from the API server (with the admin
// kubeconfig), everything else goes to the host's resolvers, cached 30 s.
func (s *Server) Corefile() string {
	return fmt.Sprintf(`.:%d {
    bind %s
    errors
    kubernetes %s in-addr.arpa ip6.arpa {
        kubeconfig %q
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    %s
    forward . %s
    cache 30
}
`, s.port, s.listen, config.ClusterDomain, s.cfg.KubeconfigPath(), klogBack, s.upstream)
}

// Start starts the server in the background: caddy.Start waits until the
// kubernetes plugin has listed the cluster's Services (at most its 5 s
// startup timeout, under the load of a warm start), which must not hold
// the components started after it.
func (s *Server) Start(context.Context) error {
	s.started = make(chan struct{})
	go func() {
		defer close(s.started)
		startMu.Lock()
		defer startMu.Unlock()
		caddy.Quiet, dnsserver.Quiet = true, true
		registerKlogBack()
		inst, err := caddy.Start(caddy.CaddyfileInput{ServerTypeName: "dns", Filepath: "Corefile", Contents: []byte(s.Corefile())})
		// klogBack ran in the setup; again in case a setup failed before it.
		klog.ClearLogger()
		if err != nil {
			s.err = startError(err, s.listen, s.port)
			return
		}
		s.inst = inst
		s.log.Info("serving cluster DNS", "address", s.Endpoint(), "domain", config.ClusterDomain)
	}()
	return nil
}

// Ready waits until the server has started and accepts connections.
func (s *Server) Ready(ctx context.Context) error {
	select {
	case <-s.started:
	case <-ctx.Done():
		return fmt.Errorf("wait for the start: %w", context.Cause(ctx))
	}
	if s.err != nil {
		return s.err
	}
	addr := net.JoinHostPort(s.listen, strconv.Itoa(s.port))
	for {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", addr, context.Cause(ctx))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop shuts the server down, once it has started.
func (s *Server) Stop(ctx context.Context) error {
	if s.started == nil {
		return nil
	}
	select {
	case <-s.started:
	case <-ctx.Done():
		return fmt.Errorf("stop while starting: %w", context.Cause(ctx))
	}
	if s.inst == nil {
		return nil
	}
	errs := s.inst.ShutdownCallbacks()
	errs = append(errs, s.inst.Stop())
	s.inst = nil
	return errors.Join(errs...)
}

// startError explains a failed start; a port taken on every address is
// the usual cause (a DNS server of the host bound to 0.0.0.0:53).
func startError(err error, listen string, port int) error {
	if errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use") {
		return fmt.Errorf("%w: another DNS server holds port %d on %s (likely on every address): make it listen on its own addresses only "+
			"(dnsmasq: bind-interfaces or listen-address; systemd-resolved already does)", err, port, listen)
	}
	return err
}
