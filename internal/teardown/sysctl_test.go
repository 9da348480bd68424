package teardown

import (
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/octohq/octo/internal/config"
)

// fakeSysctls writes sysctl files under a temp "proc/sys" root.
func fakeSysctls(t *testing.T, values map[string]string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "proc", "sys")
	for key, v := range values {
		setSysctl(t, root, key, v)
	}
	return root
}

func setSysctl(t *testing.T, root, key, value string) {
	t.Helper()
	p := sysctlPath(root, key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(value+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func getSysctl(t *testing.T, root, key string) string {
	t.Helper()
	b, err := os.ReadFile(sysctlPath(root, key))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestSaveSysctls(t *testing.T) {
	root := fakeSysctls(t, map[string]string{
		"vm.overcommit_memory":               "0",
		"kernel.panic":                       "1",
		"kernel.panic_on_oops":               "0",
		"net.ipv4.ip_forward":                "0",
		"net.ipv4.conf.all.route_localnet":   "0",
		"net.bridge.bridge-nf-call-iptables": "1",
		"net.ipv4.ip_local_port_range":       "32768\t60999", // not ours
	})
	sys := System{SysctlRoot: root}
	cfg := config.Default(filepath.Join(t.TempDir(), "data"))
	if err := sys.SaveSysctls(cfg); err != nil {
		t.Fatal(err)
	}
	path := cfg.Path(BaselineFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("baseline mode %v, want 0600", fi.Mode().Perm())
	}
	var saved map[string]string
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &saved); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"vm.overcommit_memory": "0", "kernel.panic": "1", "kernel.panic_on_oops": "0", "net.ipv4.ip_forward": "0",
		"net.ipv4.conf.all.route_localnet": "0", "net.bridge.bridge-nf-call-iptables": "1",
	}
	if len(saved) != len(want) {
		t.Errorf("saved %v, want %v", saved, want)
	}
	for k, v := range want {
		if saved[k] != v {
			t.Errorf("saved %s = %q, want %q", k, saved[k], v)
		}
	}

	// Once saved, the baseline is never overwritten: it stays the pre-octo
	// state even after octo changed the values.
	setSysctl(t, root, "vm.overcommit_memory", "1")
	if err := sys.SaveSysctls(cfg); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(path)
	if string(again) != string(data) {
		t.Errorf("baseline rewritten:\n%s\nwas:\n%s", again, data)
	}
}

func TestSaveSysctlsWithoutBridgeNetfilter(t *testing.T) {
	root := fakeSysctls(t, map[string]string{"net.ipv4.ip_forward": "0", "kernel.panic": "0"})
	cfg := config.Default(filepath.Join(t.TempDir(), "data"))
	if err := (System{SysctlRoot: root}).SaveSysctls(cfg); err != nil {
		t.Fatal(err)
	}
	saved, err := readBaseline(cfg.Path(BaselineFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := saved["net.bridge.bridge-nf-call-iptables"]; ok || len(saved) != 2 {
		t.Errorf("saved %v, want only the two present sysctls", saved)
	}
}

func TestRestoreSysctls(t *testing.T) {
	root := fakeSysctls(t, map[string]string{
		"vm.overcommit_memory":             "0",
		"kernel.panic":                     "1",
		"kernel.panic_on_oops":             "0",
		"net.ipv4.ip_forward":              "0",
		"net.ipv4.conf.all.route_localnet": "0",
	})
	sys := System{SysctlRoot: root}
	cfg := config.Default(filepath.Join(t.TempDir(), "data"))
	if err := sys.SaveSysctls(cfg); err != nil {
		t.Fatal(err)
	}
	// octo runs: the kubelet, the daemon and kube-proxy change sysctls.
	changed := map[string]string{
		"vm.overcommit_memory": "1", "kernel.panic": "10", "kernel.panic_on_oops": "1",
		"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.route_localnet": "1",
	}
	for k, v := range changed {
		setSysctl(t, root, k, v)
	}
	baseline, _ := readBaseline(cfg.Path(BaselineFile))
	current, _ := readSysctls(root)
	diff := changedSysctls(baseline, current)
	if len(diff) != 5 || !slices.Contains(diff, "sysctl kernel.panic = 10 (was 1 before octo)") {
		t.Errorf("changed sysctls %q", diff)
	}

	if err := restoreSysctls(root, cfg.Path(BaselineFile), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"vm.overcommit_memory": "0", "kernel.panic": "1", "kernel.panic_on_oops": "0",
		"net.ipv4.ip_forward": "0", "net.ipv4.conf.all.route_localnet": "0",
	} {
		if got := getSysctl(t, root, k); got != v {
			t.Errorf("%s = %s after restore, want %s", k, got, v)
		}
	}
	if _, err := os.Stat(cfg.Path(BaselineFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("baseline not removed: %v", err)
	}
	// Restoring again, without a baseline, does nothing.
	if err := restoreSysctls(root, cfg.Path(BaselineFile), slog.New(slog.DiscardHandler)); err != nil {
		t.Error(err)
	}
}

func TestRestoreSysctlsSkipsUnknownAndMissing(t *testing.T) {
	root := fakeSysctls(t, map[string]string{"net.ipv4.ip_forward": "1", "kernel.hostname": "box"})
	dir := t.TempDir()
	path := filepath.Join(dir, BaselineFile)
	baseline := `{"net.ipv4.ip_forward": "0", "kernel.hostname": "evil", "net.bridge.bridge-nf-call-iptables": "0"}`
	if err := os.WriteFile(path, []byte(baseline), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := restoreSysctls(root, path, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if got := getSysctl(t, root, "net.ipv4.ip_forward"); got != "0" {
		t.Errorf("ip_forward = %s, want 0", got)
	}
	if got := getSysctl(t, root, "kernel.hostname"); got != "box" {
		t.Errorf("unknown sysctl written: %s", got)
	}
	if _, err := os.Stat(sysctlPath(root, "net.bridge.bridge-nf-call-iptables")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a missing sysctl was created")
	}
}

func TestRestoreSysctlsKeepsBaselineOnFailure(t *testing.T) {
	root := fakeSysctls(t, map[string]string{"net.ipv4.ip_forward": "1"})
	// A directory where the sysctl file should be makes the write fail.
	if err := os.MkdirAll(sysctlPath(root, "kernel.panic"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), BaselineFile)
	if err := os.WriteFile(path, []byte(`{"net.ipv4.ip_forward": "0", "kernel.panic": "0"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := restoreSysctls(root, path, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("restore succeeded with an unwritable sysctl")
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("baseline removed after a failed restore: %v", err)
	}
	if got := getSysctl(t, root, "net.ipv4.ip_forward"); got != "0" {
		t.Errorf("other sysctls not restored: ip_forward = %s", got)
	}
}

func TestNormalizeSysctl(t *testing.T) {
	if got := normalizeSysctl("32768\t60999\n"); got != "32768 60999" {
		t.Errorf("normalizeSysctl = %q", got)
	}
	if got := sysctlPath("/proc/sys", "net.bridge.bridge-nf-call-iptables"); got != "/proc/sys/net/bridge/bridge-nf-call-iptables" {
		t.Errorf("sysctlPath = %q", got)
	}
}
