package teardown

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/octohq/octo/internal/config"
)

// mountinfoFixture is /proc/self/mountinfo of a host where an octo daemon
// with the default data dir ran pods, plus mounts that are not octo's.
const mountinfoFixture = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,size=401408k,mode=755
24 22 8:2 / /var/lib/octo rw,relatime shared:2 - ext4 /dev/sdb1 rw
100 24 8:2 /kubelet /var/lib/octo/kubelet rw,relatime shared:2 - ext4 /dev/sdb1 rw
101 100 8:2 /kubelet /var/lib/octo/kubelet rw,relatime shared:2 - ext4 /dev/sdb1 rw
102 101 0:50 / /var/lib/octo/kubelet/pods/6f1c/volumes/kubernetes.io~projected/kube-api-access-x8v2q rw,relatime shared:60 - tmpfs tmpfs rw,size=7972k
103 23 0:51 / /run/octo/containerd/io.containerd.grpc.v1.cri/sandboxes/4b9e/shm rw,nosuid,nodev,noexec,relatime shared:61 - tmpfs shm rw,size=65536k
104 23 0:52 / /run/octo/containerd/io.containerd.runtime.v2.task/k8s.io/4b9e/rootfs rw,relatime shared:62 - overlay overlay rw,lowerdir=/var/lib/octo/containerd/root/snapshots/1/fs,upperdir=/var/lib/octo/containerd/root/snapshots/2/fs
105 23 0:4 net:[4026532301] /run/netns/cni-7a3c9e1d-0b2f-4c6e-9d8a-1f2e3d4c5b6a rw shared:63 - nsfs nsfs rw
106 23 0:53 / /run/octo-1a2b3c4d/containerd/x/rootfs rw,relatime - overlay overlay rw
107 22 8:3 / /var/lib/octo-other/kubelet rw,relatime - ext4 /dev/sdc1 rw
108 24 0:54 / /var/lib/octo/with\040space/mnt rw,relatime - tmpfs tmp\040fs rw
109 23 0:55 / /run/octo rw,relatime - tmpfs tmpfs rw
`

func TestParseMountinfo(t *testing.T) {
	mounts, err := parseMountinfo(strings.NewReader(mountinfoFixture))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 13 {
		t.Fatalf("parsed %d mounts, want 13", len(mounts))
	}
	want := Mount{ID: 108, ParentID: 24, MountPoint: "/var/lib/octo/with space/mnt", FSType: "tmpfs", Source: "tmp fs"}
	if mounts[11] != want {
		t.Errorf("escaped entry = %+v, want %+v", mounts[11], want)
	}
	if m := mounts[8]; m.MountPoint != "/run/netns/cni-7a3c9e1d-0b2f-4c6e-9d8a-1f2e3d4c5b6a" || m.FSType != "nsfs" {
		t.Errorf("netns entry = %+v", m)
	}
	if m := mounts[0]; m.ID != 22 || m.ParentID != 1 || m.MountPoint != "/" || m.FSType != "ext4" || m.Source != "/dev/sda1" {
		t.Errorf("root entry = %+v", m)
	}

	for _, bad := range []string{"22 1 8:1 / / rw", "x 1 8:1 / / rw - ext4 /dev/sda1 rw", "22 1 8:1 / / rw shared:1 -"} {
		if _, err := parseMountinfo(strings.NewReader(bad)); err == nil {
			t.Errorf("parseMountinfo(%q) succeeded", bad)
		}
	}
}

func TestSelectMounts(t *testing.T) {
	mounts, err := parseMountinfo(strings.NewReader(mountinfoFixture))
	if err != nil {
		t.Fatal(err)
	}
	points := func(ms []Mount) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.MountPoint)
		}
		return out
	}

	got := points(selectMounts(config.Default("/var/lib/octo"), mounts))
	want := []string{
		"/var/lib/octo/kubelet/pods/6f1c/volumes/kubernetes.io~projected/kube-api-access-x8v2q",
		"/run/octo/containerd/io.containerd.runtime.v2.task/k8s.io/4b9e/rootfs",
		"/run/octo/containerd/io.containerd.grpc.v1.cri/sandboxes/4b9e/shm",
		"/var/lib/octo/with space/mnt",
		// The kubelet's self bind-mount is stacked: top first.
		"/var/lib/octo/kubelet",
		"/var/lib/octo/kubelet",
		"/run/octo",
	}
	if !slices.Equal(got, want) {
		t.Errorf("default data dir:\n got %q\nwant %q", got, want)
	}

	// Another data dir has its own run dir: /run/octo is not its own.
	other := config.Default("/var/lib/octo-other")
	got = points(selectMounts(other, mounts))
	want = []string{"/var/lib/octo-other/kubelet"}
	if other.RunDir() == "/run/octo-1a2b3c4d" {
		t.Fatal("fixture run dir collides with the test data dir")
	}
	if !slices.Equal(got, want) {
		t.Errorf("other data dir: got %q, want %q", got, want)
	}
}

func TestWithin(t *testing.T) {
	tests := []struct {
		path, dir string
		orSelf    bool
		want      bool
	}{
		{"/run/octo/x", "/run/octo", false, true},
		{"/run/octo", "/run/octo", false, false},
		{"/run/octo", "/run/octo/", true, true},
		{"/run/octo-1/x", "/run/octo", true, false},
		{"/run/octo/../etc", "/run/octo", true, false},
		{"", "/run/octo", true, false},
		{"/x", "/", false, true},
	}
	for _, tt := range tests {
		if got := within(tt.path, tt.dir, tt.orSelf); got != tt.want {
			t.Errorf("within(%q, %q, %v) = %v, want %v", tt.path, tt.dir, tt.orSelf, got, tt.want)
		}
	}
}

// fakeProc writes a process into a fake proc root.
func fakeProc(t *testing.T, root string, pid, ppid int, start uint64, comm string, argv []string, exe string) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stat := fmt.Sprintf("%d (%s) S %d %d %d 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 %d 1000 100 18446744073709551615\n",
		pid, comm, ppid, pid, pid, start)
	cmdline := ""
	if len(argv) > 0 {
		cmdline = strings.Join(argv, "\x00") + "\x00"
	}
	for name, content := range map[string]string{"stat": stat, "cmdline": cmdline} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if exe != "" {
		if err := os.Symlink(exe, filepath.Join(dir, "exe")); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeHostProcs builds a proc root with octo's shims and containers among
// unrelated processes.
func fakeHostProcs(t *testing.T) string {
	root := t.TempDir()
	shim := "/var/lib/octo/bin/containerd-shim-runc-v2"
	fakeProc(t, root, 1, 0, 1, "systemd", []string{"/sbin/init"}, "/usr/lib/systemd/systemd")
	fakeProc(t, root, 2, 0, 1, "kthreadd", nil, "")
	fakeProc(t, root, 50, 2, 5, "kworker/0:1", nil, "")
	fakeProc(t, root, 100, 1, 90, "sshd", []string{"/usr/sbin/sshd", "-D"}, "/usr/sbin/sshd")
	// A shim and its containers: pause and nginx with a worker.
	fakeProc(t, root, 200, 1, 1000, "containerd-shim", []string{shim, "-namespace", "k8s.io", "-id", "4b9e"}, shim)
	fakeProc(t, root, 201, 200, 1001, "pause", []string{"/pause"}, "/pause")
	fakeProc(t, root, 202, 200, 1002, "nginx", []string{"nginx: master process nginx"}, "/usr/sbin/nginx")
	fakeProc(t, root, 203, 202, 1003, "nginx", []string{"nginx: worker process"}, "/usr/sbin/nginx")
	// Processes whose command line mentions the shim are not shims.
	fakeProc(t, root, 300, 100, 2000, "grep", []string{"grep", shim}, "/usr/bin/grep")
	fakeProc(t, root, 301, 100, 2001, "awk", []string{"awk", "index($0, \"" + shim + "\")"}, "/usr/bin/mawk")
	// A relative argv[0] is not a path under the bin dir.
	fakeProc(t, root, 302, 100, 2002, "containerd-shim", []string{"bin/containerd-shim-runc-v2"}, "/usr/bin/containerd-shim-runc-v2")
	// A process whose binary in the data dir was replaced.
	fakeProc(t, root, 400, 1, 3000, "helper (old)", []string{"helper"}, "/var/lib/octo/tools/helper (deleted)")
	// The shim of another octo instance.
	fakeProc(t, root, 500, 1, 4000, "containerd-shim", []string{"/var/lib/octo-test/bin/containerd-shim-runc-v2"}, "/var/lib/octo-test/bin/containerd-shim-runc-v2")
	// The teardown itself, run from a binary in the data dir, and its child.
	fakeProc(t, root, 700, 100, 5000, "octo", []string{"/var/lib/octo/octo", "down"}, "/var/lib/octo/octo")
	fakeProc(t, root, 701, 700, 5001, "octo", []string{"/var/lib/octo/octo", "down"}, "/var/lib/octo/octo")
	// Noise: not a process directory.
	if err := os.MkdirAll(filepath.Join(root, "sys", "vm"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestReadProcesses(t *testing.T) {
	root := fakeHostProcs(t)
	procs, err := readProcesses(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) != 15 {
		t.Fatalf("read %d processes, want 15", len(procs))
	}
	i := slices.IndexFunc(procs, func(p Process) bool { return p.PID == 400 })
	want := Process{PID: 400, PPID: 1, StartTime: 3000, Argv0: "helper", Exe: "/var/lib/octo/tools/helper"}
	if i < 0 || procs[i] != want {
		t.Errorf("process 400 = %+v, want %+v", procs[i], want)
	}
	i = slices.IndexFunc(procs, func(p Process) bool { return p.PID == 2 })
	if i < 0 || procs[i].Exe != "" || procs[i].Argv0 != "" {
		t.Errorf("kernel thread = %+v", procs[i])
	}
}

func TestSelectProcesses(t *testing.T) {
	procs, err := readProcesses(fakeHostProcs(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, p := range selectProcesses(config.Default("/var/lib/octo"), procs, 701) {
		got = append(got, p.PID)
	}
	want := []int{200, 201, 202, 203, 400}
	if !slices.Equal(got, want) {
		t.Errorf("selected %v, want %v", got, want)
	}

	// Without a protected self, the data dir binaries are selected too.
	got = got[:0]
	for _, p := range selectProcesses(config.Default("/var/lib/octo"), procs, 0) {
		got = append(got, p.PID)
	}
	want = []int{200, 201, 202, 203, 400, 700, 701}
	if !slices.Equal(got, want) {
		t.Errorf("selected %v, want %v", got, want)
	}

	// Another instance only sees its own shim.
	got = got[:0]
	for _, p := range selectProcesses(config.Default("/var/lib/octo-test"), procs, 701) {
		got = append(got, p.PID)
	}
	if !slices.Equal(got, []int{500}) {
		t.Errorf("other instance selected %v, want [500]", got)
	}
}

func TestReadLinks(t *testing.T) {
	root := t.TempDir()
	mk := func(name, master string, bridge bool) {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if master != "" {
			if err := os.Symlink("../../devices/virtual/net/"+master, filepath.Join(dir, "master")); err != nil {
				t.Fatal(err)
			}
		}
		if bridge {
			if err := os.Mkdir(filepath.Join(dir, "bridge"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk("lo", "", false)
	mk("eth0", "", false)
	mk("cni0", "", true)
	mk("veth1a2b3c4d", "cni0", false)
	mk("veth5e6f7a8b", "cni0", false)
	mk("docker0", "", true)
	mk("vethdocker1", "docker0", false)
	mk("eth1", "cni0", false) // enslaved by hand: not a pod veth

	links, err := readLinks(root)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(links, func(l Link) bool { return l.Name == "veth1a2b3c4d" }); i < 0 || links[i].Master != "cni0" {
		t.Errorf("veth master not read: %+v", links)
	}
	var got []string
	for _, l := range selectLinks(links) {
		got = append(got, l.Name)
	}
	if want := []string{"veth1a2b3c4d", "veth5e6f7a8b", "cni0"}; !slices.Equal(got, want) {
		t.Errorf("selected links %v, want %v", got, want)
	}
}

func TestParseNftRuleset(t *testing.T) {
	data, err := os.ReadFile("testdata/nft-ruleset.json")
	if err != nil {
		t.Fatal(err)
	}
	tables, err := parseNftRuleset(data)
	if err != nil {
		t.Fatal(err)
	}
	want := []NftTable{
		{"ip", "mangle", true},   // base chains only
		{"ip", "nat", true},      // base chains only
		{"ip", "filter", false},  // a rule
		{"ip6", "filter", false}, // a drop policy
		{"ip6", "nat", false},    // a regular chain
		{"inet", "mine", false},  // a set
	}
	if !slices.Equal(tables, want) {
		t.Errorf("tables = %v, want %v", tables, want)
	}
	if _, err := parseNftRuleset([]byte("not json")); err == nil {
		t.Error("parsing garbage succeeded")
	}
}

func TestReadCgroups(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{
		"cpu,cpuacct/kubepods/burstable/pod1/c1",
		"cpu,cpuacct/kubepods/besteffort",
		"cpu,cpuacct/user.slice",
		"memory/kubepods/burstable/pod1",
		"pids",
		"kubepods.slice/kubepods-burstable.slice", // cgroup v2
	} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// cgroup v1 links cpu and cpuacct to the combined hierarchy.
	for _, l := range []string{"cpu", "cpuacct"} {
		if err := os.Symlink("cpu,cpuacct", filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "memory", "kubepods", "cgroup.procs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readCgroups(root)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i] = strings.TrimPrefix(got[i], root+"/")
	}
	want := []string{
		"cpu,cpuacct/kubepods",
		"cpu,cpuacct/kubepods/besteffort",
		"cpu,cpuacct/kubepods/burstable",
		"cpu,cpuacct/kubepods/burstable/pod1",
		"cpu,cpuacct/kubepods/burstable/pod1/c1",
		"kubepods.slice",
		"kubepods.slice/kubepods-burstable.slice",
		"memory/kubepods",
		"memory/kubepods/burstable",
		"memory/kubepods/burstable/pod1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("cgroups:\n got %q\nwant %q", got, want)
	}
	if got, err := readCgroups(filepath.Join(root, "missing")); err != nil || got != nil {
		t.Errorf("missing root: %v, %v", got, err)
	}
}

func TestReadHostFiles(t *testing.T) {
	cniDir, logDir := t.TempDir(), t.TempDir()
	for _, d := range []string{"networks/octo", "networks/other", "results"} {
		if err := os.MkdirAll(filepath.Join(cniDir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"results/octo-4b9e-eth0", "results/other-1-eth0", "networks/octo/10.42.0.2"} {
		if err := os.WriteFile(filepath.Join(cniDir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := readCNIFiles(cniDir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(cniDir, "networks/octo"), filepath.Join(cniDir, "results/octo-4b9e-eth0")}
	if !slices.Equal(files, want) {
		t.Errorf("CNI files %q, want %q", files, want)
	}

	cfg := config.Default("/var/lib/octo")
	links := map[string]string{
		"web_default_nginx-1.log": "/var/lib/octo/pod-logs/default_web_1/nginx/0.log",
		"sys_kube_x-2.log":        "/var/log/pods/kube_sys_2/x/0.log",
		"rel_default_y-3.log":     "../pods/default_rel_3/y/0.log",
		"other_ns_z-4.log":        "/srv/logs/z.log",
		"octo-like.txt":           "/var/lib/octo/pod-logs/a",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(logDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(logDir, "plain.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ll, err := readLogLinks(logDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ll) != 5 {
		t.Errorf("read %d links, want 5: %v", len(ll), ll)
	}
	// Relative targets resolve against the link's directory: logDir/../pods.
	podLogDir := filepath.Join(filepath.Dir(logDir), "pods")
	var got []string
	for _, l := range selectLogLinks(cfg, "/var/log/pods", ll) {
		got = append(got, filepath.Base(l.Path))
	}
	if want := []string{"sys_kube_x-2.log", "web_default_nginx-1.log"}; !slices.Equal(got, want) {
		t.Errorf("selected %q, want %q", got, want)
	}
	got = got[:0]
	for _, l := range selectLogLinks(cfg, podLogDir, ll) {
		got = append(got, filepath.Base(l.Path))
	}
	if want := []string{"rel_default_y-3.log", "web_default_nginx-1.log"}; !slices.Equal(got, want) {
		t.Errorf("selected %q, want %q", got, want)
	}
}
