package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/octohq/octo/internal/config"
)

// State is where a component, or the whole daemon, is in its lifecycle.
type State string

// The states of a component or of the daemon.
const (
	Pending  State = "pending"
	Starting State = "starting"
	Ready    State = "ready"
	Failed   State = "failed"
	Stopping State = "stopping"
	Stopped  State = "stopped"
	// NotRunning is reported by readers when no daemon runs.
	NotRunning State = "not running"
)

// ComponentStatus is the published state of one component.
type ComponentStatus struct {
	Name     string `json:"name"`
	State    State  `json:"state"`
	Endpoint string `json:"endpoint,omitempty"`
	Error    string `json:"error,omitempty"`
	// ReadyAfter is how long the component took from its start to ready.
	ReadyAfter Duration `json:"readyAfter,omitempty"`
}

// Status is what the daemon publishes in the run dir for `octo up` and
// `octo status`.
type Status struct {
	PID        int               `json:"pid"`
	Version    string            `json:"version"`
	DataDir    string            `json:"dataDir"`
	StartedAt  time.Time         `json:"startedAt"`
	State      State             `json:"state"`
	Error      string            `json:"error,omitempty"`
	Components []ComponentStatus `json:"components"`
}

// Duration marshals as a string like "1.2s".
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).Round(time.Millisecond).String())
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// Component returns the status of the named component.
func (s *Status) Component(name string) (ComponentStatus, bool) {
	for _, c := range s.Components {
		if c.Name == name {
			return c, true
		}
	}
	return ComponentStatus{}, false
}

// ReadStatus returns the status published by the daemon of cfg. When no
// daemon process is alive it returns a status in state NotRunning.
func ReadStatus(cfg config.Config) (Status, error) {
	pid, alive := RunningPID(cfg)
	if !alive {
		return Status{State: NotRunning, DataDir: cfg.DataDir, PID: pid}, nil
	}
	b, err := os.ReadFile(cfg.StatusPath())
	if errors.Is(err, fs.ErrNotExist) {
		return Status{State: Starting, DataDir: cfg.DataDir, PID: pid}, nil
	}
	if err != nil {
		return Status{}, fmt.Errorf("read status: %w", err)
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return Status{}, fmt.Errorf("parse %s: %w", cfg.StatusPath(), err)
	}
	return s, nil
}

func writeStatus(cfg config.Config, s Status) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return config.WriteFileAtomic(cfg.StatusPath(), b, 0o644)
}

// RunningPID reads the daemon's pid file. alive is true only when that process
// exists and is an octo daemon (pids are reused after a crash or reboot).
func RunningPID(cfg config.Config) (pid int, alive bool) {
	b, err := os.ReadFile(cfg.PIDPath())
	if err != nil {
		return 0, false
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return pid, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return pid, false
	}
	args := strings.Split(string(cmdline), "\x00")
	return pid, len(args) > 1 && (args[1] == DaemonCommand || args[1] == "up")
}

// StalePIDFile reports whether a pid file exists whose daemon is gone: the
// daemon was killed or the machine rebooted without `octo down`.
func StalePIDFile(cfg config.Config) bool {
	if _, err := os.Stat(cfg.PIDPath()); err != nil {
		return false
	}
	_, alive := RunningPID(cfg)
	return !alive
}
