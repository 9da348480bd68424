package podnet

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// fakeIptables records calls; -N of an existing chain and -C of a missing
// jump fail like the real tool.
type fakeIptables struct {
	calls  []string
	chains map[string]bool
	jumps  map[string]bool
}

func (f *fakeIptables) run(args ...string) error {
	line := strings.Join(args, " ")
	f.calls = append(f.calls, line)
	switch {
	case slices.Contains(args, "-N"):
		if f.chains[args[4]] {
			return errors.New("iptables: Chain already exists.")
		}
		f.chains[args[4]] = true
	case slices.Contains(args, "-C"):
		if !f.jumps[args[4]] {
			return errors.New("iptables: Bad rule")
		}
	case slices.Contains(args, "-I"):
		f.jumps[args[4]] = true
	}
	return nil
}

func TestInstallFirewall(t *testing.T) {
	f := &fakeIptables{chains: map[string]bool{}, jumps: map[string]bool{}}
	for range 2 { // a second start (after a crash) adds no second jump
		if err := installFirewall(f.run); err != nil {
			t.Fatal(err)
		}
	}
	inserts := 0
	for _, c := range f.calls {
		if strings.Contains(c, " -I ") {
			inserts++
		}
	}
	if inserts != 3 || !f.jumps["INPUT"] || !f.jumps["FORWARD"] || !f.jumps["POSTROUTING"] {
		t.Errorf("jumps %v after %d inserts, want INPUT, FORWARD and POSTROUTING once each:\n%s", f.jumps, inserts, strings.Join(f.calls, "\n"))
	}
	if all := strings.Join(f.calls, "\n"); !strings.Contains(all, "-t nat -I POSTROUTING 1 -s 10.42.0.0/24 -j "+MasqueradeChain) ||
		!strings.Contains(all, "-A "+MasqueradeChain+" -d 10.42.0.0/24 -j RETURN") || !strings.Contains(all, "-j MASQUERADE") {
		t.Errorf("masquerade chain missing or not hooked for the pod network:\n%s", all)
	}
	all := strings.Join(f.calls, "\n")
	// The order matters: host and pods first, replies next, then the drop.
	lo, br, est, drop := strings.Index(all, "-i lo -j RETURN"), strings.Index(all, "-i cni0 -j RETURN"),
		strings.Index(all, "ESTABLISHED,RELATED -j RETURN"), strings.Index(all, "-d 10.42.0.0/16 -j DROP")
	if lo < 0 || br < lo || est < br || drop < est {
		t.Errorf("rules out of order or missing:\n%s", all)
	}
	if !strings.Contains(all, "-F "+FirewallChain) {
		t.Errorf("the chain is not flushed before it is filled:\n%s", all)
	}
}
