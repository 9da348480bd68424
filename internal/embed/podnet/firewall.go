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

// MasqueradeChain is the nat chain that gives the pods' traffic to other
// networks the host's address: one chain for the whole pod network, hooked
// into POSTROUTING for its source range, instead of the CNI bridge plugin's
// chain per pod (ipMasq), whose iptables calls cost every pod start and stop
// ~0.1 s. The teardown removes it with the other OCTO-* chains.
const MasqueradeChain = "OCTO-PODNET-MASQ"

// MasqueradeRules are the iptables argument lists of MasqueradeChain:
// traffic within the pod network, and multicast, keeps its source.
func MasqueradeRules() [][]string {
	chain := []string{"-w", "-t", "nat"}
	rule := func(args ...string) []string { return append(append([]string{}, chain...), args...) }
	return [][]string{
		rule("-A", MasqueradeChain, "-d", config.NodePodCIDR, "-j", "RETURN"),
		rule("-A", MasqueradeChain, "!", "-d", "224.0.0.0/4", "-j", "MASQUERADE"),
	}
}

// installFirewall builds the firewall chain with run (iptables with its
// arguments) and makes INPUT and FORWARD jump to it first, then the
// masquerade chain and its POSTROUTING jump. It is idempotent: a chain left
// by a killed daemon is flushed and refilled, and a jump is added only
// where none exists.
func installFirewall(run func(args ...string) error) error {
	if err := installChain(run, "filter", FirewallChain, FirewallRules(), [][]string{{"INPUT"}, {"FORWARD"}}); err != nil {
		return err
	}
	return installChain(run, "nat", MasqueradeChain, MasqueradeRules(), [][]string{{"POSTROUTING", "-s", config.NodePodCIDR}})
}

// installChain creates or flushes chain in table, appends rules, and
// inserts a jump first in each hook (its chain, then match arguments).
func installChain(run func(args ...string) error, table, chain string, rules, hooks [][]string) error {
	if err := run("-w", "-t", table, "-N", chain); err != nil && !strings.Contains(err.Error(), "exists") {
		return fmt.Errorf("create chain %s: %w", chain, err)
	}
	if err := run("-w", "-t", table, "-F", chain); err != nil {
		return fmt.Errorf("flush chain %s: %w", chain, err)
	}
	for _, r := range rules {
		if err := run(r...); err != nil {
			return fmt.Errorf("pod network: iptables %s: %w", strings.Join(r, " "), err)
		}
	}
	for _, hook := range hooks {
		jump := append(append([]string{hook[0]}, hook[1:]...), "-j", chain)
		if run(append([]string{"-w", "-t", table, "-C"}, jump...)...) == nil {
			continue
		}
		if err := run(append([]string{"-w", "-t", table, "-I", hook[0], "1"}, append(hook[1:], "-j", chain)...)...); err != nil {
			return fmt.Errorf("hook %s into %s: %w", chain, hook[0], err)
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
