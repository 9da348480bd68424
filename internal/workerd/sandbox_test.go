package workerd

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testValidator validates in the sandbox; without root (no cgroups to make)
// it runs without one.
func testValidator(bin string) *Validator {
	return &Validator{Bin: bin, Sandbox: Sandbox{AllowNoCgroup: os.Geteuid() != 0}}
}

// needSandbox skips unless this test run can drop privileges and make
// cgroups (root, cgroups mounted and writable).
func needSandbox(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the sandbox switches users and makes cgroups")
	}
	cg, err := newCgroup(Sandbox{}.withDefaults(), cgroupName())
	if err != nil {
		t.Skipf("cannot make cgroups here: %v", err)
	}
	if err := cg.remove(); err != nil {
		t.Fatal(err)
	}
}

// procStatus returns the fields of /proc/<pid>/status.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return out
}

// TestValidateSandboxed: workerd runs as nobody without groups, with
// no_new_privs, in its own session and in an octo-validate cgroup with the
// limits; the binary sits in a root-only directory; the cgroup and the
// temporary directory are gone afterwards.
func TestValidateSandboxed(t *testing.T) {
	bin := workerdBin(t)
	needSandbox(t)
	if st, err := os.Stat(filepath.Dir(bin)); err != nil || st.Mode().Perm()&0o077 != 0 {
		t.Fatalf("the test binary's directory should be private: %v %v", st.Mode(), err)
	}
	var (
		status  map[string]string
		cgroups string
		dirs    []string
		sid     string
	)
	tmp := t.TempDir()
	must(t, os.Chmod(tmp, 0o755))
	must(t, os.Chmod(filepath.Dir(tmp), 0o755))
	v := &Validator{Bin: bin, Sandbox: Sandbox{TempDir: tmp}}
	v.started = func(pid int) {
		status = procStatus(t, pid)
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
		cgroups = string(b)
		stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 4 {
			sid = f[3] // state ppid pgrp session
		}
		if sid != strconv.Itoa(pid) {
			t.Errorf("workerd's session is %s, want its own (%d)", sid, pid)
		}
		for _, line := range strings.Split(cgroups, "\n") {
			parts := strings.SplitN(line, ":", 3)
			if len(parts) == 3 && strings.Contains(parts[2], "/"+ValidateCgroup+"/") {
				c := strings.Split(parts[1], ",")[0]
				dirs = append(dirs, filepath.Join(defaultCgroupRoot, c, parts[2]))
			}
		}
		for _, d := range dirs {
			if strings.Contains(d, "/memory/") {
				b, _ := os.ReadFile(filepath.Join(d, "memory.limit_in_bytes"))
				if got := strings.TrimSpace(string(b)); got != strconv.Itoa(DefaultValidateMemory) {
					t.Errorf("memory.limit_in_bytes = %s", got)
				}
			}
			if strings.Contains(d, "/pids/") {
				b, _ := os.ReadFile(filepath.Join(d, "pids.max"))
				if got := strings.TrimSpace(string(b)); got != strconv.Itoa(DefaultValidatePids) {
					t.Errorf("pids.max = %s", got)
				}
			}
		}
	}
	w := esWorker(`export default { fetch() { return new Response("hi") } }`)
	if _, err := v.Validate(context.Background(), w, esFiles(w)); err != nil {
		t.Fatal(err)
	}
	t.Logf("status: Uid %q Gid %q Groups %q NoNewPrivs %q; cgroups:\n%s", status["Uid"], status["Gid"], status["Groups"], status["NoNewPrivs"], cgroups)
	if status["Uid"] != "65534 65534 65534 65534" || status["Gid"] != "65534 65534 65534 65534" {
		t.Errorf("workerd ran as uid %q gid %q, want nobody", status["Uid"], status["Gid"])
	}
	if status["Groups"] != "" {
		t.Errorf("workerd has supplementary groups %q", status["Groups"])
	}
	if status["NoNewPrivs"] != "1" {
		t.Errorf("NoNewPrivs = %q", status["NoNewPrivs"])
	}
	if len(dirs) != 3 {
		t.Fatalf("workerd is in %d octo-validate cgroups, want 3 (memory, cpu, pids):\n%s", len(dirs), cgroups)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s left behind: %v", d, err)
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("temporary directory left behind: %s", left[0].Name())
	}
}

// TestValidateMemoryLimit: a Worker touching 1 GiB at startup is killed at
// the memory limit and refused with a clear message.
func TestValidateMemoryLimit(t *testing.T) {
	bin := workerdBin(t)
	needSandbox(t)
	v := &Validator{Bin: bin}
	w := esWorker("const big = new Uint8Array(1 << 30).fill(1);\nexport default { fetch() { return new Response(String(big[0])) } };")
	start := time.Now()
	_, err := v.Validate(context.Background(), w, esFiles(w))
	var se *StartupError
	if !errors.As(err, &se) || !strings.Contains(se.Message, "exceeded the memory limit") || !strings.Contains(se.Message, "256 MiB") {
		t.Fatalf("Validate of a 1 GiB Worker: %v, want a StartupError about the memory limit", err)
	}
	t.Logf("%s (after %v)", se.Message, time.Since(start).Round(time.Millisecond))

	// Below the limit, memory is fine.
	w = esWorker("const a = new Uint8Array(64 << 20).fill(1);\nexport default { fetch() { return new Response(String(a[0])) } };")
	if _, err := v.Validate(context.Background(), w, esFiles(w)); err != nil {
		t.Fatalf("64 MiB at startup: %v", err)
	}
}

// TestValidateTimeout: a Worker looping at the top level is killed, with
// its process group, at the timeout.
func TestValidateTimeout(t *testing.T) {
	bin := workerdBin(t)
	v := testValidator(bin)
	v.Timeout = time.Second
	var pid int
	v.started = func(p int) { pid = p }
	w := esWorker("while (true) {}\nexport default {};")
	start := time.Now()
	_, err := v.Validate(context.Background(), w, esFiles(w))
	var se *StartupError
	if !errors.As(err, &se) || !strings.Contains(se.Message, "exceeded the time limit") {
		t.Fatalf("Validate of an endless loop: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Validate took %v", d)
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("workerd's process group %d still exists: %v", pid, err)
	}
}

// TestValidateWaitsForSlot: with Concurrency 2, a third validation waits
// until one of two running ends; a waiting call honours its context.
func TestValidateWaitsForSlot(t *testing.T) {
	bin := workerdBin(t)
	v := testValidator(bin)
	v.Concurrency = 2
	started := make(chan int, 3)
	release := make(chan struct{})
	v.started = func(pid int) {
		started <- pid
		<-release
	}
	w := esWorker(`export default { fetch() { return new Response("hi") } }`)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { _, errs[i] = v.Validate(context.Background(), w, esFiles(w)) })
	}
	for range 2 {
		select {
		case <-started:
		case <-time.After(20 * time.Second):
			t.Fatal("two validations did not start")
		}
	}
	select {
	case <-started:
		t.Fatal("a third validation ran beside two")
	case <-time.After(500 * time.Millisecond):
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := v.Validate(ctx, w, esFiles(w)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a waiting validation with a deadline: %v", err)
	}
	close(release)
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the third validation never started")
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("validation %d: %v", i, err)
		}
	}
}

// TestValidateFailsClosed: without a cgroup, nothing runs unless
// AllowNoCgroup says so.
func TestValidateFailsClosed(t *testing.T) {
	bin := workerdBin(t)
	ran := false
	v := &Validator{Bin: bin, Sandbox: Sandbox{CgroupRoot: t.TempDir()}, started: func(int) { ran = true }}
	w := esWorker(`export default { fetch() { return new Response("hi") } }`)
	_, err := v.Validate(context.Background(), w, esFiles(w))
	var se *StartupError
	if err == nil || errors.As(err, &se) || !strings.Contains(err.Error(), "cannot confine workerd in a cgroup") || ran {
		t.Fatalf("Validate without cgroups: %v (ran: %v), want a host error before workerd runs", err, ran)
	}
	t.Log(err)
	v = &Validator{Bin: bin, Sandbox: Sandbox{CgroupRoot: t.TempDir(), AllowNoCgroup: true}}
	if _, err := v.Validate(context.Background(), w, esFiles(w)); err != nil {
		t.Fatalf("Validate with AllowNoCgroup: %v", err)
	}
}

// TestValidateTempDirReachable: a temp dir the sandbox user cannot reach is
// reported before anything runs.
func TestValidateTempDirReachable(t *testing.T) {
	bin := workerdBin(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	private := filepath.Join(t.TempDir(), "private") // t.TempDir is 0700
	if err := os.Mkdir(private, 0o755); err != nil {
		t.Fatal(err)
	}
	v := &Validator{Bin: bin, Sandbox: Sandbox{TempDir: private, AllowNoCgroup: true}}
	w := esWorker(`export default {}`)
	if _, err := v.Validate(context.Background(), w, esFiles(w)); err == nil || !strings.Contains(err.Error(), "not searchable by uid 65534") {
		t.Fatalf("Validate in a private temp dir: %v", err)
	}
}

// TestCgroupV2Files checks what a v2 cgroup is given, on a fake hierarchy.
func TestCgroupV2Files(t *testing.T) {
	root := t.TempDir()
	must(t, os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpuset cpu io memory pids\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte("\n"), 0o644))
	s := Sandbox{CgroupRoot: root, Memory: 128 << 20, CPU: 0.5, Pids: 32}.withDefaults()
	cg, err := newCgroup(s, "x")
	if err != nil {
		t.Fatal(err)
	}
	defer cg.fd.Close()
	dir := filepath.Join(root, ValidateCgroup, "x")
	for file, want := range map[string]string{
		filepath.Join(root, "cgroup.subtree_control"):                 "+memory +cpu +pids",
		filepath.Join(root, ValidateCgroup, "cgroup.subtree_control"): "+memory +cpu +pids",
		filepath.Join(dir, "memory.max"):                              "134217728",
		filepath.Join(dir, "cpu.max"):                                 "50000 100000",
		filepath.Join(dir, "pids.max"):                                "32",
	} {
		if b, err := os.ReadFile(file); err != nil || string(b) != want {
			t.Errorf("%s = %q (%v), want %q", file, b, err, want)
		}
	}
	if !cg.v2 || cg.oomKilled() {
		t.Fatal("v2 cgroup reported an OOM kill before any")
	}
	must(t, os.WriteFile(filepath.Join(dir, "memory.events"), []byte("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n"), 0o644))
	if !cg.oomKilled() {
		t.Fatal("oom_kill 1 not seen")
	}

	// A missing controller is refused.
	root2 := t.TempDir()
	must(t, os.WriteFile(filepath.Join(root2, "cgroup.controllers"), []byte("cpu memory\n"), 0o644))
	if _, err := newCgroup(Sandbox{CgroupRoot: root2}.withDefaults(), "x"); err == nil || !strings.Contains(err.Error(), "lacks the pids controller") {
		t.Fatalf("v2 without pids: %v", err)
	}
}

// TestCgroupV1Files checks what v1 cgroups are given, on fake hierarchies.
func TestCgroupV1Files(t *testing.T) {
	root := t.TempDir()
	for _, c := range []string{"memory", "cpu", "pids"} {
		must(t, os.MkdirAll(filepath.Join(root, c), 0o755))
		must(t, os.WriteFile(filepath.Join(root, c, "cgroup.procs"), nil, 0o644))
	}
	cg, err := newCgroup(Sandbox{CgroupRoot: root}.withDefaults(), "x")
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"memory/octo-validate/x/memory.limit_in_bytes": "268435456",
		"memory/octo-validate/x/memory.swappiness":     "0",
		"cpu/octo-validate/x/cpu.cfs_period_us":        "100000",
		"cpu/octo-validate/x/cpu.cfs_quota_us":         "100000",
		"pids/octo-validate/x/pids.max":                "128",
	} {
		if b, err := os.ReadFile(filepath.Join(root, file)); err != nil || string(b) != want {
			t.Errorf("%s = %q (%v), want %q", file, b, err, want)
		}
	}
	must(t, os.WriteFile(filepath.Join(root, "memory/octo-validate/x/memory.oom_control"), []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"), 0o644))
	if cg.v2 || !cg.oomKilled() {
		t.Fatal("v1 oom_kill 2 not seen")
	}

	// An unmounted controller is refused.
	must(t, os.Remove(filepath.Join(root, "pids", "cgroup.procs")))
	if _, err := newCgroup(Sandbox{CgroupRoot: root}.withDefaults(), "y"); err == nil || !strings.Contains(err.Error(), "pids is not mounted") {
		t.Fatalf("v1 without pids: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestGroupWeightAndLeftovers: a Group of its own is weighted apart from
// the validations, and its cgroups that no process uses any more (on the
// fake hierarchies: empty directories) are removed, the others left.
func TestGroupWeightAndLeftovers(t *testing.T) {
	root := t.TempDir()
	for _, c := range []string{"memory", "cpu", "pids"} {
		must(t, os.MkdirAll(filepath.Join(root, c), 0o755))
		must(t, os.WriteFile(filepath.Join(root, c, "cgroup.procs"), nil, 0o644))
	}
	s := Sandbox{CgroupRoot: root, Group: "octo-warm"}
	must(t, s.RemoveGroupLeftovers()) // no group yet
	must(t, s.SetGroupWeight(16*DefaultCPUShares))
	if b, err := os.ReadFile(filepath.Join(root, "cpu/octo-warm/cpu.shares")); err != nil || string(b) != "16384" {
		t.Fatalf("cpu/octo-warm/cpu.shares = %q (%v), want 16384", b, err)
	}
	if _, err := os.Stat(filepath.Join(root, "cpu/octo-validate")); err == nil {
		t.Fatal("the validations' group was made or weighted")
	}
	if _, err := newCgroup(s.withDefaults(), "live"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"memory", "cpu", "pids"} {
		must(t, os.MkdirAll(filepath.Join(root, c, "octo-warm", "stale"), 0o755))
	}
	must(t, s.RemoveGroupLeftovers())
	for _, c := range []string{"memory", "cpu", "pids"} {
		if _, err := os.Stat(filepath.Join(root, c, "octo-warm", "stale")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s/octo-warm/stale: %v, want it removed", c, err)
		}
		if _, err := os.Stat(filepath.Join(root, c, "octo-warm", "live")); err != nil {
			t.Errorf("%s/octo-warm/live: %v, want it left", c, err)
		}
	}
}
