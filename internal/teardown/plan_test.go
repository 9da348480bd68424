package teardown

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/octohq/octo/internal/config"
)

func TestNewPlanCleanHostIsEmpty(t *testing.T) {
	cfg := config.Default("/var/lib/octo")
	host := HostState{
		SelfPID: 700,
		Processes: []Process{
			{PID: 1, Argv0: "/sbin/init", Exe: "/usr/lib/systemd/systemd"},
			{PID: 700, PPID: 1, Argv0: "octo", Exe: "/usr/local/bin/octo"},
		},
		Mounts:    []Mount{{ID: 1, MountPoint: "/"}, {ID: 2, MountPoint: "/var/lib/octo"}},
		Links:     []Link{{Name: "lo"}, {Name: "eth0"}, {Name: "docker0", Bridge: true}, {Name: "veth1", Master: "docker0"}},
		IPv4Rules: "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n",
		NftTables: []NftTable{{"ip", "filter", false}, {"inet", "firewalld", true}},
		Sysctls:   map[string]string{"net.ipv4.ip_forward": "1"},
	}
	if p := NewPlan(cfg, host); !p.Empty() {
		t.Errorf("plan for a clean host has steps: %v", p.Steps)
	}
	if got := leftovers(cfg, host); len(got) != 0 {
		t.Errorf("leftovers on a clean host: %q", got)
	}
}

// dirtyHost is the state of a host after an octo daemon with the default
// data dir was killed while running one pod.
func dirtyHost(t *testing.T) (config.Config, HostState) {
	t.Helper()
	cfg := config.Default("/var/lib/octo")
	sys := System{
		ProcRoot: "/proc", SysctlRoot: "/proc/sys", CgroupRoot: "/sys/fs/cgroup",
		NetClassDir: "/sys/class/net", NetnsDir: "/run/netns", CNIDir: "/var/lib/cni",
		ContainerLogDir: "/var/log/containers", PodLogDir: "/var/log/pods", KubeletDir: "/var/lib/kubelet",
	}
	mounts, err := parseMountinfo(strings.NewReader(mountinfoFixture))
	if err != nil {
		t.Fatal(err)
	}
	save, err := os.ReadFile("testdata/iptables-save.txt")
	if err != nil {
		t.Fatal(err)
	}
	shim := cfg.BinDir() + "/containerd-shim-runc-v2"
	return cfg, HostState{
		System:  sys,
		SelfPID: 900,
		Processes: []Process{
			{PID: 1, Argv0: "/sbin/init"},
			{PID: 200, PPID: 1, StartTime: 1000, Argv0: shim, Exe: shim},
			{PID: 201, PPID: 200, StartTime: 1001, Argv0: "/pause", Exe: "/pause"},
			{PID: 900, PPID: 1, Argv0: "octo", Exe: "/usr/local/bin/octo"},
		},
		Mounts:    mounts,
		Netns:     []string{"/run/netns/cni-7a3c9e1d-0b2f-4c6e-9d8a-1f2e3d4c5b6a", "/run/netns/cni-00000000-dead"},
		Links:     []Link{{Name: "eth0"}, {Name: "cni0", Bridge: true}, {Name: "veth1a2b", Master: "cni0"}},
		IPv4Rules: string(save),
		IPv6Rules: "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\nCOMMIT\n",
		NftTables: []NftTable{
			{"ip", "mangle", false}, {"ip", "filter", false}, {"ip", "nat", false},
			{"ip6", "nat", false}, {"ip6", "mangle", true}, {"ip6", "filter", false}, {"inet", "mine", true},
		},
		Cgroups:  []string{"/sys/fs/cgroup/memory/kubepods", "/sys/fs/cgroup/memory/kubepods/besteffort", "/sys/fs/cgroup/memory/kubepods/besteffort/pod1"},
		CNIFiles: []string{"/var/lib/cni/networks/octo", "/var/lib/cni/results/octo-4b9e-eth0"},
		ContainerLogs: []LogLink{
			{Path: "/var/log/containers/web_default_nginx-1.log", Target: "/var/lib/octo/pod-logs/default_web_1/nginx/0.log"},
			{Path: "/var/log/containers/x.log", Target: "/srv/x.log"},
		},
		KubeletFiles:   []string{"/var/lib/kubelet/device-plugins/kubelet.sock"},
		Dirs:           []string{"/var/lib/cni/networks", "/var/lib/cni/results", "/var/lib/cni", "/var/log/containers", "/var/lib/kubelet/device-plugins", "/var/lib/kubelet", "/run/netns"},
		SysctlBaseline: map[string]string{"vm.overcommit_memory": "0", "net.ipv4.ip_forward": "0"},
		Sysctls:        map[string]string{"vm.overcommit_memory": "1", "net.ipv4.ip_forward": "0"},
	}
}

func TestNewPlan(t *testing.T) {
	cfg, host := dirtyHost(t)
	plan := NewPlan(cfg, host)
	var got []string
	for _, s := range plan.Steps {
		if s.Action == ActionKill {
			got = append(got, fmt.Sprintf("kill %d@%d", s.PID, s.StartTime))
			continue
		}
		got = append(got, string(s.Action)+" "+s.Target)
	}
	want := []string{
		"kill 200@1000",
		"kill 201@1001",
		"unmount /var/lib/octo/kubelet/pods/6f1c/volumes/kubernetes.io~projected/kube-api-access-x8v2q",
		"unmount /run/octo/containerd/io.containerd.runtime.v2.task/k8s.io/4b9e/rootfs",
		"unmount /run/octo/containerd/io.containerd.grpc.v1.cri/sandboxes/4b9e/shm",
		"unmount /var/lib/octo/with space/mnt",
		"unmount /var/lib/octo/kubelet",
		"unmount /var/lib/octo/kubelet",
		"unmount /run/octo",
		"remove-netns /run/netns/cni-00000000-dead",
		"remove-netns /run/netns/cni-7a3c9e1d-0b2f-4c6e-9d8a-1f2e3d4c5b6a",
		"delete-link veth1a2b",
		"delete-link cni0",
		"filter-iptables iptables",
		"filter-iptables ip6tables",
		"delete-nft-table ip mangle",
		"delete-nft-table ip filter",
		"delete-nft-table ip nat",
		"delete-nft-table ip6 nat",
		"delete-nft-table ip6 mangle",
		"remove-cgroup /sys/fs/cgroup/memory/kubepods/besteffort/pod1",
		"remove-cgroup /sys/fs/cgroup/memory/kubepods/besteffort",
		"remove-cgroup /sys/fs/cgroup/memory/kubepods",
		"remove /var/lib/cni/networks/octo",
		"remove /var/lib/cni/results/octo-4b9e-eth0",
		"remove /var/log/containers/web_default_nginx-1.log",
		"remove /var/lib/kubelet/device-plugins/kubelet.sock",
		"remove-empty-dir /var/lib/cni/networks",
		"remove-empty-dir /var/lib/cni/results",
		"remove-empty-dir /var/lib/cni",
		"remove-empty-dir /var/log/containers",
		"remove-empty-dir /var/lib/kubelet/device-plugins",
		"remove-empty-dir /var/lib/kubelet",
		"remove-empty-dir /run/netns",
		"restore-sysctls /var/lib/octo/sysctl-baseline.json",
	}
	if !slices.Equal(got, want) {
		t.Errorf("plan:\n got %q\nwant %q", got, want)
	}

	// /run/netns bind-mounted onto itself (ip netns) is not ours to remove.
	host.Mounts = append(host.Mounts, Mount{ID: 999, MountPoint: "/run/netns"})
	for _, s := range NewPlan(cfg, host).Steps {
		if s.Action == ActionRemoveEmptyDir && s.Target == "/run/netns" {
			t.Error("plan removes a mounted /run/netns")
		}
	}
}

func TestLeftovers(t *testing.T) {
	cfg, host := dirtyHost(t)
	got := leftovers(cfg, host)
	for _, want := range []string{
		"process 200 /var/lib/octo/bin/containerd-shim-runc-v2 (argv[0] in /var/lib/octo/bin)",
		"process 201 /pause (descendant of 200)",
		"mount /run/octo/containerd/io.containerd.runtime.v2.task/k8s.io/4b9e/rootfs (overlay)",
		"network namespace /run/netns/cni-00000000-dead",
		"network interface cni0 (pod bridge)",
		"network interface veth1a2b (attached to cni0)",
		"ip6tables: chains nat/KUBE-SERVICES",
		"cgroup /sys/fs/cgroup/memory/kubepods",
		"/var/lib/cni/networks/octo (CNI state of network octo)",
		"/var/lib/kubelet/device-plugins/kubelet.sock (hard-coded kubelet path)",
		"sysctl vm.overcommit_memory = 1 (was 0 before octo)",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("leftovers miss %q", want)
		}
	}
	if i := slices.IndexFunc(got, func(s string) bool { return strings.HasPrefix(s, "iptables: chains ") }); i < 0 ||
		!strings.HasSuffix(got[i], "and 19 more") {
		t.Errorf("iptables leftover not summarized: %q", got)
	}
	for _, l := range got {
		if strings.Contains(l, "besteffort") || strings.Contains(l, "nft") || strings.Contains(l, "ip_forward") ||
			strings.Contains(l, "remove-empty-dir") {
			t.Errorf("unexpected leftover %q", l)
		}
	}
	if len(got) != 21 {
		t.Errorf("got %d leftovers, want 21:\n%s", len(got), strings.Join(got, "\n"))
	}
}
