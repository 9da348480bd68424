// Package teardown removes everything a stopped octo daemon leaves on the host,
// in the spirit of k3s-killall.sh: container shims and their process trees,
// mounts, CNI network namespaces, the cni0 bridge, KUBE-/CNI- iptables chains,
// kubepods cgroups, files the kubelet and the CNI plugins write outside the data
// dir, and the sysctls the daemon changed.
//
// Teardown is split in two: NewPlan turns a HostState (read by ReadHostState)
// into a list of steps without touching anything, so the decisions are unit
// tested against fixtures; Plan.Execute carries the steps out. Every step is
// idempotent: on a clean host the plan is empty and executing it succeeds.
package teardown

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/octohq/octo/internal/config"
)

// NetworkName is the name of octo's CNI network: host-local keeps its address
// leases in /var/lib/cni/networks/<NetworkName> and libcni caches results in
// /var/lib/cni/results/<NetworkName>-<container>-<ifname>.
const NetworkName = "octo"

// BaselineFile is the name, inside the data dir, of the sysctl values saved
// before octo first changed them.
const BaselineFile = "sysctl-baseline.json"

// Host paths used when a System field is empty.
const (
	defaultProcRoot        = "/proc"
	defaultSysctlRoot      = "/proc/sys"
	defaultCgroupRoot      = "/sys/fs/cgroup"
	defaultNetClassDir     = "/sys/class/net"
	defaultNetnsDir        = "/run/netns"
	defaultCNIDir          = "/var/lib/cni"
	defaultContainerLogDir = "/var/log/containers"
	defaultPodLogDir       = "/var/log/pods"
	defaultKubeletDir      = "/var/lib/kubelet"
	defaultRuncRoot        = "/run/containerd/runc"
)

// System is the host teardown reads and changes: where its kernel interfaces
// and well-known directories are, and how external commands run. The zero
// value is the real host; tests point the fields at temporary directories.
type System struct {
	// ProcRoot is the proc filesystem (default /proc): processes and
	// self/mountinfo are read from it.
	ProcRoot string
	// SysctlRoot is where sysctls are read and written (default /proc/sys).
	SysctlRoot string
	// CgroupRoot is where cgroup hierarchies are mounted (default /sys/fs/cgroup).
	CgroupRoot string
	// NetClassDir lists network interfaces (default /sys/class/net).
	NetClassDir string
	// NetnsDir holds named network namespaces (default /run/netns).
	NetnsDir string
	// CNIDir is libcni's and host-local's state directory (default /var/lib/cni).
	CNIDir string
	// ContainerLogDir holds the kubelet's per-container log symlinks
	// (default /var/log/containers).
	ContainerLogDir string
	// PodLogDir is the kubelet's default pod log directory (default /var/log/pods).
	PodLogDir string
	// KubeletDir is the kubelet's default root directory, where it writes its
	// device plugin socket whatever its configured root (default /var/lib/kubelet).
	KubeletDir string
	// RuncRoot is where runc, run by containerd's shims, keeps each
	// container's state, per namespace (default /run/containerd/runc).
	RuncRoot string
	// Run runs an external command (iptables-save, nft, ...); nil runs it with
	// os/exec.
	Run Runner

	// ops performs the privileged system calls; nil means the real ones.
	ops sysOps
}

// withDefaults fills every empty field with the real host's value.
func (s System) withDefaults() System {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&s.ProcRoot, defaultProcRoot)
	def(&s.SysctlRoot, defaultSysctlRoot)
	def(&s.CgroupRoot, defaultCgroupRoot)
	def(&s.NetClassDir, defaultNetClassDir)
	def(&s.NetnsDir, defaultNetnsDir)
	def(&s.CNIDir, defaultCNIDir)
	def(&s.ContainerLogDir, defaultContainerLogDir)
	def(&s.PodLogDir, defaultPodLogDir)
	def(&s.KubeletDir, defaultKubeletDir)
	def(&s.RuncRoot, defaultRuncRoot)
	if s.Run == nil {
		s.Run = execRunner
	}
	if s.ops == nil {
		s.ops = realOps{}
	}
	return s
}

// hostDirs are the directories outside the data dir that octo's components
// create and that teardown removes when they are left empty, deepest first.
func (s System) hostDirs() []string {
	return []string{
		filepath.Join(s.CNIDir, "networks"),
		filepath.Join(s.CNIDir, "results"),
		s.CNIDir,
		s.ContainerLogDir,
		filepath.Join(s.KubeletDir, "device-plugins"),
		s.KubeletDir,
		s.NetnsDir,
	}
}

// kubeletFiles are the files the kubelet writes under its hard-coded
// /var/lib/kubelet whatever its configured root directory.
func (s System) kubeletFiles() []string {
	dir := filepath.Join(s.KubeletDir, "device-plugins")
	return []string{
		filepath.Join(dir, "kubelet.sock"),
		filepath.Join(dir, "kubelet_internal_checkpoint"),
	}
}

// HostState is what an octo daemon may have left on the host, as read by
// ReadHostState. Paths are absolute.
type HostState struct {
	// System is where the state was read; the plan executes against it.
	System System
	// SelfPID is the process doing the teardown: it and its ancestors are
	// never killed.
	SelfPID int
	// Processes are all processes on the host.
	Processes []Process
	// Mounts are the entries of /proc/self/mountinfo, in file order.
	Mounts []Mount
	// Netns are the cni-* entries of the named network namespace directory.
	Netns []string
	// Links are the host's network interfaces.
	Links []Link
	// IPv4Rules and IPv6Rules are the output of iptables-save and
	// ip6tables-save; empty when the command is not installed.
	IPv4Rules, IPv6Rules string
	// NftTables are the host's nftables tables.
	NftTables []NftTable
	// Cgroups are the kubepods* cgroup directories and all their descendants.
	Cgroups []string
	// CNIFiles are octo's host-local lease directory and libcni result files.
	CNIFiles []string
	// ContainerLogs are the symlinks in the container log directory.
	ContainerLogs []LogLink
	// KubeletFiles are the hard-coded kubelet files that exist.
	KubeletFiles []string
	// Tasks are what the container tasks of octo's containerd leave once
	// their processes are gone (see readTasks).
	Tasks []string
	// Dirs are the host directories octo's components create (see
	// System.hostDirs) that exist.
	Dirs []string
	// SysctlBaseline holds the sysctls saved before octo first ran; nil when
	// no baseline is saved.
	SysctlBaseline map[string]string
	// Sysctls holds the current values of the sysctls octo changes.
	Sysctls map[string]string
}

// Process is one process read from /proc.
type Process struct {
	// PID is the process ID and PPID its parent's.
	PID, PPID int
	// StartTime is the start time in clock ticks after boot (field 22 of
	// /proc/<pid>/stat); with the PID it identifies the process.
	StartTime uint64
	// Argv0 is the first NUL-separated word of /proc/<pid>/cmdline.
	Argv0 string
	// Exe is the target of /proc/<pid>/exe, without a " (deleted)" suffix;
	// empty when unreadable (kernel threads).
	Exe string
}

// Mount is one entry of /proc/self/mountinfo.
type Mount struct {
	// ID and ParentID are the mount's and its parent's mount IDs.
	ID, ParentID int
	// MountPoint is the unescaped mount point.
	MountPoint string
	// FSType is the filesystem type (tmpfs, overlay, nsfs, ...).
	FSType string
	// Source is the mount source (a device, "overlay", "shm", ...).
	Source string
}

// Link is one network interface.
type Link struct {
	// Name is the interface name.
	Name string
	// Master is the bridge the interface is attached to, if any.
	Master string
	// Bridge reports whether the interface is a bridge.
	Bridge bool
}

// NftTable is one nftables table.
type NftTable struct {
	// Family (ip, ip6, inet, ...) and Name identify the table.
	Family, Name string
	// Empty reports that the table holds nothing but base chains with an
	// accept policy, as iptables-nft leaves tables after its rules are gone.
	Empty bool
}

// LogLink is one symlink in the container log directory.
type LogLink struct {
	// Path is the symlink, Target what it points to as stored in the link.
	Path, Target string
}

// Action is the kind of a teardown step.
type Action string

// Step actions, in the order a plan runs them.
const (
	// ActionKill sends SIGKILL to Step.PID if it still has Step.StartTime.
	ActionKill Action = "kill"
	// ActionUnmount lazily unmounts Target (MNT_DETACH).
	ActionUnmount Action = "unmount"
	// ActionRemoveNetns unmounts and removes the network namespace file Target.
	ActionRemoveNetns Action = "remove-netns"
	// ActionDeleteLink deletes the network interface Target.
	ActionDeleteLink Action = "delete-link"
	// ActionFilterIptables saves the rules with Target-save ("iptables" or
	// "ip6tables"), drops octo's chains (FilterRules) and restores the rest
	// with Target-restore.
	ActionFilterIptables Action = "filter-iptables"
	// ActionDeleteNftTable deletes the nftables table Target ("<family>
	// <name>") if it is empty when the step runs.
	ActionDeleteNftTable Action = "delete-nft-table"
	// ActionRemoveCgroup removes the cgroup directory Target.
	ActionRemoveCgroup Action = "remove-cgroup"
	// ActionRemove removes the file, symlink or directory tree Target.
	ActionRemove Action = "remove"
	// ActionRemoveTask removes the file or directory tree Target, the state
	// of a stopped container task, unless a process teardown killed is
	// still alive: its container would lose the state that manages it.
	ActionRemoveTask Action = "remove-task"
	// ActionRemoveEmptyDir removes the directory Target if it is empty.
	ActionRemoveEmptyDir Action = "remove-empty-dir"
	// ActionRestoreSysctls restores the sysctls saved in the baseline file
	// Target, then removes the file.
	ActionRestoreSysctls Action = "restore-sysctls"
)

// Step is one thing to undo on the host.
type Step struct {
	// Action is what to do.
	Action Action
	// Target is what the action applies to: a path, an interface name, a
	// command or an nftables table, see the Action constants.
	Target string
	// PID and StartTime identify the process of an ActionKill step.
	PID       int
	StartTime uint64
	// Reason says why the step is planned, for logs.
	Reason string
}

// String describes the step in one line.
func (s Step) String() string {
	var b strings.Builder
	b.WriteString(string(s.Action))
	if s.Action == ActionKill {
		fmt.Fprintf(&b, " %d", s.PID)
	}
	if s.Target != "" {
		b.WriteString(" " + s.Target)
	}
	if s.Reason != "" {
		b.WriteString(" (" + s.Reason + ")")
	}
	return b.String()
}

// Plan is the ordered list of steps that returns the host to its state before
// octo ran.
type Plan struct {
	// Steps run in order.
	Steps []Step
	// system is where the steps execute.
	system System
	// own are the instance's run dir and data dir: a removal may also
	// target paths below them.
	own []string
}

// NewPlan decides, from the host state alone, what teardown must do for the
// octo instance cfg. It changes nothing.
func NewPlan(cfg config.Config, host HostState) Plan {
	sys := host.System.withDefaults()
	p := Plan{system: sys, own: []string{cfg.RunDir(), cfg.DataDir}}
	add := func(s Step) { p.Steps = append(p.Steps, s) }

	for _, proc := range selectProcesses(cfg, host.Processes, host.SelfPID) {
		add(Step{Action: ActionKill, PID: proc.PID, StartTime: proc.StartTime, Target: procLabel(proc.Process), Reason: proc.reason})
	}
	for _, m := range selectMounts(cfg, host.Mounts) {
		add(Step{Action: ActionUnmount, Target: m.MountPoint, Reason: m.FSType})
	}
	for _, ns := range selectNetns(sys.NetnsDir, host.Netns, host.Mounts) {
		add(Step{Action: ActionRemoveNetns, Target: ns})
	}
	for _, l := range selectLinks(host.Links) {
		add(Step{Action: ActionDeleteLink, Target: l.Name, Reason: linkReason(l)})
	}
	touched := map[string]bool{} // "<nft family> <table>" that held octo's chains
	for _, fam := range []struct{ cmd, nft, save string }{
		{"iptables", "ip", host.IPv4Rules},
		{"ip6tables", "ip6", host.IPv6Rules},
	} {
		filtered, removed := FilterRules(fam.save)
		if filtered == fam.save {
			continue
		}
		for _, c := range removed {
			touched[fam.nft+" "+c.Table] = true
		}
		add(Step{Action: ActionFilterIptables, Target: fam.cmd, Reason: chainSummary(removed)})
	}
	for _, t := range host.NftTables {
		id := t.Family + " " + t.Name
		if isIptablesNftTable(t) && (t.Empty || touched[id]) {
			add(Step{Action: ActionDeleteNftTable, Target: id})
		}
	}
	for _, dir := range deepestFirst(host.Cgroups) {
		add(Step{Action: ActionRemoveCgroup, Target: dir})
	}
	for _, f := range host.CNIFiles {
		add(Step{Action: ActionRemove, Target: f, Reason: "CNI state of network " + NetworkName})
	}
	for _, l := range selectLogLinks(cfg, sys.PodLogDir, host.ContainerLogs) {
		add(Step{Action: ActionRemove, Target: l.Path, Reason: "container log link to " + l.Target})
	}
	for _, f := range host.KubeletFiles {
		add(Step{Action: ActionRemove, Target: f, Reason: "hard-coded kubelet path"})
	}
	// Left to containerd, each stopped task costs a shim run at its next
	// start, one after the other (~6 s with 32 pods), and a purged data
	// dir leaves runc's state behind for good.
	for _, t := range host.Tasks {
		add(Step{Action: ActionRemoveTask, Target: t, Reason: "state of a stopped container task"})
	}
	mounted := map[string]bool{}
	for _, m := range host.Mounts {
		mounted[filepath.Clean(m.MountPoint)] = true
	}
	for _, dir := range sys.hostDirs() {
		// A mounted directory (ip netns bind-mounts /run/netns onto itself)
		// belongs to whoever mounted it.
		if slices.Contains(host.Dirs, dir) && !mounted[dir] {
			add(Step{Action: ActionRemoveEmptyDir, Target: dir})
		}
	}
	if host.SysctlBaseline != nil {
		add(Step{Action: ActionRestoreSysctls, Target: cfg.Path(BaselineFile)})
	}
	return p
}

// procLabel names a process for logs.
func procLabel(p Process) string {
	if p.Argv0 != "" {
		return p.Argv0
	}
	return p.Exe
}

// linkReason says why an interface is deleted.
func linkReason(l Link) string {
	if l.Master != "" {
		return "attached to " + l.Master
	}
	return "pod bridge"
}

// chainSummary lists removed chains for logs, shortened when long.
func chainSummary(chains []Chain) string {
	const max = 5
	names := make([]string, 0, max)
	for i, c := range chains {
		if i == max {
			names = append(names, fmt.Sprintf("and %d more", len(chains)-max))
			break
		}
		names = append(names, c.Table+"/"+c.Name)
	}
	if len(names) == 0 {
		return "rules jumping to KUBE-/CNI- chains"
	}
	return "chains " + strings.Join(names, ", ")
}

// isIptablesNftTable reports whether t is one of the tables iptables-nft
// creates for octo's iptables usage.
func isIptablesNftTable(t NftTable) bool {
	return (t.Family == "ip" || t.Family == "ip6") &&
		(t.Name == "filter" || t.Name == "nat" || t.Name == "mangle")
}

// within reports whether path is below dir, or equal to it when orSelf is
// set. Both are cleaned first, so /run/octo does not contain /run/octo-1.
func within(path, dir string, orSelf bool) bool {
	if path == "" || dir == "" {
		return false
	}
	path, dir = filepath.Clean(path), filepath.Clean(dir)
	if path == dir {
		return orSelf
	}
	if dir == "/" {
		return strings.HasPrefix(path, "/")
	}
	return strings.HasPrefix(path, dir+string(os.PathSeparator))
}

// depth is the number of components of a clean absolute path.
func depth(path string) int {
	return strings.Count(filepath.Clean(path), "/")
}

// deepestFirst returns paths sorted so that every path comes before its
// parents; paths of equal depth keep their order.
func deepestFirst(paths []string) []string {
	out := slices.Clone(paths)
	slices.SortStableFunc(out, func(a, b string) int { return depth(b) - depth(a) })
	return out
}
