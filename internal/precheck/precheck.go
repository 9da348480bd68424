// Package precheck verifies, before `octo up` starts anything, that the host
// can run octo: root, cgroups, the host tools the embedded Kubernetes execs,
// free loopback ports, a writable data dir and overlayfs. Every failed check
// is one Problem whose message is a single line saying what to do.
package precheck

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/octohq/octo/internal/config"
)

// Names of the checks, as found in Problem.Check.
const (
	CheckRoot    = "root"
	CheckCgroups = "cgroups"
	CheckTools   = "tools"
	CheckPorts   = "ports"
	CheckDataDir = "data-dir"
	CheckOverlay = "overlay"
)

// InstallCommand installs every host package octo needs on Debian and Ubuntu.
const InstallCommand = "apt-get install -y runc iptables containernetworking-plugins iproute2"

// Problem is one failed check.
type Problem struct {
	// Check is the name of the failed check, one of the Check constants.
	Check string
	// Message is one line for the user saying what is wrong and what to do.
	Message string
}

// Error returns the message, so a Problem can be returned as an error.
func (p Problem) Error() string { return p.Message }

// Problems is the list of failed checks; it is an error listing one problem
// per line.
type Problems []Problem

// Error lists the messages, one per line.
func (ps Problems) Error() string {
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.Message
	}
	return strings.Join(msgs, "\n")
}

// Err returns ps as an error, or nil when there is no problem. Use it rather
// than converting ps to error, which is never nil.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// Options replace the host's facilities so that the checks can run against
// fakes. The zero value checks the real host.
type Options struct {
	// IsRoot reports whether octo runs as root; nil checks the effective
	// user id.
	IsRoot func() bool
	// LookPath finds a command on PATH; nil is exec.LookPath.
	LookPath func(file string) (string, error)
	// CNIDirs are searched, in order, for the CNI plugins; nil means
	// /usr/lib/cni (Debian's containernetworking-plugins) and /opt/cni/bin.
	CNIDirs []string
	// CgroupRoot is where cgroups are mounted; empty means /sys/fs/cgroup.
	CgroupRoot string
	// ProcRoot is the proc filesystem; empty means /proc.
	ProcRoot string
	// Listen opens a listener to see whether a port is free; nil is
	// net.Listen.
	Listen func(network, address string) (net.Listener, error)
	// Stat describes a file without following a final symlink; nil is
	// os.Lstat.
	Stat func(name string) (os.FileInfo, error)
}

// withDefaults fills every unset option with the real host's.
func (o Options) withDefaults() Options {
	if o.IsRoot == nil {
		o.IsRoot = func() bool { return os.Geteuid() == 0 }
	}
	if o.LookPath == nil {
		o.LookPath = exec.LookPath
	}
	if o.CNIDirs == nil {
		o.CNIDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}
	}
	if o.CgroupRoot == "" {
		o.CgroupRoot = "/sys/fs/cgroup"
	}
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.Listen == nil {
		o.Listen = net.Listen
	}
	if o.Stat == nil {
		o.Stat = os.Lstat
	}
	return o
}

// Run runs every check for the octo instance cfg and returns the problems
// found, nil when the host is ready. Checks are independent, so the user sees
// every problem at once; the data dir check is skipped when not running as
// root, where it could only repeat the root problem. Run creates the data dir
// if it is missing and otherwise leaves nothing behind.
func Run(cfg config.Config, opts Options) Problems {
	o := opts.withDefaults()
	var ps Problems
	add := func(check, format string, args ...any) {
		ps = append(ps, Problem{Check: check, Message: fmt.Sprintf(format, args...)})
	}

	root := o.IsRoot()
	if !root {
		add(CheckRoot, "octo up needs root: run it with sudo")
	}
	if msg := checkCgroups(o.CgroupRoot); msg != "" {
		add(CheckCgroups, "%s", msg)
	}
	if missing := missingTools(o); len(missing) > 0 {
		add(CheckTools, "missing %s: install them with `%s`", strings.Join(missing, ", "), InstallCommand)
	}
	for _, p := range cfg.Ports() {
		if msg := checkPort(o.Listen, p); msg != "" {
			add(CheckPorts, "%s", msg)
		}
	}
	if root {
		if err := checkWritable(cfg.DataDir); err != nil {
			add(CheckDataDir, "data dir %s is not writable (%v): pass --data-dir (or set OCTO_HOME) to a writable directory",
				cfg.DataDir, err)
		} else if err := CheckOwnership(cfg.DataDir, o.Stat); err != nil {
			add(CheckDataDir, "%v: root runs programs from the data dir, so only root may write to it and its parents (chown root and chmod go-w, or pass another --data-dir)", err)
		}
	}
	if msg := checkOverlay(o.ProcRoot); msg != "" {
		add(CheckOverlay, "%s", msg)
	}
	return ps
}

// cgroupControllers are the controllers the kubelet needs.
func cgroupControllers() []string { return []string{"cpu", "memory", "pids"} }

// checkCgroups checks that the cpu, memory and pids controllers are usable:
// in the cgroup2 unified hierarchy at root, or each in a cgroup v1 hierarchy
// mounted at root/<controller>. It returns what to do, or "".
func checkCgroups(root string) string {
	if data, err := os.ReadFile(filepath.Join(root, "cgroup.controllers")); err == nil {
		enabled := strings.Fields(string(data))
		var missing []string
		for _, c := range cgroupControllers() {
			if !slices.Contains(enabled, c) {
				missing = append(missing, c)
			}
		}
		if len(missing) == 0 {
			return ""
		}
		return fmt.Sprintf("cgroup v2 at %s lacks the %s controller(s): enable them in the kernel (cgroup_enable=%s on the kernel command line)",
			root, strings.Join(missing, ", "), strings.Join(missing, ","))
	}
	if _, err := os.Stat(root); err != nil {
		return fmt.Sprintf("no cgroups at %s: mount them (`mount -t cgroup2 none %s`)", root, root)
	}
	var missing []string
	for _, c := range cgroupControllers() {
		// A v1 hierarchy has cgroup.procs at its root; cpu is often a
		// symlink to cpu,cpuacct, which Stat follows.
		if _, err := os.Stat(filepath.Join(root, c, "cgroup.procs")); err != nil {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	m := missing[0]
	return fmt.Sprintf("cgroup controller(s) %s not mounted under %s: mount each one (e.g. `mkdir -p %s && mount -t cgroup -o %s cgroup %s`) or boot with cgroup v2",
		strings.Join(missing, ", "), root, filepath.Join(root, m), m, filepath.Join(root, m))
}

// hostCommands are the commands octo's components exec from PATH.
func hostCommands() []string {
	return []string{"runc", "iptables", "iptables-save", "iptables-restore", "ip"}
}

// cniPlugins are the CNI plugins octo's network configuration uses.
func cniPlugins() []string { return []string{"bridge", "host-local", "portmap"} }

// missingTools lists the commands not on PATH and the CNI plugins in none of
// the CNI dirs.
func missingTools(o Options) []string {
	var missing []string
	for _, c := range hostCommands() {
		if _, err := o.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	for _, p := range cniPlugins() {
		found := slices.ContainsFunc(o.CNIDirs, func(dir string) bool {
			fi, err := os.Stat(filepath.Join(dir, p))
			return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
		})
		if !found {
			missing = append(missing, fmt.Sprintf("CNI plugin %s (in %s)", p, strings.Join(o.CNIDirs, " or ")))
		}
	}
	return missing
}

// checkPort tries to listen on the port on the loopback address and returns
// what to do when that fails, or "".
func checkPort(listen func(network, address string) (net.Listener, error), p config.Port) string {
	l, err := listen("tcp", config.Addr(p.Port))
	if err == nil {
		l.Close()
		return ""
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Sprintf("cannot listen on %s for %s (%v): %s", config.Addr(p.Port), p.Name, err, portRemedy(p))
	}
	if p.Flag != "" {
		return fmt.Sprintf("port %d (%s) is in use on %s: stop what uses it or pass %s", p.Port, p.Name, config.Host, p.Flag)
	}
	return fmt.Sprintf("port %d (%s) is in use on %s and cannot be changed: %s", p.Port, p.Name, config.Host, portRemedy(p))
}

// portRemedy says how to free a port.
func portRemedy(p config.Port) string {
	if p.Flag != "" {
		return "pass " + p.Flag + " to use another port"
	}
	return fmt.Sprintf("stop what uses it, usually another Kubernetes (k3s, kind, a kubelet) or an octo still running (`octo down`); `ss -ltnp 'sport = :%d'` names it", p.Port)
}

// CheckOwnership refuses a data dir that anyone but root could change: the
// directory (symlinks resolved), each of its parents and the runtime octo
// executes from it (bin/, bin/workerd) must be owned by root and not
// writable by group or others. A parent that is world-writable with the
// sticky bit (like /tmp) is accepted: others cannot rename or replace
// root's entries in it.
func CheckOwnership(dir string, stat func(string) (os.FileInfo, error)) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	check := func(p string, isParent bool) error {
		fi, err := stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("data dir %s: %w", dir, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("data dir %s: no owner for %s", dir, p)
		}
		if st.Uid != 0 {
			return fmt.Errorf("data dir %s: %s is owned by uid %d, not root", dir, p, st.Uid)
		}
		mode := fi.Mode()
		if mode.Perm()&0o022 != 0 && !(isParent && mode&fs.ModeSticky != 0) {
			return fmt.Errorf("data dir %s: %s is writable by group or others (mode %s)", dir, p, mode)
		}
		return nil
	}
	for _, p := range []string{filepath.Join(real, "bin", "workerd"), filepath.Join(real, "bin"), real} {
		if err := check(p, false); err != nil {
			return err
		}
	}
	for p := filepath.Dir(real); ; p = filepath.Dir(p) {
		if err := check(p, true); err != nil {
			return err
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// checkWritable creates dir if needed and writes and removes a file in it.
func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".precheck-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_, werr := f.WriteString("octo\n")
	cerr := f.Close()
	rerr := os.Remove(name)
	return errors.Join(werr, cerr, rerr)
}

// checkOverlay checks that the kernel lists overlay in /proc/filesystems
// and returns what to do when it does not, or "".
func checkOverlay(procRoot string) string {
	path := filepath.Join(procRoot, "filesystems")
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Sprintf("cannot read %s: mount proc at %s", path, procRoot)
		}
		return fmt.Sprintf("cannot read %s (%v): check that proc is mounted at %s", path, err, procRoot)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[len(fields)-1] == "overlay" {
			return ""
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Sprintf("cannot read %s (%v): check that proc is mounted at %s", path, err, procRoot)
	}
	return "the kernel has no overlay filesystem (containerd's overlayfs snapshotter needs it): load it with `modprobe overlay`"
}
