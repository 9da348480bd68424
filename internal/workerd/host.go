package workerd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/octohq/octo/internal/procstat"
)

// Host is a long-running workerd that Sandbox.Serve started: uploaded code
// running outside any pod, as the sandbox's user, in a cgroup of its own.
type Host struct {
	pid    int
	cg     *cgroup
	exited chan struct{}
	err    error
	done   chan struct{} // ends the forking thread (start)
}

// Serve runs `workerd serve <dir>/config.capnp --control-fd=3` with flags in
// the sandbox until Stop: dir (config and modules) is given to the sandbox's
// user, workerd runs from bin, and Serve returns once workerd reports that
// socket listens, or fails when it exits first or ctx ends. Its stderr goes
// to stderr (nil: discarded).
func (s Sandbox) Serve(ctx context.Context, bin, dir, socket string, stderr io.Writer, flags ...string) (*Host, error) {
	sb := s.withDefaults()
	cred := sb.credential()
	if err := chownTree(dir, cred); err != nil {
		return nil, fmt.Errorf("workerd host: %w", err)
	}
	if err := searchable(dir, cred); err != nil {
		return nil, fmt.Errorf("workerd host: %w", err)
	}
	binFile, err := os.Open(bin)
	if err != nil {
		return nil, fmt.Errorf("open workerd: %w", err)
	}
	defer binFile.Close()
	cg, err := newCgroup(sb, "host-"+cgroupName())
	if err != nil {
		if !sb.AllowNoCgroup {
			return nil, fmt.Errorf("cannot confine workerd in a cgroup, refusing to run uploaded code without memory and CPU limits: %w", err)
		}
		cg = nil
	}
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		_ = cg.remove()
		return nil, err
	}
	defer ctlR.Close()
	cmd := exec.Command(fmt.Sprintf("/proc/self/fd/%d", binFD), append([]string{"serve", filepath.Join(dir, "config.capnp"), "--control-fd=3"}, flags...)...)
	cmd.Args[0] = BinaryName
	cmd.Dir = dir
	cmd.Env = []string{}
	cmd.Stderr = stderr
	cmd.ExtraFiles = []*os.File{ctlW, binFile}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	if cg != nil && cg.v2 {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(cg.fd.Fd())
	}
	h := &Host{cg: cg, exited: make(chan struct{}), done: make(chan struct{})}
	if err := start(cmd, cg, h.done); err != nil {
		ctlW.Close()
		close(h.done)
		_ = cg.remove()
		return nil, fmt.Errorf("start workerd: %w", err)
	}
	ctlW.Close()
	h.pid = cmd.Process.Pid
	go func() {
		h.err = cmd.Wait()
		close(h.exited)
	}()
	listening := make(chan struct{})
	go func() {
		if awaitListen(ctlR, socket) {
			close(listening)
		}
	}()
	select {
	case <-listening:
		return h, nil
	case <-h.exited:
		h.Stop()
		return nil, fmt.Errorf("workerd host exited before listening on %s: %v", socket, h.err)
	case <-ctx.Done():
		h.Stop()
		return nil, fmt.Errorf("workerd host: %w", context.Cause(ctx))
	}
}

// awaitListen reads workerd's control fd until it reports that socket
// listens (true) or the fd closes (false).
func awaitListen(ctl io.Reader, socket string) bool {
	sc := bufio.NewScanner(ctl)
	for sc.Scan() {
		var ev struct {
			Event  string `json:"event"`
			Socket string `json:"socket"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event == "listen" && ev.Socket == socket {
			return true
		}
	}
	return false
}

// Exited is closed when the host's workerd has exited.
func (h *Host) Exited() <-chan struct{} { return h.exited }

// Stop kills the host's process group, waits for it and removes its cgroup.
func (h *Host) Stop() error {
	killGroup(h.pid)
	select {
	case <-h.exited:
	case <-time.After(10 * time.Second):
		return errors.New("workerd host did not exit after SIGKILL")
	}
	select {
	case <-h.done:
	default:
		close(h.done)
	}
	return h.cg.remove()
}

// CPUTime is the CPU time the host's workerd has used so far, user and
// system, all its threads.
func (h *Host) CPUTime() (time.Duration, error) {
	st, err := procstat.Read(h.pid)
	if err != nil {
		return 0, fmt.Errorf("workerd host: %w", err)
	}
	return st.CPU, nil
}

// OOMKilled reports whether the host's cgroup killed it for memory.
func (h *Host) OOMKilled() bool { return h.cg.oomKilled() }
