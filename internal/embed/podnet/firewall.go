package podnet

import (
	"fmt"
	"os/exec"
	"strings"

	"github.com/octohq/octo/internal/config"
)

// FirewallChain is the filter chain that keeps other hosts off the pod
// network. The bridge address (10.42.0.1, where the pod API listens) and the
// pod addresses are local or routed on every interface once IP forwarding is
// on; the chain drops new connections to them unless they come from the host
// itself (lo) or from a pod (the bridge). The teardown removes it with the
// other chains octo's components create.
const FirewallChain = "OCTO-PODNET"

// FirewallRules are the iptables argument lists that (re)build the chain
// and hook it first into INPUT (to the bridge address) and FORWARD (to pod
// addresses, also after a NodePort's DNAT).
func FirewallRules() [][]string {
	chain := []string{"-w", "-t", "filter"}
	rule := func(args ...string) []string { return append(append([]string{}, chain...), args...) }
	return [][]string{
		rule("-A", FirewallChain, "-i", "lo", "-j", "RETURN"),
		rule("-A", FirewallChain, "-i", config.BridgeName, "-j", "RETURN"),
		rule("-A", FirewallChain, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"),
		rule("-A", FirewallChain, "-d", config.ClusterCIDR, "-j", "DROP"),
		rule("-A", FirewallChain, "-d", config.ServiceCIDR, "-j", "DROP"),
	}
}

// installFirewall builds the chain with run (iptables with its arguments)
// and makes INPUT and FORWARD jump to it first. It is idempotent: a chain
// left by a killed daemon is flushed and refilled, and a jump is added only
// where none exists.
func installFirewall(run func(args ...string) error) error {
	if err := run("-w", "-t", "filter", "-N", FirewallChain); err != nil && !strings.Contains(err.Error(), "exists") {
		return fmt.Errorf("create chain %s: %w", FirewallChain, err)
	}
	if err := run("-w", "-t", "filter", "-F", FirewallChain); err != nil {
		return fmt.Errorf("flush chain %s: %w", FirewallChain, err)
	}
	for _, r := range FirewallRules() {
		if err := run(r...); err != nil {
			return fmt.Errorf("pod network firewall: iptables %s: %w", strings.Join(r, " "), err)
		}
	}
	for _, hook := range []string{"INPUT", "FORWARD"} {
		if run("-w", "-t", "filter", "-C", hook, "-j", FirewallChain) == nil {
			continue
		}
		if err := run("-w", "-t", "filter", "-I", hook, "1", "-j", FirewallChain); err != nil {
			return fmt.Errorf("hook %s into %s: %w", FirewallChain, hook, err)
		}
	}
	return nil
}

// iptables runs the host's iptables and returns its output in the error.
func iptables(args ...string) error {
	out, err := exec.Command("iptables", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
