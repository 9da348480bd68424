// Package cli implements octo's command line: the cobra commands that start,
// inspect and stop the local platform.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/octohq/octo/internal/config"
)

// ExitError carries a process exit code with its message.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *ExitError) Unwrap() error { return e.Err }

// Exit codes octo uses.
const (
	ExitFailure      = 1 // something failed; the message says what
	ExitPrecondition = 2 // the host is not ready; the message says how to fix it
	ExitNotRunning   = 3 // the command needs a running octo
)

func exitf(code int, format string, args ...any) error {
	return &ExitError{Code: code, Err: fmt.Errorf(format, args...)}
}

// globals are the flags every command shares.
type globals struct {
	dataDir string
	out     io.Writer
	errOut  io.Writer
}

// config loads the saved configuration of the data dir (or its defaults).
func (g *globals) config() (config.Config, error) {
	dir, err := filepath.Abs(g.dataDir)
	if err != nil {
		return config.Config{}, fmt.Errorf("data dir: %w", err)
	}
	return config.LoadOrDefault(dir)
}

// NewRoot returns the `octo` command with every subcommand, writing to
// stdout and stderr.
func NewRoot() *cobra.Command { return newRoot(os.Stdout, os.Stderr) }

func newRoot(out, errOut io.Writer) *cobra.Command {
	g := &globals{out: out, errOut: errOut}
	root := &cobra.Command{
		Use:   "octo",
		Short: "A self-hosted Cloudflare Workers platform on your machine",
		Long: `octo runs, on 127.0.0.1 and in one process tree, a single-node Kubernetes
cluster (kube-apiserver, controller-manager, scheduler, kubelet, kube-proxy,
kine on SQLite, containerd), an S3 store and an OCI registry.

Start it with 'sudo octo up', look at it with 'octo status', stop it with
'octo down'. Everything octo keeps is in one data dir (--data-dir, $OCTO_HOME).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.dataDir, "data-dir", config.DataDirFromEnv(),
		"directory holding all of octo's state (env OCTO_HOME)")
	root.AddCommand(
		newUpCommand(g), newDaemonCommand(g), newDownCommand(g), newStatusCommand(g),
		newLogsCommand(g), newEnvCommand(g), newKubectlCommand(g), newVersionCommand(g),
		newAPICommand(g), newURLCommand(g),
	)
	return root
}

// Main runs the command line and returns the process exit code.
func Main(args []string) int {
	root := NewRoot()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "octo:", err)
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return ExitFailure
}
