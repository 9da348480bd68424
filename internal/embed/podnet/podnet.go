// Package podnet prepares the pod network of the single node: the bridge CNI
// configuration, the cni0 bridge with the pods' gateway address, IP forwarding,
// and a forwarder that lets pods reach the loopback-only API server through
// the kubernetes Service.
package podnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/octohq/octo/internal/config"
)

// NetworkName is the CNI network name; host-local keeps its leases under
// /var/lib/cni/networks/<NetworkName>.
const NetworkName = "octo"

// PodNet is the pod network component.
type PodNet struct {
	cfg  config.Config
	log  *slog.Logger
	ln   net.Listener
	wg   sync.WaitGroup
	stop chan struct{}
}

// New returns the pod network of cfg.
func New(cfg config.Config, log *slog.Logger) *PodNet {
	return &PodNet{cfg: cfg, log: log}
}

// Name implements embed.Component.
func (p *PodNet) Name() string { return "pod-network" }

// Endpoint is where pods reach the API server (the kubernetes Service's endpoint).
func (p *PodNet) Endpoint() string { return config.BridgeIP + ":" + strconv.Itoa(p.cfg.APIServerPort) }

// ConfList is the CNI configuration: a bridge with host-local IPAM, chained
// with portmap. The pods' traffic to other networks is masqueraded by one
// rule for the whole pod network (MasqueradeChain), not per pod.
func ConfList() string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, NetworkName, config.BridgeName, config.NodePodCIDR, config.BridgeIP)
}

// ConfPath is the CNI configuration file containerd reads.
func (p *PodNet) ConfPath() string { return p.cfg.Path("cni", "net.d", "10-octo.conflist") }

// Start writes the CNI configuration, makes NetnsDir a mount of its own,
// creates the bridge, installs the firewall that keeps other hosts off the
// pod network (FirewallChain), turns on IP forwarding and starts the API
// forwarder.
func (p *PodNet) Start(ctx context.Context) error {
	if err := config.WriteFileAtomic(p.ConfPath(), []byte(ConfList()), 0o644); err != nil {
		return err
	}
	if err := ensureNetnsMount(NetnsDir); err != nil {
		return err
	}
	if err := ensureBridge(); err != nil {
		return err
	}
	// The firewall comes before forwarding: other hosts never reach pods.
	if err := installFirewall(iptables); err != nil {
		return err
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable IP forwarding: %w", err)
	}
	ln, err := listenRetry(ctx, "tcp", p.Endpoint())
	if err != nil {
		return fmt.Errorf("listen for pods on %s: %w", p.Endpoint(), err)
	}
	p.ln = ln
	p.stop = make(chan struct{})
	p.wg.Add(1)
	go p.forward(config.Addr(p.cfg.APIServerPort))
	return nil
}

// listenRetry retries while the bridge address is still tentative.
func listenRetry(ctx context.Context, network, addr string) (net.Listener, error) {
	for i := 0; ; i++ {
		ln, err := net.Listen(network, addr)
		if err == nil || i >= 50 || !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return ln, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ensureBridge creates cni0 with the gateway address, the way the bridge
// plugin would on the first pod, so the API forwarder can bind before any pod.
func ensureBridge() error {
	link, err := netlink.LinkByName(config.BridgeName)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if !errors.As(err, &notFound) {
			return fmt.Errorf("look up %s: %w", config.BridgeName, err)
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: config.BridgeName, MTU: 1500}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("create bridge %s: %w", config.BridgeName, err)
		}
		if link, err = netlink.LinkByName(config.BridgeName); err != nil {
			return fmt.Errorf("look up %s: %w", config.BridgeName, err)
		}
	}
	addr, err := netlink.ParseAddr(config.BridgeIP + "/24")
	if err != nil {
		return err
	}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("address %s on %s: %w", addr, config.BridgeName, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bring %s up: %w", config.BridgeName, err)
	}
	// Service addresses are routed to the bridge: kube-proxy rewrites them to
	// pod addresses, and before its first sync they must not leak to the
	// host's default gateway.
	_, services, err := net.ParseCIDR(config.ServiceCIDR)
	if err != nil {
		return err
	}
	if err := netlink.RouteReplace(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: services, Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("route %s to %s: %w", config.ServiceCIDR, config.BridgeName, err)
	}
	return nil
}

// forward accepts pod connections and splices them to the API server.
func (p *PodNet) forward(target string) {
	defer p.wg.Done()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			select {
			case <-p.stop:
				return
			default:
			}
			p.log.Warn("api forwarder accept", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go splice(conn, target)
	}
}

func splice(in net.Conn, target string) {
	defer in.Close()
	out, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(out, in)
	go cp(in, out)
	<-done
	<-done
}

// Ready reports whether the bridge and the forwarder are up.
func (p *PodNet) Ready(context.Context) error {
	if _, err := netlink.LinkByName(config.BridgeName); err != nil {
		return fmt.Errorf("bridge %s: %w", config.BridgeName, err)
	}
	return nil
}

// Stop closes the forwarder. The bridge is removed by the teardown.
func (p *PodNet) Stop(context.Context) error {
	if p.ln == nil {
		return nil
	}
	close(p.stop)
	err := p.ln.Close()
	p.wg.Wait()
	return err
}
