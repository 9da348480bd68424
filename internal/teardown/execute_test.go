package teardown

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/octohq/octo/internal/config"
)

// fakeOps stands in for the privileged system calls and changes the fake
// host the way the real calls change the real one.
type fakeOps struct {
	sys   System
	calls []string
}

func (f *fakeOps) kill(pid int) error {
	f.calls = append(f.calls, fmt.Sprintf("kill %d", pid))
	return os.RemoveAll(filepath.Join(f.sys.ProcRoot, fmt.Sprint(pid)))
}

func (f *fakeOps) unmount(path string) error {
	f.calls = append(f.calls, "unmount "+path)
	file := filepath.Join(f.sys.ProcRoot, "self", "mountinfo")
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	lines := strings.SplitAfter(string(data), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if f := strings.Fields(lines[i]); len(f) > 4 && unescapeMountinfo(f[4]) == path {
			lines = slices.Delete(lines, i, i+1)
			return os.WriteFile(file, []byte(strings.Join(lines, "")), 0o644)
		}
	}
	return unix.EINVAL
}

func (f *fakeOps) deleteLink(name string) (bool, error) {
	f.calls = append(f.calls, "delete-link "+name)
	dir := filepath.Join(f.sys.NetClassDir, name)
	if _, err := os.Lstat(dir); err != nil {
		return false, nil
	}
	return true, os.RemoveAll(dir)
}

// fakeFirewall is iptables (legacy-free, nf_tables backend) and nft as seen
// through a Runner: ip6tables is not installed.
type fakeFirewall struct {
	v4     string
	tables map[string]bool // "<family> <name>" -> empty
	calls  []string        // commands that change something
}

func (f *fakeFirewall) run(_ context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := strings.Join(append([]string{name}, args...), " ")
	switch cmd {
	case "iptables-save":
		return []byte(f.v4), nil
	case "iptables-restore":
		f.calls = append(f.calls, cmd)
		f.v4 = string(stdin)
		for table, empty := range tablesEmpty(f.v4) {
			f.tables["ip "+table] = empty
		}
		return nil, nil
	case "ip6tables-save", "ip6tables-restore":
		return nil, fmt.Errorf("exec: %q: %w", name, exec.ErrNotFound)
	case "nft -j list ruleset":
		items := []map[string]any{{"metainfo": map[string]any{"json_schema_version": 1}}}
		for _, id := range slices.Sorted(maps.Keys(f.tables)) {
			fam, table, _ := strings.Cut(id, " ")
			items = append(items, map[string]any{"table": map[string]any{"family": fam, "name": table}})
			if !f.tables[id] {
				items = append(items, map[string]any{"rule": map[string]any{"family": fam, "table": table, "chain": "X"}})
			}
		}
		return json.Marshal(map[string]any{"nftables": items})
	}
	if t, ok := strings.CutPrefix(cmd, "nft delete table "); ok {
		f.calls = append(f.calls, cmd)
		delete(f.tables, t)
		return nil, nil
	}
	return nil, fmt.Errorf("unexpected command %q", cmd)
}

// tablesEmpty tells, per table of an iptables-save text, whether it holds
// only base chains with an ACCEPT policy.
func tablesEmpty(save string) map[string]bool {
	out := map[string]bool{}
	table := ""
	for _, line := range strings.Split(save, "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
			out[table] = true
		case strings.HasPrefix(line, "-A"), strings.HasPrefix(line, ":") && !strings.Contains(line, " ACCEPT "):
			out[table] = false
		}
	}
	return out
}

// fakeHost lays out a host left by a killed octo daemon under a temp dir.
type fakeHost struct {
	cfg  config.Config
	sys  System
	ops  *fakeOps
	fw   *fakeFirewall
	root string
}

func newFakeHost(t *testing.T) *fakeHost {
	t.Helper()
	root := t.TempDir()
	r := func(p string) string { return filepath.Join(root, p) }
	cfg := config.Default(r("data"))
	fw := &fakeFirewall{
		v4: "*mangle\n:PREROUTING ACCEPT [0:0]\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n" +
			"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.0.0.1/32 -j DROP\nCOMMIT\n" +
			"*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n",
		tables: map[string]bool{"ip mangle": false, "ip filter": false, "ip nat": false, "inet mine": true},
	}
	sys := System{
		ProcRoot: r("proc"), SysctlRoot: r("proc/sys"), CgroupRoot: r("sys/fs/cgroup"),
		NetClassDir: r("sys/class/net"), NetnsDir: r("run/netns"), CNIDir: r("var/lib/cni"),
		ContainerLogDir: r("var/log/containers"), PodLogDir: r("var/log/pods"), KubeletDir: r("var/lib/kubelet"),
		RuncRoot: r("run/containerd/runc"), Run: fw.run,
	}
	ops := &fakeOps{sys: sys}
	sys.ops = ops
	h := &fakeHost{cfg: cfg, sys: sys, ops: ops, fw: fw, root: root}

	shim := cfg.BinDir() + "/containerd-shim-runc-v2"
	fakeProc(t, sys.ProcRoot, 1, 0, 1, "init", []string{"/sbin/init"}, "/sbin/init")
	fakeProc(t, sys.ProcRoot, 100, 1, 50, "sshd", []string{"/usr/sbin/sshd"}, "/usr/sbin/sshd")
	fakeProc(t, sys.ProcRoot, 200, 1, 1000, "containerd-shim", []string{shim, "-id", "4b9e"}, shim)
	fakeProc(t, sys.ProcRoot, 201, 200, 1001, "pause", []string{"/pause"}, "/pause")

	run := cfg.RunDir()
	mountinfo := fmt.Sprintf(`1 0 8:1 / / rw - ext4 /dev/sda1 rw
2 1 8:1 /x %[1]s/kubelet rw - ext4 /dev/sda1 rw
3 2 0:50 / %[1]s/kubelet/pods/p1/volumes/kubernetes.io~projected/token rw - tmpfs tmpfs rw
4 1 0:51 / %[2]s/containerd/io.containerd.runtime.v2.task/k8s.io/4b9e/rootfs rw - overlay overlay rw
5 1 0:4 net:[4026532301] %[3]s/cni-abc rw - nsfs nsfs rw
`, cfg.DataDir, run, sys.NetnsDir)
	h.write(t, "proc/self/mountinfo", mountinfo)
	h.write(t, "run/netns/cni-abc", "")

	for _, l := range []string{"lo", "eth0", "cni0/bridge"} {
		h.mkdir(t, "sys/class/net/"+l)
	}
	h.mkdir(t, "sys/class/net/veth1")
	if err := os.Symlink("../cni0", r("sys/class/net/veth1/master")); err != nil {
		t.Fatal(err)
	}

	h.mkdir(t, "sys/fs/cgroup/memory/kubepods/besteffort/pod1")
	h.mkdir(t, "sys/fs/cgroup/cpu/kubepods")
	h.mkdir(t, "sys/fs/cgroup/cpu/user.slice")

	h.write(t, "var/lib/cni/networks/octo/10.42.0.2", "4b9e")
	h.write(t, "var/lib/cni/results/octo-4b9e-eth0", "{}")
	h.write(t, "var/lib/cni/results/other-1-eth0", "{}")
	h.mkdir(t, "var/log/containers")
	for name, target := range map[string]string{
		"web_default_nginx-1.log": cfg.Path("pod-logs", "default_web_1", "nginx", "0.log"),
		"mine.log":                "/srv/mine.log",
	} {
		if err := os.Symlink(target, r("var/log/containers/"+name)); err != nil {
			t.Fatal(err)
		}
	}
	// A stopped task: its bundle in the run dir (the real /run/octo-<hash>
	// of this data dir), its work dir, runc's state; and another
	// containerd's runc state, which stays.
	bundle := cfg.RunPath("containerd", taskPlugin, "k8s.io", "4b9e")
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(cfg.RunDir()) })
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.write(t, "data/containerd/root/"+taskPlugin+"/k8s.io/4b9e/log", "")
	h.write(t, "run/containerd/runc/k8s.io/4b9e/state.json", "{}")
	h.write(t, "run/containerd/runc/k8s.io/other/state.json", "{}")
	h.write(t, "var/lib/kubelet/device-plugins/kubelet.sock", "")
	h.write(t, "var/lib/kubelet/device-plugins/kubelet_internal_checkpoint", "{}")

	for key, v := range map[string]string{
		"vm.overcommit_memory": "0", "kernel.panic": "1", "kernel.panic_on_oops": "0",
		"net.ipv4.ip_forward": "0", "net.ipv4.conf.all.route_localnet": "0",
	} {
		h.write(t, "proc/sys/"+strings.ReplaceAll(key, ".", "/"), v+"\n")
	}
	if err := sys.SaveSysctls(cfg); err != nil {
		t.Fatal(err)
	}
	// What the kubelet, the daemon and kube-proxy change.
	h.write(t, "proc/sys/vm/overcommit_memory", "1\n")
	h.write(t, "proc/sys/kernel/panic", "10\n")
	h.write(t, "proc/sys/net/ipv4/ip_forward", "1\n")
	return h
}

func (h *fakeHost) write(t *testing.T, rel, content string) {
	t.Helper()
	p := filepath.Join(h.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (h *fakeHost) mkdir(t *testing.T, rel string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(h.root, rel), 0o755); err != nil {
		t.Fatal(err)
	}
}

func (h *fakeHost) exists(rel string) bool {
	_, err := os.Lstat(filepath.Join(h.root, rel))
	return err == nil
}

func TestExecuteTearsDownAndIsIdempotent(t *testing.T) {
	h := newFakeHost(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	left, err := h.sys.Leftovers(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 22 {
		t.Errorf("leftovers before teardown: %d, want 22:\n%s", len(left), strings.Join(left, "\n"))
	}

	state, err := h.sys.ReadHostState(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := NewPlan(h.cfg, state).Execute(context.Background(), log); err != nil {
		t.Fatalf("Execute: %v\n%s", err, logs.String())
	}

	run := h.cfg.RunDir()
	wantOps := []string{
		"kill 200",
		"kill 201",
		"unmount " + h.cfg.Path("kubelet/pods/p1/volumes/kubernetes.io~projected/token"),
		"unmount " + run + "/containerd/io.containerd.runtime.v2.task/k8s.io/4b9e/rootfs",
		"unmount " + h.cfg.Path("kubelet"),
		"unmount " + h.sys.NetnsDir + "/cni-abc",
		"delete-link veth1",
		"delete-link cni0",
	}
	if !slices.Equal(h.ops.calls, wantOps) {
		t.Errorf("system calls:\n got %q\nwant %q", h.ops.calls, wantOps)
	}
	wantFW := []string{"iptables-restore", "nft delete table ip mangle", "nft delete table ip nat"}
	if !slices.Equal(h.fw.calls, wantFW) {
		t.Errorf("firewall commands %q, want %q", h.fw.calls, wantFW)
	}
	if want := "*mangle\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.0.0.1/32 -j DROP\nCOMMIT\n" +
		"*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"; h.fw.v4 != want {
		t.Errorf("restored rules:\n%s\nwant:\n%s", h.fw.v4, want)
	}

	for _, gone := range []string{
		"run/netns", "sys/fs/cgroup/memory/kubepods", "sys/fs/cgroup/cpu/kubepods",
		"var/lib/cni/networks", "var/lib/cni/results/octo-4b9e-eth0",
		"var/log/containers/web_default_nginx-1.log", "var/lib/kubelet", "data/" + BaselineFile,
		"data/containerd/root/" + taskPlugin + "/k8s.io/4b9e", "run/containerd/runc/k8s.io/4b9e",
	} {
		if h.exists(gone) {
			t.Errorf("%s still exists", gone)
		}
	}
	if _, err := os.Lstat(h.cfg.RunPath("containerd", taskPlugin, "k8s.io", "4b9e")); err == nil {
		t.Error("the task's bundle still exists")
	}
	for _, kept := range []string{
		"sys/fs/cgroup/cpu/user.slice", "var/lib/cni/results/other-1-eth0", "var/log/containers/mine.log", "proc/100",
		"run/containerd/runc/k8s.io/other",
	} {
		if !h.exists(kept) {
			t.Errorf("%s was removed", kept)
		}
	}
	sysctls, err := readSysctls(h.sys.SysctlRoot)
	if err != nil {
		t.Fatal(err)
	}
	wantSysctls := map[string]string{
		"vm.overcommit_memory": "0", "kernel.panic": "1", "kernel.panic_on_oops": "0",
		"net.ipv4.ip_forward": "0", "net.ipv4.conf.all.route_localnet": "0",
	}
	if fmt.Sprint(sysctls) != fmt.Sprint(wantSysctls) {
		t.Errorf("sysctls after teardown %v, want %v", sysctls, wantSysctls)
	}

	left, err = h.sys.Leftovers(h.cfg)
	if err != nil || len(left) != 0 {
		t.Errorf("leftovers after teardown: %q, %v", left, err)
	}

	// A second teardown changes nothing and succeeds.
	h.ops.calls, h.fw.calls = nil, nil
	state, err = h.sys.ReadHostState(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	plan := NewPlan(h.cfg, state)
	for _, s := range plan.Steps {
		if s.Action != ActionRemoveEmptyDir {
			t.Errorf("second plan has step %s", s)
		}
	}
	if err := plan.Execute(context.Background(), nil); err != nil {
		t.Errorf("second Execute: %v", err)
	}
	if len(h.ops.calls)+len(h.fw.calls) != 0 {
		t.Errorf("second Execute changed the host: %q %q", h.ops.calls, h.fw.calls)
	}
	if !h.exists("var/lib/cni/results/other-1-eth0") || !h.exists("var/log/containers/mine.log") {
		t.Error("second Execute removed foreign files")
	}
}

func TestExecuteContinuesPastFailures(t *testing.T) {
	h := newFakeHost(t)
	// A cgroup that stays busy: a file in a plain directory makes rmdir fail.
	h.write(t, "sys/fs/cgroup/memory/kubepods/besteffort/pod1/tasks", "42")
	state, err := h.sys.ReadHostState(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = NewPlan(h.cfg, state).Execute(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "remove-cgroup") {
		t.Fatalf("Execute error = %v, want a remove-cgroup failure", err)
	}
	if h.exists("var/lib/kubelet") || h.exists("data/"+BaselineFile) {
		t.Error("steps after the failure did not run")
	}
}

func TestExecuteRefusesForeignTargets(t *testing.T) {
	h := newFakeHost(t)
	outside := filepath.Join(h.root, "precious")
	h.write(t, "precious/file", "x")
	plan := Plan{system: h.sys, Steps: []Step{
		{Action: ActionKill, PID: 1, StartTime: 1},
		{Action: ActionRemove, Target: outside},
		{Action: ActionRemoveCgroup, Target: outside},
		{Action: ActionFilterIptables, Target: "sh"},
		{Action: ActionDeleteNftTable, Target: "inet mine"},
		{Action: "format-disk", Target: "/"},
	}}
	err := plan.Execute(context.Background(), nil)
	if err == nil {
		t.Fatal("Execute accepted foreign targets")
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 6 {
		t.Errorf("got %d errors, want 6: %v", n, err)
	}
	if !h.exists("precious/file") || len(h.ops.calls) != 0 || len(h.fw.calls) != 0 {
		t.Errorf("foreign targets touched: %q %q", h.ops.calls, h.fw.calls)
	}
}

func TestExecuteStopsWhenCancelled(t *testing.T) {
	h := newFakeHost(t)
	state, err := h.sys.ReadHostState(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = NewPlan(h.cfg, state).Execute(ctx, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Execute error = %v, want context.Canceled", err)
	}
	if len(h.ops.calls) != 0 {
		t.Errorf("cancelled Execute made calls %q", h.ops.calls)
	}
}

// TestExecuteKillsOwnChild kills, with the real system calls, a process the
// test itself started; a step whose start time does not match is skipped.
func TestExecuteKillsOwnChild(t *testing.T) {
	start := func() (*exec.Cmd, Process) {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Skipf("cannot start sleep: %v", err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		p, err := readProcess("/proc", cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		return cmd, p
	}

	reused, p := start()
	plan := Plan{Steps: []Step{{Action: ActionKill, PID: p.PID, StartTime: p.StartTime + 1}}}
	if err := plan.Execute(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if st, err := readStat("/proc", p.PID); err != nil || st.dead() {
		t.Errorf("process with another start time was killed: %v", err)
	}
	_ = reused

	cmd, p := start()
	plan = Plan{Steps: []Step{{Action: ActionKill, PID: p.PID, StartTime: p.StartTime}}}
	begin := time.Now()
	if err := plan.Execute(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("child ended with %v, want SIGKILL", err)
	}
	if time.Since(begin) > 5*time.Second {
		t.Errorf("kill took %s", time.Since(begin))
	}
}

func TestRemoveEmptyDirKeepsFilesAndFullDirs(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	full := filepath.Join(dir, "full")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(full, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	e := &executor{sys: System{}.withDefaults(), log: slog.New(slog.DiscardHandler)}
	for _, p := range []string{file, full, filepath.Join(dir, "missing")} {
		if err := e.removeEmptyDir(p); err != nil {
			t.Errorf("removeEmptyDir(%s): %v", p, err)
		}
	}
	for _, p := range []string{file, full} {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s was removed", p)
		}
	}
}
