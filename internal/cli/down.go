package cli

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/daemon"
	"github.com/octohq/octo/internal/kubeconfig"
	"github.com/octohq/octo/internal/procstat"
	"github.com/octohq/octo/internal/teardown"
)

// stopTimeout is how long `octo down` waits for a graceful stop before it
// kills the daemon.
const stopTimeout = 90 * time.Second

func newDownCommand(g *globals) *cobra.Command {
	var purge, yes bool
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop octo and leave the host clean (data is kept)",
		Long: `Stop the octo daemon gracefully, then remove everything the cluster left on
the host: container processes and shims, mounts, network namespaces, the cni0
bridge and its veths, KUBE-/CNI- iptables chains, kubepods cgroups, the host
paths the kubelet writes, and the sysctls octo changed are restored.

The data dir is kept, so 'octo up' brings everything back. With --purge the
data dir is removed too (asks first unless --yes).`,
		Example: `  sudo octo down
  sudo octo down --purge --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			if purge && !yes {
				ok, err := confirm(fmt.Sprintf("Remove %s and everything in it (cluster state, S3 objects, images)?", cfg.DataDir))
				if err != nil {
					return exitf(ExitFailure, "%v; pass --yes to purge without asking", err)
				}
				if !ok {
					return exitf(ExitFailure, "nothing removed")
				}
			}
			if err := stopDaemon(g, cfg); err != nil {
				return err
			}
			if err := teardown.Clean(cmd.Context(), cfg, quietLogger(g.errOut)); err != nil {
				fmt.Fprintf(g.errOut, "warning: %v\n", err)
			}
			left, err := teardown.Leftovers(cfg)
			if err != nil {
				fmt.Fprintf(g.errOut, "warning: could not check the host: %v\n", err)
			}
			for _, l := range left {
				fmt.Fprintf(g.errOut, "warning: still present: %s\n", l)
			}
			if purge {
				if err := os.RemoveAll(cfg.DataDir); err != nil {
					return fmt.Errorf("remove data dir: %w", err)
				}
				_ = os.RemoveAll(cfg.RunDir())
				if cfg.MergeKubeconfig {
					_ = kubeconfig.Remove(kubeconfig.DefaultPath())
				}
				fmt.Fprintf(g.errOut, "octo is down; %s removed.\n", cfg.DataDir)
				return nil
			}
			fmt.Fprintf(g.errOut, "octo is down; data kept in %s ('octo up' brings it back).\n", cfg.DataDir)
			return nil
		},
	}
	cmd.Flags().BoolVar(&purge, "purge", false, "also remove the data dir")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask before purging")
	return cmd
}

// stopDaemon sends SIGTERM and waits for the daemon to exit.
func stopDaemon(g *globals, cfg config.Config) error {
	pid, alive := daemon.RunningPID(cfg)
	if !alive {
		return nil
	}
	fmt.Fprintf(g.errOut, "Stopping octo (pid %d)\n", pid)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal daemon: %w", err)
	}
	// Wait for the process itself, not its pid file: the daemon removes the
	// file just before it exits, and its listeners close only at exit.
	deadline := time.Now().Add(stopTimeout)
	for time.Now().Before(deadline) {
		if !processAlive(pid) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintf(g.errOut, "warning: octo did not stop within %s; killing it\n", stopTimeout)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	time.Sleep(200 * time.Millisecond)
	return nil
}

// processAlive reports whether pid still runs. A zombie whose threads have
// all exited counts as gone (its parent may never reap it), but while any
// thread of it still runs, its files and sockets may still be open.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return errors.Is(err, syscall.EPERM)
	}
	st, err := procstat.Read(pid)
	if err != nil {
		return false
	}
	if st.State != 'Z' {
		return true
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return err == nil && len(tasks) > 1
}

// confirm asks a yes/no question on the terminal.
func confirm(question string) (bool, error) {
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return false, errors.New("cannot ask for confirmation: stdin is not a terminal")
	}
	fmt.Fprintf(os.Stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		return false, err
	}
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes", nil
}
