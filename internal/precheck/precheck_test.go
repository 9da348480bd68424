package precheck

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/octohq/octo/internal/config"
)

// fakeListener is a listener that holds no port.
type fakeListener struct{ net.Listener }

func (fakeListener) Close() error { return nil }

// healthyHost returns a config and options under which every check passes
// without touching the real host: cgroup v1 hierarchies, all tools, free
// ports, a writable data dir and overlay.
func healthyHost(t *testing.T) (config.Config, Options) {
	t.Helper()
	dir := t.TempDir()
	cgroups := filepath.Join(dir, "sys/fs/cgroup")
	for _, c := range []string{"cpu,cpuacct", "memory", "pids"} {
		write(t, filepath.Join(cgroups, c, "cgroup.procs"), "", 0o644)
	}
	if err := os.Symlink("cpu,cpuacct", filepath.Join(cgroups, "cpu")); err != nil {
		t.Fatal(err)
	}
	cni := filepath.Join(dir, "usr/lib/cni")
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		write(t, filepath.Join(cni, p), "#!/bin/sh\n", 0o755)
	}
	proc := filepath.Join(dir, "proc")
	write(t, filepath.Join(proc, "filesystems"), "nodev\tsysfs\nnodev\tcgroup2\n\text4\nnodev\toverlay\n", 0o444)

	return config.Default(filepath.Join(dir, "var/lib/octo")), Options{
		IsRoot:     func() bool { return true },
		LookPath:   func(file string) (string, error) { return "/usr/sbin/" + file, nil },
		CNIDirs:    []string{filepath.Join(dir, "opt/cni/bin"), cni},
		CgroupRoot: cgroups,
		ProcRoot:   proc,
		Listen:     func(network, address string) (net.Listener, error) { return fakeListener{}, nil },
	}
}

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func messages(ps Problems) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Check+": "+p.Message)
	}
	return out
}

func TestRunAllGood(t *testing.T) {
	cfg, opts := healthyHost(t)
	if ps := Run(cfg, opts); len(ps) != 0 {
		t.Fatalf("problems on a healthy host:\n%s", strings.Join(messages(ps), "\n"))
	}
	if err := Run(cfg, opts).Err(); err != nil {
		t.Errorf("Err() = %v, want nil", err)
	}
	// The data dir was created and left empty.
	entries, err := os.ReadDir(cfg.DataDir)
	if err != nil || len(entries) != 0 {
		t.Errorf("data dir after check: %v, %v", entries, err)
	}
}

func TestRunReportsEachProblem(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, cfg *config.Config, o *Options)
		want  []string // Check: Message of every problem, in order
	}{
		{
			name:  "not root",
			setup: func(t *testing.T, cfg *config.Config, o *Options) { o.IsRoot = func() bool { return false } },
			want:  []string{"root: octo up needs root: run it with sudo"},
		},
		{
			name: "cgroup v1 controller missing",
			setup: func(t *testing.T, cfg *config.Config, o *Options) {
				if err := os.RemoveAll(filepath.Join(o.CgroupRoot, "pids")); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"cgroups: cgroup controller(s) pids not mounted under CG: mount each one " +
				"(e.g. `mkdir -p CG/pids && mount -t cgroup -o pids cgroup CG/pids`) or boot with cgroup v2"},
		},
		{
			name: "cgroup v2 with all controllers",
			setup: func(t *testing.T, cfg *config.Config, o *Options) {
				o.CgroupRoot = t.TempDir()
				write(t, filepath.Join(o.CgroupRoot, "cgroup.controllers"), "cpuset cpu io memory hugetlb pids rdma misc\n", 0o444)
			},
		},
		{
			name: "cgroup v2 without memory and pids",
			setup: func(t *testing.T, cfg *config.Config, o *Options) {
				o.CgroupRoot = filepath.Join(t.TempDir(), "cg2")
				write(t, filepath.Join(o.CgroupRoot, "cgroup.controllers"), "cpuset cpu io\n", 0o444)
			},
			want: []string{"cgroups: cgroup v2 at CG lacks the memory, pids controller(s): enable them in the kernel " +
				"(cgroup_enable=memory,pids on the kernel command line)"},
		},
		{
			name: "no cgroups at all",
			setup: func(t *testing.T, cfg *config.Config, o *Options) {
				o.CgroupRoot = filepath.Join(t.TempDir(), "none")
			},
			want: []string{"cgroups: no cgroups at CG: mount them (`mount -t cgroup2 none CG`)"},
		},
		{
			name: "commands and CNI plugins missing",
			setup: func(t *testing.T, cfg *config.Config, o *Options) {
				o.LookPath = func(file string) (string, error) {
					if file == "runc" || file == "iptables-restore" {
						return "", &exec.Error{Name: file, Err: exec.ErrNotFound}
					}
					return "/usr/sbin/" + file, nil
				}
				if err := os.Remove(filepath.Join(o.CNIDirs[1], "portmap")); err != nil {
					t.Fatal(err)
				}
				// A plugin that is not executable does not count.
				if err := os.Chmod(filepath.Join(o.CNIDirs[1], "bridge"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"tools: missing runc, iptables-restore, CNI plugin bridge (in CNI), CNI plugin portmap (in CNI): " +
				"install them with `apt-get install -y runc iptables containernetworking-plugins iproute2`"},
		},
		{
			name: "configurable port in use",
			setup: func(t *testing.T, cfg *config.Config, o *Options) {
				o.Listen = busy(9000)
			},
			want: []string{"ports: port 9000 (S3 store) is in use on 127.0.0.1: stop what uses it or pass --s3-port"},
		},
		{
			name: "fixed port in use",
			setup: func(t *testing.T, cfg *config.Config, o *Options) {
				o.Listen = busy(10257)
			},
			want: []string{"ports: port 10257 (kube-controller-manager) is in use on 127.0.0.1 and cannot be changed: " +
				"stop what uses it, usually another Kubernetes (k3s, kind, a kubelet) or an octo still running (`octo down`); " +
				"`ss -ltnp 'sport = :10257'` names it"},
		},
		{
			name: "port refused for another reason",
			setup: func(t *testing.T, cfg *config.Config, o *Options) {
				o.Listen = func(network, address string) (net.Listener, error) {
					if address == "127.0.0.1:8787" {
						return nil, &net.OpError{Op: "listen", Net: network, Err: &os.SyscallError{Syscall: "bind", Err: syscall.EACCES}}
					}
					return fakeListener{}, nil
				}
			},
			want: []string{"ports: cannot listen on 127.0.0.1:8787 for edge (API, dashboard, Workers) " +
				"(listen tcp: bind: permission denied): pass --edge-port to use another port"},
		},
		{
			name: "data dir not writable",
			setup: func(t *testing.T, cfg *config.Config, o *Options) {
				file := filepath.Join(t.TempDir(), "file")
				write(t, file, "", 0o644)
				cfg.DataDir = filepath.Join(file, "octo")
			},
			want: []string{"data-dir: data dir DATA is not writable (mkdir FILE: not a directory): " +
				"pass --data-dir (or set OCTO_HOME) to a writable directory"},
		},
		{
			name: "data dir not checked without root",
			setup: func(t *testing.T, cfg *config.Config, o *Options) {
				o.IsRoot = func() bool { return false }
				cfg.DataDir = "/proc/octo-precheck-test"
			},
			want: []string{"root: octo up needs root: run it with sudo"},
		},
		{
			name: "no overlay",
			setup: func(t *testing.T, cfg *config.Config, o *Options) {
				write(t, filepath.Join(o.ProcRoot, "filesystems"), "nodev\tsysfs\n\text4\nnodev\toverlayfs-not\n", 0o644)
			},
			want: []string{"overlay: the kernel has no overlay filesystem (containerd's overlayfs snapshotter needs it): " +
				"load it with `modprobe overlay`"},
		},
		{
			name: "no proc",
			setup: func(t *testing.T, cfg *config.Config, o *Options) {
				o.ProcRoot = filepath.Join(t.TempDir(), "noproc")
			},
			want: []string{"overlay: cannot read PROC/filesystems: mount proc at PROC"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, opts := healthyHost(t)
			tt.setup(t, &cfg, &opts)
			ps := Run(cfg, opts)
			got := messages(ps)
			for i := range got {
				got[i] = strings.ReplaceAll(got[i], opts.CgroupRoot, "CG")
				got[i] = strings.ReplaceAll(got[i], strings.Join(opts.CNIDirs, " or "), "CNI")
				got[i] = strings.ReplaceAll(got[i], cfg.DataDir, "DATA")
				got[i] = strings.ReplaceAll(got[i], filepath.Dir(cfg.DataDir), "FILE")
				got[i] = strings.ReplaceAll(got[i], opts.ProcRoot, "PROC")
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
			for _, p := range ps {
				if strings.Contains(p.Message, "\n") {
					t.Errorf("message spans lines: %q", p.Message)
				}
			}
			if len(tt.want) > 0 && ps.Err() == nil {
				t.Error("Err() = nil with problems")
			}
		})
	}
}

// busy fakes a listener failing with EADDRINUSE on port.
func busy(port int) func(network, address string) (net.Listener, error) {
	return func(network, address string) (net.Listener, error) {
		if address == config.Addr(port) {
			return nil, &net.OpError{Op: "listen", Net: network, Err: &os.SyscallError{Syscall: "bind", Err: syscall.EADDRINUSE}}
		}
		return fakeListener{}, nil
	}
}

// TestRealPortInUse holds a real loopback port and checks that the default
// listener sees it in use.
func TestRealPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback: %v", err)
	}
	defer l.Close()
	port, _ := strconv.Atoi(strings.TrimPrefix(l.Addr().String(), "127.0.0.1:"))
	msg := checkPort(net.Listen, config.Port{Name: "S3 store", Port: port, Flag: "--s3-port"})
	want := fmt.Sprintf("port %d (S3 store) is in use on 127.0.0.1: stop what uses it or pass --s3-port", port)
	if msg != want {
		t.Errorf("checkPort = %q, want %q", msg, want)
	}

	// After the check the port is free again.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port, _ = strconv.Atoi(strings.TrimPrefix(free.Addr().String(), "127.0.0.1:"))
	free.Close()
	if msg := checkPort(net.Listen, config.Port{Name: "x", Port: port}); msg != "" {
		t.Errorf("free port reported: %s", msg)
	}
	again, err := net.Listen("tcp", config.Addr(port))
	if err != nil {
		t.Errorf("port still held after the check: %v", err)
	} else {
		again.Close()
	}
}

func TestProblemsError(t *testing.T) {
	ps := Problems{{CheckRoot, "a"}, {CheckPorts, "b"}}
	if ps.Error() != "a\nb" {
		t.Errorf("Error() = %q", ps.Error())
	}
	var target Problems
	if !errors.As(ps.Err(), &target) || len(target) != 2 {
		t.Errorf("errors.As(Err()) = %v", target)
	}
	if (Problems{}).Err() != nil || Problems(nil).Err() != nil {
		t.Error("Err() of no problems is not nil")
	}
	if (Problem{CheckRoot, "x"}).Error() != "x" {
		t.Error("Problem.Error")
	}
}

func TestCheckOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	base := t.TempDir() // under /tmp: root-owned, sticky parent
	mk := func(t *testing.T, mode os.FileMode) string {
		t.Helper()
		d, err := os.MkdirTemp(base, "dd")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		return d
	}
	t.Run("root-owned-0700", func(t *testing.T) {
		if err := CheckOwnership(mk(t, 0o700), os.Lstat); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("world-writable", func(t *testing.T) {
		err := CheckOwnership(mk(t, 0o777), os.Lstat)
		if err == nil || !strings.Contains(err.Error(), "writable by group or others") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("owned-by-a-user", func(t *testing.T) {
		d := mk(t, 0o700)
		if err := os.Chown(d, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		err := CheckOwnership(d, os.Lstat)
		if err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("parent-writable-not-sticky", func(t *testing.T) {
		parent := mk(t, 0o757)
		d := filepath.Join(parent, "data")
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		err := CheckOwnership(d, os.Lstat)
		if err == nil || !strings.Contains(err.Error(), parent+" is writable") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("parent-sticky", func(t *testing.T) {
		parent := mk(t, os.ModeSticky|0o777)
		d := filepath.Join(parent, "data")
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := CheckOwnership(d, os.Lstat); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("runtime-writable", func(t *testing.T) {
		d := mk(t, 0o700)
		if err := os.MkdirAll(filepath.Join(d, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "bin", "workerd"), []byte("x"), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(d, "bin", "workerd"), 0o777); err != nil {
			t.Fatal(err)
		}
		err := CheckOwnership(d, os.Lstat)
		if err == nil || !strings.Contains(err.Error(), "bin/workerd is writable") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("symlink-to-user-dir", func(t *testing.T) {
		target := mk(t, 0o700)
		if err := os.Chown(target, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(mk(t, 0o700), "data")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if err := CheckOwnership(link, os.Lstat); err == nil {
			t.Fatal("a symlink to a user's directory was accepted")
		}
	})
}
