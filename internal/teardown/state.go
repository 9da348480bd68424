package teardown

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/octohq/octo/internal/config"
)

// commandTimeout bounds each external command run while reading host state.
const commandTimeout = 30 * time.Second

// Runner runs the command name with args, feeding it stdin when not nil, and
// returns its standard output. A command that is not installed fails with an
// error wrapping exec.ErrNotFound.
type Runner func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)

// execRunner is the Runner of the real host.
func execRunner(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
		}
		return nil, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return stdout.Bytes(), nil
}

// ReadHostState reads, from the real host, what an octo daemon using cfg may
// have left behind. See System.ReadHostState.
func ReadHostState(cfg config.Config) (HostState, error) {
	return System{}.ReadHostState(cfg)
}

// ReadHostState reads what an octo daemon using cfg may have left on s: the
// process table, mountinfo, named network namespaces, interfaces, iptables and
// nftables rules, kubepods cgroups, CNI, kubelet and log files outside the
// data dir, and the sysctls with their saved baseline. It only reads.
//
// Parts that cannot be read are reported in the joined error; the returned
// state still holds everything else, and a plan made from it is safe: it just
// leaves out what could not be read.
func (s System) ReadHostState(cfg config.Config) (HostState, error) {
	s = s.withDefaults()
	st := HostState{System: s, SelfPID: os.Getpid()}
	var errs []error
	note := func(what string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", what, err))
		}
	}
	var err error

	st.Processes, err = readProcesses(s.ProcRoot)
	note("processes", err)
	st.Mounts, err = readMountinfo(filepath.Join(s.ProcRoot, "self", "mountinfo"))
	note("mounts", err)
	st.Netns, err = readNetns(s.NetnsDir)
	note("network namespaces", err)
	st.Links, err = readLinks(s.NetClassDir)
	note("network interfaces", err)

	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	st.IPv4Rules, err = saveIptables(ctx, s.Run, "iptables")
	note("iptables rules", err)
	st.IPv6Rules, err = saveIptables(ctx, s.Run, "ip6tables")
	note("ip6tables rules", err)
	st.NftTables, err = readNftTables(ctx, s.Run)
	note("nftables tables", err)

	st.Cgroups, err = readCgroups(s.CgroupRoot)
	note("kubepods cgroups", err)
	st.CNIFiles, err = readCNIFiles(s.CNIDir)
	note("CNI state", err)
	st.ContainerLogs, err = readLogLinks(s.ContainerLogDir)
	note("container log links", err)
	st.KubeletFiles = existing(s.kubeletFiles(), false)
	st.Tasks, err = readTasks(cfg, s.RuncRoot)
	note("container tasks", err)
	st.Dirs = existing(s.hostDirs(), true)

	st.Sysctls, err = readSysctls(s.SysctlRoot)
	note("sysctls", err)
	st.SysctlBaseline, err = readBaseline(cfg.Path(BaselineFile))
	note("sysctl baseline", err)

	return st, errors.Join(errs...)
}

// readProcesses lists the processes of a proc filesystem. Processes that exit
// while being read are left out.
func readProcesses(procRoot string) ([]Process, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	var procs []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		p, err := readProcess(procRoot, pid)
		if err != nil {
			continue // exited, or a kernel interface we cannot read
		}
		procs = append(procs, p)
	}
	return procs, nil
}

// readProcess reads one process's identity from procRoot/<pid>.
func readProcess(procRoot string, pid int) (Process, error) {
	stat, err := readStat(procRoot, pid)
	if err != nil {
		return Process{}, err
	}
	p := Process{PID: pid, PPID: stat.ppid, StartTime: stat.start}
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	if cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		argv0, _, _ := bytes.Cut(cmdline, []byte{0})
		p.Argv0 = string(argv0)
	}
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		p.Exe = strings.TrimSuffix(exe, " (deleted)")
	}
	return p, nil
}

// procStat is what teardown needs from /proc/<pid>/stat.
type procStat struct {
	state byte   // R, S, D, Z, ...
	ppid  int    // parent PID
	start uint64 // start time in clock ticks after boot
}

// dead reports whether the process has exited and waits to be reaped.
func (s procStat) dead() bool { return s.state == 'Z' || s.state == 'X' }

// readStat parses procRoot/<pid>/stat.
func readStat(procRoot string, pid int) (procStat, error) {
	path := filepath.Join(procRoot, strconv.Itoa(pid), "stat")
	data, err := os.ReadFile(path)
	if err != nil {
		return procStat{}, err
	}
	// The command name (field 2) is in parentheses and may hold anything.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parse %s: no command name", path)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, starttime field 22.
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("parse %s: malformed", path)
	}
	st := procStat{state: f[0][0]}
	if st.ppid, err = strconv.Atoi(f[1]); err != nil {
		return procStat{}, fmt.Errorf("parse %s: ppid: %w", path, err)
	}
	if st.start, err = strconv.ParseUint(f[19], 10, 64); err != nil {
		return procStat{}, fmt.Errorf("parse %s: starttime: %w", path, err)
	}
	return st, nil
}

// readMountinfo reads and parses a mountinfo file.
func readMountinfo(path string) ([]Mount, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountinfo(f)
}

// parseMountinfo parses the format of /proc/<pid>/mountinfo (proc(5)):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func parseMountinfo(r io.Reader) ([]Mount, error) {
	var mounts []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 7 || sep < 0 || sep+2 >= len(f) {
			return nil, fmt.Errorf("mountinfo line %d: malformed: %q", n, line)
		}
		id, err1 := strconv.Atoi(f[0])
		parent, err2 := strconv.Atoi(f[1])
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w", n, err)
		}
		mounts = append(mounts, Mount{
			ID:         id,
			ParentID:   parent,
			MountPoint: unescapeMountinfo(f[4]),
			FSType:     f[sep+1],
			Source:     unescapeMountinfo(f[sep+2]),
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return mounts, nil
}

// unescapeMountinfo decodes the octal escapes (\040 for a space, \011, \012,
// \134) the kernel writes in mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// readNetns lists the cni-* entries of the named network namespace dir.
func readNetns(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "cni-") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// readLinks lists the interfaces of a /sys/class/net directory with their
// bridge master.
func readLinks(dir string) ([]Link, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var links []Link
	for _, e := range entries {
		l := Link{Name: e.Name()}
		if master, err := os.Readlink(filepath.Join(dir, e.Name(), "master")); err == nil {
			l.Master = filepath.Base(master)
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "bridge")); err == nil {
			l.Bridge = true
		}
		links = append(links, l)
	}
	return links, nil
}

// saveIptables returns the output of <cmd>-save, or "" when the command is
// not installed.
func saveIptables(ctx context.Context, run Runner, cmd string) (string, error) {
	out, err := run(ctx, nil, cmd+"-save")
	if errors.Is(err, exec.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// readNftTables lists the nftables tables, or none when nft is not installed.
func readNftTables(ctx context.Context, run Runner) ([]NftTable, error) {
	out, err := run(ctx, nil, "nft", "-j", "list", "ruleset")
	if errors.Is(err, exec.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseNftRuleset(out)
}

// parseNftRuleset reads the tables of `nft -j list ruleset` output and
// whether each is empty: nothing but base chains with an accept policy. A
// rule, a set, any other object or a regular chain makes a table non-empty,
// and so does a base chain with a drop policy (deleting it would open the
// firewall).
func parseNftRuleset(data []byte) ([]NftTable, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse nft JSON: %w", err)
	}
	type object struct {
		Family string `json:"family"`
		Table  string `json:"table"`
		Name   string `json:"name"`
		Hook   string `json:"hook"`
		Policy string `json:"policy"`
	}
	var tables []NftTable
	index := map[string]int{}
	for _, entry := range doc.Nftables {
		for kind, raw := range entry {
			if kind == "metainfo" {
				continue
			}
			var o object
			if err := json.Unmarshal(raw, &o); err != nil {
				return nil, fmt.Errorf("parse nft %s: %w", kind, err)
			}
			if kind == "table" {
				index[o.Family+" "+o.Name] = len(tables)
				tables = append(tables, NftTable{Family: o.Family, Name: o.Name, Empty: true})
				continue
			}
			i, ok := index[o.Family+" "+o.Table]
			if !ok {
				continue
			}
			if kind != "chain" || o.Hook == "" || (o.Policy != "" && o.Policy != "accept") {
				tables[i].Empty = false
			}
		}
	}
	return tables, nil
}

// readCgroups lists the kubepods* cgroups under root (cgroup v2) or under each
// hierarchy mounted below root (cgroup v1), with all their descendants.
// Symlinks (cpu -> cpu,cpuacct) are not followed, so nothing is listed twice.
func readCgroups(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var tops []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		path := filepath.Join(root, e.Name())
		if strings.HasPrefix(e.Name(), "kubepods") {
			tops = append(tops, path)
			continue
		}
		sub, err := os.ReadDir(path)
		if err != nil {
			continue // not a hierarchy we can read
		}
		for _, s := range sub {
			if s.IsDir() && strings.HasPrefix(s.Name(), "kubepods") {
				tops = append(tops, filepath.Join(path, s.Name()))
			}
		}
	}
	var out []string
	var errs []error
	for _, top := range tops {
		err := filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // removed while walking
				}
				return err
			}
			if d.IsDir() {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// taskPlugin names containerd's directories of runtime v2 tasks.
const taskPlugin = "io.containerd.runtime.v2.task"

// readTasks lists, for every task of cfg's containerd (its state dir, per
// namespace), the task's bundle in the run dir, its work dir in the data
// dir and runc's state under runcRoot, the ones that exist.
func readTasks(cfg config.Config, runcRoot string) ([]string, error) {
	state := cfg.RunPath("containerd", taskPlugin)
	namespaces, err := os.ReadDir(state)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	var errs []error
	for _, ns := range namespaces {
		if !ns.IsDir() {
			continue
		}
		tasks, err := os.ReadDir(filepath.Join(state, ns.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, t := range tasks {
			if !t.IsDir() {
				continue
			}
			out = append(out, filepath.Join(state, ns.Name(), t.Name()))
			for _, p := range []string{
				cfg.Path("containerd", "root", taskPlugin, ns.Name(), t.Name()),
				filepath.Join(runcRoot, ns.Name(), t.Name()),
			} {
				if _, err := os.Lstat(p); err == nil {
					out = append(out, p)
				}
			}
		}
	}
	return out, errors.Join(errs...)
}

// readCNIFiles lists octo's host-local lease directory and libcni's cached
// results for octo's network.
func readCNIFiles(cniDir string) ([]string, error) {
	var out []string
	leases := filepath.Join(cniDir, "networks", NetworkName)
	if _, err := os.Lstat(leases); err == nil {
		out = append(out, leases)
	}
	results := filepath.Join(cniDir, "results")
	entries, err := os.ReadDir(results)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), NetworkName+"-") {
			out = append(out, filepath.Join(results, e.Name()))
		}
	}
	return out, nil
}

// readLogLinks lists the symlinks of the container log directory.
func readLogLinks(dir string) ([]LogLink, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []LogLink
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		path := filepath.Join(dir, e.Name())
		target, err := os.Readlink(path)
		if err != nil {
			continue
		}
		out = append(out, LogLink{Path: path, Target: target})
	}
	return out, nil
}

// existing returns the paths that exist (and are directories, if dirs).
func existing(paths []string, dirs bool) []string {
	var out []string
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err == nil && (!dirs || fi.IsDir()) {
			out = append(out, p)
		}
	}
	return out
}
