package workerd

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults of Sandbox and Validator.
const (
	// NobodyID is the uid and gid validations run as by default.
	NobodyID = 65534
	// DefaultValidateMemory bounds a validation's memory (a hello world
	// workerd takes ~40 MB).
	DefaultValidateMemory = 256 << 20
	// DefaultValidateCPU is a validation's CPU quota, in cores.
	DefaultValidateCPU = 1.0
	// DefaultValidatePids bounds a validation's processes and threads.
	DefaultValidatePids = 128
	// DefaultValidateConcurrency is how many validations run at once.
	DefaultValidateConcurrency = 2
	// ValidateCgroup is the cgroup holding one child cgroup per running
	// validation: /sys/fs/cgroup/<controller>/octo-validate/<id> on cgroup
	// v1, /sys/fs/cgroup/octo-validate/<id> on v2. It is apart from the
	// kubelet's kubepods.
	ValidateCgroup = "octo-validate"

	defaultCgroupRoot = "/sys/fs/cgroup"
	// cpuPeriod is the CFS period the CPU quota is expressed in (µs).
	cpuPeriod = 100000
	// binFD is workerd's binary in the child (ExtraFiles[1]); the child
	// execs /proc/self/fd/<binFD>, so the binary's directories (the
	// root-only data dir) need not be reachable by the sandbox's uid.
	binFD = 4
)

// Sandbox confines the workerd processes a Validator starts: uploaded code
// runs as an unprivileged user, in its own cgroup bounding memory, CPU and
// processes, in its own session, with no_new_privs, killed with octo.
type Sandbox struct {
	// UID and GID run workerd, with no supplementary groups; 0 means
	// NobodyID. When octo does not run as root, workerd keeps octo's
	// (unprivileged) user and these are ignored.
	UID, GID int
	// Memory bounds workerd's memory in bytes, swap included; 0 means
	// DefaultValidateMemory. A Worker going beyond is killed and refused.
	Memory int64
	// CPU is workerd's CPU quota in cores; 0 means DefaultValidateCPU.
	CPU float64
	// Pids bounds workerd's processes and threads; 0 means
	// DefaultValidatePids.
	Pids int
	// CgroupRoot is where cgroups are mounted; empty means /sys/fs/cgroup.
	// Cgroup v2 is used when the root is a cgroup2 mount, else the v1
	// memory, cpu and pids hierarchies under it.
	CgroupRoot string
	// AllowNoCgroup runs workerd without memory, CPU and pids limits when
	// its cgroup cannot be made (octo is not root, a controller is missing),
	// with a warning. By default validation then fails (closed) and the
	// upload is refused. The user, the time limit and the concurrency bound
	// apply either way.
	AllowNoCgroup bool
	// Group is the cgroup the sandbox's cgroup is made in, apart from the
	// others' (SetGroupWeight); empty means ValidateCgroup.
	Group string
	// TempDir holds each validation's config and modules (in a directory
	// owned by UID, mode 0700); empty means os.TempDir(). Every directory
	// above it must be searchable by UID.
	TempDir string
}

// withDefaults fills the zero fields.
func (s Sandbox) withDefaults() Sandbox {
	if s.UID == 0 {
		s.UID = NobodyID
	}
	if s.GID == 0 {
		s.GID = NobodyID
	}
	if s.Memory <= 0 {
		s.Memory = DefaultValidateMemory
	}
	if s.CPU <= 0 {
		s.CPU = DefaultValidateCPU
	}
	if s.Pids <= 0 {
		s.Pids = DefaultValidatePids
	}
	if s.CgroupRoot == "" {
		s.CgroupRoot = defaultCgroupRoot
	}
	if s.Group == "" {
		s.Group = ValidateCgroup
	}
	if s.TempDir == "" {
		s.TempDir = os.TempDir()
	}
	return s
}

// DefaultCPUShares is the CPU weight of a cgroup v1 group, and of every
// process outside one: a group has the weight of one busy process.
const DefaultCPUShares = 1024

// unified reports whether s.CgroupRoot is a cgroup v2 (unified) hierarchy;
// else it holds one cgroup v1 hierarchy per controller.
func (s Sandbox) unified() bool {
	_, err := os.Stat(filepath.Join(s.CgroupRoot, "cgroup.controllers"))
	return err == nil
}

// SetGroupWeight sets the CPU weight of s's Group, in cgroup v1 shares
// (DefaultCPUShares: as much as one process beside it; cgroup v2's
// cpu.weight is scaled from it), making the group if need be. The quota
// of each sandbox still bounds it.
func (s Sandbox) SetGroupWeight(shares int) error {
	s = s.withDefaults()
	if s.unified() {
		dir := filepath.Join(s.CgroupRoot, s.Group)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("cgroup %s: %w", dir, err)
		}
		return writeFile(filepath.Join(dir, "cpu.weight"), strconv.Itoa(min(max(shares*100/DefaultCPUShares, 1), 10000)))
	}
	dir := filepath.Join(s.CgroupRoot, "cpu", s.Group)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cgroup %s: %w", dir, err)
	}
	return writeFile(filepath.Join(dir, "cpu.shares"), strconv.Itoa(shares))
}

// RemoveGroupLeftovers removes the cgroups in s's Group that no process
// uses any more: a daemon that ended abruptly leaves its sandboxes'. A
// cgroup still in use (removing it fails) is left; so is a Group that does
// not exist.
func (s Sandbox) RemoveGroupLeftovers() error {
	s = s.withDefaults()
	groups := []string{filepath.Join(s.CgroupRoot, s.Group)} // cgroup v2
	if !s.unified() {
		groups = nil
		for _, c := range []string{"memory", "cpu", "pids"} {
			groups = append(groups, filepath.Join(s.CgroupRoot, c, s.Group))
		}
	}
	var errs []error
	for _, g := range groups {
		entries, err := os.ReadDir(g)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("cgroup %s: %w", g, err))
			continue
		}
		for _, e := range entries {
			if e.IsDir() {
				_ = os.Remove(filepath.Join(g, e.Name())) // fails while in use: left
			}
		}
	}
	return errors.Join(errs...)
}

// credential is what workerd runs as: UID/GID without supplementary groups
// when octo is root, nil (octo's own, unprivileged, user) otherwise.
func (s Sandbox) credential() *syscall.Credential {
	if os.Geteuid() != 0 {
		return nil
	}
	return &syscall.Credential{Uid: uint32(s.UID), Gid: uint32(s.GID), Groups: []uint32{}}
}

// searchable checks that every directory from dir up to / lets cred pass.
func searchable(dir string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("stat %s: no owner", d)
		}
		perm := st.Mode().Perm()
		var ok2 bool
		switch {
		case sys.Uid == cred.Uid:
			ok2 = perm&0o100 != 0
		case sys.Gid == cred.Gid:
			ok2 = perm&0o010 != 0
		default:
			ok2 = perm&0o001 != 0
		}
		if !ok2 {
			return fmt.Errorf("%s (mode %04o, owner %d:%d) is not searchable by uid %d", d, perm, sys.Uid, sys.Gid, cred.Uid)
		}
		if d == "/" || d == filepath.Dir(d) {
			return nil
		}
	}
}

// chownTree gives dir and everything below it to cred.
func chownTree(dir string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(cred.Uid), int(cred.Gid))
	})
}

// cgroup is one validation's cgroup: a directory in each of the v1 memory,
// cpu and pids hierarchies, or one v2 directory.
type cgroup struct {
	root string
	v2   bool
	// dirs maps a v1 controller to its directory; v2 has the single key "".
	dirs map[string]string
	// fd is the v2 directory, for CLONE_INTO_CGROUP.
	fd *os.File
}

// newCgroup makes <root>/[<controller>/]<group>/<name> with s's limits.
func newCgroup(s Sandbox, name string) (cg *cgroup, err error) {
	cg = &cgroup{root: s.CgroupRoot, dirs: map[string]string{}}
	defer func() {
		if err != nil {
			_ = cg.remove()
			cg = nil
		}
	}()
	if s.unified() {
		cg.v2 = true
		return cg, cg.makeV2(s, name)
	}
	return cg, cg.makeV1(s, name)
}

func (cg *cgroup) makeV1(s Sandbox, name string) error {
	for _, c := range []string{"memory", "cpu", "pids"} {
		h := filepath.Join(cg.root, c)
		if _, err := os.Stat(filepath.Join(h, "cgroup.procs")); err != nil {
			return fmt.Errorf("cgroup v1 controller %s is not mounted at %s", c, h)
		}
		dir := filepath.Join(h, s.Group, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		cg.dirs[c] = dir
	}
	mem, cpu, pids := cg.dirs["memory"], cg.dirs["cpu"], cg.dirs["pids"]
	limit := strconv.FormatInt(s.Memory, 10)
	if err := writeFile(filepath.Join(mem, "memory.limit_in_bytes"), limit); err != nil {
		return err
	}
	// Swap counts too where the kernel accounts for it (swapaccount=1).
	if memsw := filepath.Join(mem, "memory.memsw.limit_in_bytes"); exists(memsw) {
		if err := writeFile(memsw, limit); err != nil {
			return err
		}
	} else {
		_ = writeFile(filepath.Join(mem, "memory.swappiness"), "0")
	}
	if err := writeFile(filepath.Join(cpu, "cpu.cfs_period_us"), strconv.Itoa(cpuPeriod)); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(cpu, "cpu.cfs_quota_us"), strconv.Itoa(s.cpuQuota())); err != nil {
		return err
	}
	return writeFile(filepath.Join(pids, "pids.max"), strconv.Itoa(s.Pids))
}

func (cg *cgroup) makeV2(s Sandbox, name string) error {
	have, err := os.ReadFile(filepath.Join(cg.root, "cgroup.controllers"))
	if err != nil {
		return err
	}
	want := []string{"memory", "cpu", "pids"}
	for _, c := range want {
		if !slices.Contains(strings.Fields(string(have)), c) {
			return fmt.Errorf("cgroup v2 at %s lacks the %s controller", cg.root, c)
		}
	}
	enable := "+memory +cpu +pids"
	// Enabling is idempotent; the root usually has them already (systemd).
	if sub, err := os.ReadFile(filepath.Join(cg.root, "cgroup.subtree_control")); err != nil ||
		!containsAll(strings.Fields(string(sub)), want) {
		if err := writeFile(filepath.Join(cg.root, "cgroup.subtree_control"), enable); err != nil {
			return err
		}
	}
	parent := filepath.Join(cg.root, s.Group)
	if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := writeFile(filepath.Join(parent, "cgroup.subtree_control"), enable); err != nil {
		return err
	}
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	cg.dirs[""] = dir
	if err := writeFile(filepath.Join(dir, "memory.max"), strconv.FormatInt(s.Memory, 10)); err != nil {
		return err
	}
	if p := filepath.Join(dir, "memory.swap.max"); exists(p) {
		if err := writeFile(p, "0"); err != nil {
			return err
		}
	}
	if err := writeFile(filepath.Join(dir, "cpu.max"), fmt.Sprintf("%d %d", s.cpuQuota(), cpuPeriod)); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "pids.max"), strconv.Itoa(s.Pids)); err != nil {
		return err
	}
	fd, err := os.Open(dir)
	if err != nil {
		return err
	}
	cg.fd = fd
	return nil
}

// cpuQuota is CPU in µs per cpuPeriod (at least the kernel's 1 ms).
func (s Sandbox) cpuQuota() int { return max(int(s.CPU*cpuPeriod), 1000) }

// enterThread moves the calling OS thread, which must be locked, into cg so
// that the process it forks starts inside (cgroup v1 lets threads move one
// by one; v2 uses CLONE_INTO_CGROUP instead and this does nothing). leave
// moves the thread back.
func (cg *cgroup) enterThread() (leave func() error, err error) {
	if cg == nil || cg.v2 {
		return func() error { return nil }, nil
	}
	tid := strconv.Itoa(unix.Gettid())
	orig, err := threadCgroups(tid)
	if err != nil {
		return nil, err
	}
	back := map[string]string{}
	for c := range cg.dirs {
		p, ok := orig[c]
		if !ok {
			return nil, fmt.Errorf("thread %s is in no %s cgroup", tid, c)
		}
		back[c] = filepath.Join(cg.root, c, p)
	}
	leave = func() error {
		var errs []error
		for _, dir := range back {
			errs = append(errs, writeFile(filepath.Join(dir, "tasks"), tid))
		}
		return errors.Join(errs...)
	}
	for _, dir := range cg.dirs {
		if err := writeFile(filepath.Join(dir, "tasks"), tid); err != nil {
			return nil, errors.Join(err, leave())
		}
	}
	return leave, nil
}

// threadCgroups maps each v1 controller to the cgroup of thread tid.
func threadCgroups(tid string) (map[string]string, error) {
	f, err := os.Open("/proc/self/task/" + tid + "/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "4:memory:/some/path", "2:cpu,cpuacct:/", "0::/" (v2).
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c != "" {
				out[c] = parts[2]
			}
		}
	}
	return out, sc.Err()
}

// oomKilled reports whether the kernel killed a process of cg for memory.
func (cg *cgroup) oomKilled() bool {
	if cg == nil {
		return false
	}
	if cg.v2 {
		return counter(filepath.Join(cg.dirs[""], "memory.events"), "oom_kill") > 0
	}
	mem := cg.dirs["memory"]
	if n := counter(filepath.Join(mem, "memory.oom_control"), "oom_kill"); n >= 0 {
		return n > 0
	}
	// Kernels before 4.13 lack oom_kill: the limit was hit at least.
	b, _ := os.ReadFile(filepath.Join(mem, "memory.failcnt"))
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n > 0
}

// kill SIGKILLs every process left in cg.
func (cg *cgroup) kill() {
	if cg == nil {
		return
	}
	for _, dir := range cg.dirs {
		if cg.v2 && writeFile(filepath.Join(dir, "cgroup.kill"), "1") == nil {
			continue
		}
		for _, pid := range procs(dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// remove kills what is left in cg and removes its directories, retrying for
// a moment while the killed processes exit.
func (cg *cgroup) remove() error {
	if cg == nil {
		return nil
	}
	if cg.fd != nil {
		cg.fd.Close()
		cg.fd = nil
	}
	var errs []error
	deadline := time.Now().Add(2 * time.Second)
	for c, dir := range cg.dirs {
		for {
			err := os.Remove(dir)
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				delete(cg.dirs, c)
				break
			}
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
				break
			}
			cg.kill()
			time.Sleep(20 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

// procs lists the pids in the cgroup dir.
func procs(dir string) []int {
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// counter reads "name N" from a flat-keyed file; -1 when absent.
func counter(path, name string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return -1
}

// start starts cmd from an OS thread of its own that lives until done is
// closed: Pdeathsig fires when the forking thread ends, not the process.
// That thread sets no_new_privs, inherited by workerd, and (cgroup v1)
// joins cg for the fork; it is never unlocked, so Go ends it afterwards.
func start(cmd *exec.Cmd, cg *cgroup, done <-chan struct{}) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			errc <- fmt.Errorf("set no_new_privs: %w", err)
			return
		}
		leave, err := cg.enterThread()
		if err != nil {
			errc <- fmt.Errorf("join cgroup: %w", err)
			return
		}
		err = cmd.Start()
		if lerr := leave(); lerr != nil && err == nil {
			// This thread stays in cg until it ends, which is soon; workerd
			// has already started inside.
			killGroup(cmd.Process.Pid)
			_ = cmd.Wait()
			err = fmt.Errorf("leave cgroup: %w", lerr)
		}
		errc <- err
		if err != nil {
			return
		}
		<-done
	}()
	return <-errc
}

// killGroup SIGKILLs the process group led by pid (workerd runs in its own
// session).
func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }

// cgroupName is a fresh name for a validation's cgroup: octo's pid and a
// random suffix.
func cgroupName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%d-%s", os.Getpid(), hex.EncodeToString(b[:]))
}

// sizeString renders a byte count as "256 MiB" when it is whole MiB.
func sizeString(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

func writeFile(path, value string) error {
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
