package teardown

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Timing of the waits in Execute.
const (
	// killWait bounds the wait for killed processes to exit.
	killWait = 10 * time.Second
	// cgroupWait bounds the retries of removing a cgroup that still holds
	// exiting processes.
	cgroupWait = 2 * time.Second
	// pollInterval is the period of both waits.
	pollInterval = 50 * time.Millisecond
)

// sysOps are the privileged system calls teardown makes.
type sysOps interface {
	// kill sends SIGKILL to pid.
	kill(pid int) error
	// unmount lazily unmounts path.
	unmount(path string) error
	// deleteLink deletes the network interface name and reports whether it
	// existed; deleting one that does not exist succeeds.
	deleteLink(name string) (bool, error)
}

// realOps makes the system calls on the real host.
type realOps struct{}

// kill sends SIGKILL.
func (realOps) kill(pid int) error { return unix.Kill(pid, unix.SIGKILL) }

// unmount detaches the mount without following a final symlink.
func (realOps) unmount(path string) error {
	return unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
}

// deleteLink deletes the interface over netlink.
func (realOps) deleteLink(name string) (bool, error) {
	link, err := netlink.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) || errors.Is(err, unix.ENODEV) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("find link %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return false, nil // gone with its network namespace meanwhile
		}
		return false, fmt.Errorf("delete link %s: %w", name, err)
	}
	return true, nil
}

// Empty reports whether the plan has nothing to do.
func (p Plan) Empty() bool { return len(p.Steps) == 0 }

// Execute carries out the plan's steps in order. A failed step is logged and
// does not stop the ones after it; the failures are returned joined. Killed
// processes are waited for (up to 10 s) before the first step that is not a
// kill, so that their mounts, network namespaces and cgroups can go. Execute
// stops early only when ctx is done. A nil log discards messages.
func (p Plan) Execute(ctx context.Context, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &executor{sys: p.system.withDefaults(), own: p.own, log: log}
	var errs []error
	for _, st := range p.Steps {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("teardown interrupted: %w", err))
			break
		}
		if st.Action != ActionKill {
			if err := e.waitKilled(ctx); err != nil {
				e.survivors = true
				errs = append(errs, err)
			}
		}
		if err := e.run(ctx, st); err != nil {
			log.Warn("teardown step failed", "action", st.Action, "target", st.Target, "err", err)
			errs = append(errs, fmt.Errorf("%s %s: %w", st.Action, st.Target, err))
		}
	}
	if err := e.waitKilled(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// executor runs the steps of one Execute call.
type executor struct {
	sys System
	own []string // see Plan.own
	// survivors is set once a killed process outlived the wait for it.
	survivors bool
	log       *slog.Logger
	// killed are the kill steps whose process was signalled and not yet
	// seen exiting.
	killed []Step
}

// run carries out one step.
func (e *executor) run(ctx context.Context, st Step) error {
	switch st.Action {
	case ActionKill:
		return e.kill(st)
	case ActionUnmount:
		return e.unmount(st.Target)
	case ActionRemoveNetns:
		if err := e.unmount(st.Target); err != nil {
			return err
		}
		return e.remove(st.Target, false)
	case ActionDeleteLink:
		deleted, err := e.sys.ops.deleteLink(st.Target)
		if deleted {
			e.log.Info("deleted network interface", "name", st.Target)
		}
		return err
	case ActionFilterIptables:
		return e.filterIptables(ctx, st.Target)
	case ActionDeleteNftTable:
		return e.deleteNftTable(ctx, st.Target)
	case ActionRemoveCgroup:
		return e.removeCgroup(ctx, st.Target)
	case ActionRemove:
		return e.removeHostPath(st.Target)
	case ActionRemoveTask:
		if e.survivors {
			return errors.New("kept: a killed process is still alive")
		}
		return e.removeHostPath(st.Target)
	case ActionRemoveEmptyDir:
		return e.removeEmptyDir(st.Target)
	case ActionRestoreSysctls:
		return restoreSysctls(e.sys.SysctlRoot, st.Target, e.log)
	default:
		return fmt.Errorf("unknown teardown action %q", st.Action)
	}
}

// kill sends SIGKILL to the step's process if it is still the process that
// was planned: same PID and same start time, so a reused PID is left alone.
func (e *executor) kill(st Step) error {
	if st.PID <= 2 || st.PID == os.Getpid() {
		return fmt.Errorf("refusing to kill process %d", st.PID)
	}
	stat, err := readStat(e.sys.ProcRoot, st.PID)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // already gone
	}
	if err != nil {
		return fmt.Errorf("identify process %d: %w", st.PID, err)
	}
	if stat.start != st.StartTime || stat.dead() {
		e.log.Debug("process already gone", "pid", st.PID)
		return nil
	}
	if err := e.sys.ops.kill(st.PID); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return fmt.Errorf("kill process %d: %w", st.PID, err)
	}
	e.log.Info("killed process", "pid", st.PID, "command", st.Target)
	e.killed = append(e.killed, st)
	return nil
}

// waitKilled waits until every signalled process has exited.
func (e *executor) waitKilled(ctx context.Context) error {
	deadline := time.Now().Add(killWait)
	for len(e.killed) > 0 {
		alive := e.killed[:0]
		for _, st := range e.killed {
			stat, err := readStat(e.sys.ProcRoot, st.PID)
			if err == nil && stat.start == st.StartTime && !stat.dead() {
				alive = append(alive, st)
			}
		}
		e.killed = alive
		if len(alive) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			pids := make([]string, len(alive))
			for i, st := range alive {
				pids[i] = fmt.Sprint(st.PID)
			}
			e.killed = nil
			return fmt.Errorf("processes %s still running %s after SIGKILL", strings.Join(pids, ", "), killWait)
		}
		if err := sleep(ctx, pollInterval); err != nil {
			e.killed = nil
			return fmt.Errorf("wait for killed processes: %w", err)
		}
	}
	return nil
}

// unmount lazily unmounts path; a path that is not (or no longer) a mount
// point is fine.
func (e *executor) unmount(path string) error {
	err := e.sys.ops.unmount(path)
	switch {
	case err == nil:
		e.log.Info("unmounted", "path", path)
		return nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
		return nil
	default:
		return fmt.Errorf("unmount %s: %w", path, err)
	}
}

// remove removes one file or, with all, a directory tree; a missing path is
// fine.
func (e *executor) remove(path string, all bool) error {
	var err error
	if all {
		if _, err = os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		err = os.RemoveAll(path)
	} else {
		err = os.Remove(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	e.log.Info("removed", "path", path)
	return nil
}

// removeHostPath removes a file or tree teardown planned, refusing
// anything outside the directories octo's components write.
func (e *executor) removeHostPath(path string) error {
	s := e.sys
	dirs := append([]string{s.CNIDir, s.ContainerLogDir, s.KubeletDir, s.RuncRoot}, e.own...)
	if !filepath.IsAbs(path) || !slices.ContainsFunc(dirs, func(d string) bool { return d != "" && within(path, d, false) }) {
		return fmt.Errorf("refusing to remove %s: not in %s", path, strings.Join(dirs, ", "))
	}
	return e.remove(path, true)
}

// removeEmptyDir removes dir if it is an empty directory; a missing, non-empty
// or mounted directory is left as it is.
func (e *executor) removeEmptyDir(dir string) error {
	err := unix.Rmdir(dir)
	switch {
	case err == nil:
		e.log.Info("removed empty directory", "path", dir)
		return nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.EEXIST),
		errors.Is(err, unix.EBUSY), errors.Is(err, unix.ENOTDIR):
		e.log.Debug("directory kept", "path", dir, "reason", err)
		return nil
	default:
		return fmt.Errorf("remove directory %s: %w", dir, err)
	}
}

// removeCgroup removes a cgroup directory, retrying for a short while when
// processes killed a moment ago still leave it busy.
func (e *executor) removeCgroup(ctx context.Context, dir string) error {
	if !within(dir, e.sys.CgroupRoot, false) {
		return fmt.Errorf("refusing to remove %s: not under %s", dir, e.sys.CgroupRoot)
	}
	deadline := time.Now().Add(cgroupWait)
	for {
		err := unix.Rmdir(dir)
		switch {
		case err == nil:
			e.log.Info("removed cgroup", "path", dir)
			return nil
		case errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EBUSY) && time.Now().Before(deadline):
			// A runtime killed while it had the cgroup frozen (runc
			// freezes a container's cgroup to update it) leaves its
			// processes frozen, deaf to the SIGKILL sent them: thaw them.
			if fs := filepath.Join(dir, "freezer.state"); within(dir, filepath.Join(e.sys.CgroupRoot, "freezer"), false) {
				if b, err := os.ReadFile(fs); err == nil && strings.TrimSpace(string(b)) != "THAWED" {
					if err := os.WriteFile(fs, []byte("THAWED"), 0o644); err == nil {
						e.log.Info("thawed a frozen cgroup", "path", dir)
					}
				}
			}
			if err := sleep(ctx, pollInterval); err != nil {
				return fmt.Errorf("remove cgroup %s: %w", dir, err)
			}
		default:
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
	}
}

// filterIptables removes octo's chains with cmd-save, FilterRules and
// cmd-restore. It reads the rules again rather than using those seen when
// planning, so rules added since then by others survive.
func (e *executor) filterIptables(ctx context.Context, cmd string) error {
	if cmd != "iptables" && cmd != "ip6tables" {
		return fmt.Errorf("unknown iptables command %q", cmd)
	}
	save, err := saveIptables(ctx, e.sys.Run, cmd)
	if err != nil {
		return err
	}
	filtered, removed := FilterRules(save)
	if filtered == save {
		return nil
	}
	if _, err := e.sys.Run(ctx, []byte(filtered), cmd+"-restore"); err != nil {
		return fmt.Errorf("restore filtered rules: %w", err)
	}
	e.log.Info("removed iptables chains", "command", cmd, "chains", len(removed))
	return nil
}

// deleteNftTable deletes the table "<family> <name>" if it is empty now.
func (e *executor) deleteNftTable(ctx context.Context, id string) error {
	family, name, ok := strings.Cut(id, " ")
	if !ok || !isIptablesNftTable(NftTable{Family: family, Name: name}) {
		return fmt.Errorf("refusing to delete nftables table %q", id)
	}
	tables, err := readNftTables(ctx, e.sys.Run)
	if err != nil {
		return err
	}
	for _, t := range tables {
		if t.Family != family || t.Name != name {
			continue
		}
		if !t.Empty {
			e.log.Debug("nftables table kept: not empty", "table", id)
			return nil
		}
		if _, err := e.sys.Run(ctx, nil, "nft", "delete", "table", family, name); err != nil {
			if errors.Is(err, exec.ErrNotFound) {
				return nil
			}
			return fmt.Errorf("delete nftables table %s: %w", id, err)
		}
		e.log.Info("deleted empty nftables table", "table", id)
		return nil
	}
	return nil
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
