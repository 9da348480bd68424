package teardown

import (
	"fmt"
	"path/filepath"

	"github.com/octohq/octo/internal/config"
)

// Leftovers lists what octo left on the real host. See System.Leftovers.
func Leftovers(cfg config.Config) ([]string, error) {
	return System{}.Leftovers(cfg)
}

// Leftovers lists, one line each, everything of the octo instance cfg still
// present on s: processes from its data dir and their children, mounts under
// its data and run dirs, CNI network namespaces, cni0 and its veths, KUBE-/CNI-
// iptables chains, kubepods cgroups, octo's files outside the data dir, and
// sysctls that differ from the saved baseline. An empty list means the host is
// clean; `octo down` and end-to-end tests use it to verify a teardown.
//
// Empty nftables tables and empty directories are not reported: nothing tells
// whether octo created them. The error reports parts of the host that could
// not be read; the list is still valid for the rest.
func (s System) Leftovers(cfg config.Config) ([]string, error) {
	st, err := s.ReadHostState(cfg)
	return leftovers(cfg, st), err
}

// leftovers derives the leftover list from a host state.
func leftovers(cfg config.Config, st HostState) []string {
	cgroups := map[string]bool{}
	for _, c := range st.Cgroups {
		cgroups[filepath.Clean(c)] = true
	}
	var out []string
	for _, step := range NewPlan(cfg, st).Steps {
		switch step.Action {
		case ActionKill:
			out = append(out, fmt.Sprintf("process %d %s (%s)", step.PID, step.Target, step.Reason))
		case ActionUnmount:
			out = append(out, fmt.Sprintf("mount %s (%s)", step.Target, step.Reason))
		case ActionRemoveNetns:
			out = append(out, "network namespace "+step.Target)
		case ActionDeleteLink:
			out = append(out, fmt.Sprintf("network interface %s (%s)", step.Target, step.Reason))
		case ActionFilterIptables:
			out = append(out, fmt.Sprintf("%s: %s", step.Target, step.Reason))
		case ActionRemoveCgroup:
			// Report each kubepods tree once, by its top directory.
			if !cgroups[filepath.Dir(filepath.Clean(step.Target))] {
				out = append(out, "cgroup "+step.Target)
			}
		case ActionRemove, ActionRemoveTask:
			out = append(out, fmt.Sprintf("%s (%s)", step.Target, step.Reason))
		}
	}
	return append(out, changedSysctls(st.SysctlBaseline, st.Sysctls)...)
}
