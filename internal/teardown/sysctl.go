package teardown

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/octohq/octo/internal/config"
)

// sysctlKeys are the sysctls octo's components change: the kubelet (it
// enforces its kernel defaults because protectKernelDefaults is off), the
// daemon (forwarding for pods) and kube-proxy (route_localnet), plus the
// bridge netfilter switch when br_netfilter is loaded.
func sysctlKeys() []string {
	return []string{
		"vm.overcommit_memory",
		"kernel.panic",
		"kernel.panic_on_oops",
		"net.ipv4.ip_forward",
		"net.ipv4.conf.all.route_localnet",
		"net.bridge.bridge-nf-call-iptables",
	}
}

// sysctlPath is the file of key under root (dots become slashes).
func sysctlPath(root, key string) string {
	return filepath.Join(root, filepath.FromSlash(strings.ReplaceAll(key, ".", "/")))
}

// normalizeSysctl makes values comparable: the kernel separates the fields
// of multi-value sysctls with tabs and ends them with a newline.
func normalizeSysctl(v string) string {
	return strings.Join(strings.Fields(v), " ")
}

// readSysctls returns the current value of every sysctl in sysctlKeys that
// exists under root.
func readSysctls(root string) (map[string]string, error) {
	values := map[string]string{}
	var errs []error
	for _, key := range sysctlKeys() {
		data, err := os.ReadFile(sysctlPath(root, key))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read sysctl %s: %w", key, err))
			continue
		}
		values[key] = normalizeSysctl(string(data))
	}
	return values, errors.Join(errs...)
}

// readBaseline reads the saved sysctl baseline; nil without error when none
// is saved.
func readBaseline(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	values := map[string]string{}
	if err := json.Unmarshal(data, &values); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return values, nil
}

// SaveSysctls records the real host's current values of the sysctls octo
// changes. See System.SaveSysctls.
func SaveSysctls(cfg config.Config) error {
	return System{}.SaveSysctls(cfg)
}

// SaveSysctls records the current values of the sysctls octo changes in
// cfg.Path(BaselineFile) (mode 0600), for teardown to restore. It does nothing
// when the file exists, so the baseline stays the host's state before octo
// first ran, however many times the daemon restarts. Call it before starting
// anything that changes a sysctl.
func (s System) SaveSysctls(cfg config.Config) error {
	s = s.withDefaults()
	path := cfg.Path(BaselineFile)
	if _, err := os.Lstat(path); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("check sysctl baseline: %w", err)
	}
	values, err := readSysctls(s.SysctlRoot)
	if err != nil {
		return fmt.Errorf("save sysctl baseline: %w", err)
	}
	data, err := json.MarshalIndent(values, "", "  ")
	if err != nil {
		return fmt.Errorf("encode sysctl baseline: %w", err)
	}
	if err := config.WriteFileAtomic(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save sysctl baseline: %w", err)
	}
	return nil
}

// changedSysctls compares current values with the baseline and describes
// every sysctl that differs.
func changedSysctls(baseline, current map[string]string) []string {
	var out []string
	for _, key := range slices.Sorted(maps.Keys(baseline)) {
		cur, ok := current[key]
		if !ok || !slices.Contains(sysctlKeys(), key) {
			continue
		}
		if want := normalizeSysctl(baseline[key]); cur != want {
			out = append(out, fmt.Sprintf("sysctl %s = %s (was %s before octo)", key, cur, want))
		}
	}
	return out
}

// restoreSysctls writes back every baseline value that differs from the
// current one, then removes the baseline file. Keys that are not among
// sysctlKeys are ignored; sysctls that no longer exist (module unloaded) are
// skipped. The file is kept when a value could not be restored, so that a
// later teardown retries.
func restoreSysctls(root, baselinePath string, log *slog.Logger) error {
	baseline, err := readBaseline(baselinePath)
	if err != nil {
		return fmt.Errorf("read sysctl baseline: %w", err)
	}
	if baseline == nil {
		return nil
	}
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(baseline)) {
		if !slices.Contains(sysctlKeys(), key) {
			log.Warn("ignoring unknown sysctl in baseline", "sysctl", key, "file", baselinePath)
			continue
		}
		path := sysctlPath(root, key)
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read sysctl %s: %w", key, err))
			continue
		}
		cur, want := normalizeSysctl(string(data)), normalizeSysctl(baseline[key])
		if cur == want {
			continue
		}
		if err := writeSysctl(path, want); err != nil {
			errs = append(errs, fmt.Errorf("restore sysctl %s to %s: %w", key, want, err))
			continue
		}
		log.Info("restored sysctl", "sysctl", key, "from", cur, "to", want)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.Remove(baselinePath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove sysctl baseline: %w", err)
	}
	return nil
}

// writeSysctl writes value to an existing sysctl file.
func writeSysctl(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(value + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
