package teardown

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/octohq/octo/internal/config"
)

// selectedProcess is a process to kill and why.
type selectedProcess struct {
	Process
	reason string
}

// selectProcesses picks the processes octo left running: those whose argv[0]
// is a binary octo extracted (the containerd shim) or whose executable lives
// in the data dir or run dir, plus all their descendants (the pause and app
// containers under each shim). argv[0] is compared as a path, never searched
// as a substring, so a grep or awk mentioning the data dir is not matched.
// PID 1, kernel threads, selfPID and selfPID's ancestors are never selected.
// Each tree is listed parent first.
func selectProcesses(cfg config.Config, procs []Process, selfPID int) []selectedProcess {
	byPID := make(map[int]Process, len(procs))
	children := map[int][]int{}
	for _, p := range procs {
		byPID[p.PID] = p
		children[p.PPID] = append(children[p.PPID], p.PID)
	}
	for _, c := range children {
		slices.Sort(c)
	}

	protected := map[int]bool{0: true, 1: true, 2: true}
	for pid, n := selfPID, 0; pid > 0 && n < len(procs)+1; n++ {
		protected[pid] = true
		p, ok := byPID[pid]
		if !ok {
			break
		}
		pid = p.PPID
	}

	binDir, dataDir, runDir := cfg.BinDir(), cfg.DataDir, cfg.RunDir()
	var roots []selectedProcess
	for _, p := range procs {
		switch {
		case filepath.IsAbs(p.Argv0) && within(p.Argv0, binDir, false):
			roots = append(roots, selectedProcess{p, "argv[0] in " + binDir})
		case within(p.Exe, dataDir, false):
			roots = append(roots, selectedProcess{p, "executable in " + dataDir})
		case within(p.Exe, runDir, false):
			roots = append(roots, selectedProcess{p, "executable in " + runDir})
		}
	}
	slices.SortFunc(roots, func(a, b selectedProcess) int { return cmp.Compare(a.PID, b.PID) })

	var out []selectedProcess
	seen := map[int]bool{}
	var walk func(p selectedProcess)
	walk = func(p selectedProcess) {
		if seen[p.PID] {
			return
		}
		seen[p.PID] = true
		if protected[p.PID] || p.PPID == 2 {
			return
		}
		out = append(out, p)
		for _, c := range children[p.PID] {
			walk(selectedProcess{byPID[c], fmt.Sprintf("descendant of %d", p.PID)})
		}
	}
	for _, r := range roots {
		walk(r)
	}
	return out
}

// selectMounts picks the mounts to lazily unmount: everything at or below the
// run dir and the kubelet's root dir (which the kubelet bind-mounts onto
// itself) and everything strictly below the data dir (the data dir itself may
// be a volume the user mounted). The deepest mount points come first; among
// equal depths later mounts come first, so stacked mounts unmount top down.
func selectMounts(cfg config.Config, mounts []Mount) []Mount {
	runDir, kubeletDir := cfg.RunDir(), cfg.Path("kubelet")
	type indexed struct {
		Mount
		i int
	}
	var sel []indexed
	for i, m := range mounts {
		p := m.MountPoint
		if within(p, runDir, true) || within(p, kubeletDir, true) || within(p, cfg.DataDir, false) {
			sel = append(sel, indexed{m, i})
		}
	}
	slices.SortStableFunc(sel, func(a, b indexed) int {
		if d := depth(b.MountPoint) - depth(a.MountPoint); d != 0 {
			return d
		}
		return b.i - a.i
	})
	out := make([]Mount, len(sel))
	for i, s := range sel {
		out[i] = s.Mount
	}
	return out
}

// selectNetns returns the CNI network namespaces (cni-*) in netnsDir, whether
// they show as files or as mount points, sorted and without duplicates.
func selectNetns(netnsDir string, entries []string, mounts []Mount) []string {
	var out []string
	add := func(p string) {
		if filepath.Dir(p) == filepath.Clean(netnsDir) && strings.HasPrefix(filepath.Base(p), "cni-") {
			out = append(out, filepath.Clean(p))
		}
	}
	for _, e := range entries {
		add(e)
	}
	for _, m := range mounts {
		add(m.MountPoint)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// selectLinks returns the pod veths attached to the cni0 bridge and then the
// bridge itself.
func selectLinks(links []Link) []Link {
	var out []Link
	var bridge *Link
	for _, l := range links {
		switch {
		case l.Name == config.BridgeName:
			bridge = &l
		case l.Master == config.BridgeName && strings.HasPrefix(l.Name, "veth"):
			out = append(out, l)
		}
	}
	if bridge != nil {
		out = append(out, *bridge)
	}
	return out
}

// selectLogLinks returns the container log symlinks that point into octo's
// pod log dir or the kubelet's default one.
func selectLogLinks(cfg config.Config, podLogDir string, links []LogLink) []LogLink {
	var out []LogLink
	for _, l := range links {
		if !strings.HasSuffix(l.Path, ".log") {
			continue
		}
		target := l.Target
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(l.Path), target)
		}
		if within(target, cfg.Path("pod-logs"), false) || within(target, podLogDir, false) {
			out = append(out, l)
		}
	}
	return out
}
