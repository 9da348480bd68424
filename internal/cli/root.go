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

	"github.com/octohq/octo/internal/cfapi"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/gateway"
	"github.com/octohq/octo/web"
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

// rootLong is the help of `octo`: the whole platform and how to start.
func rootLong() string {
	edge := "http://" + config.Addr(config.DefaultEdgePort)
	return fmt.Sprintf(`octo runs a self-hosted Cloudflare Workers platform on 127.0.0.1, in one
process tree. 'sudo octo up' starts:

  - an embedded single-node Kubernetes cluster (kine on SQLite, kube-apiserver,
    controller-manager, scheduler, kubelet, kube-proxy, CoreDNS, containerd,
    a local-path volume provisioner)
  - an S3 store and an OCI registry
  - the Cloudflare API that the real wrangler deploys to (%s%s)
  - operators that build each Worker version into a workerd image and pods
  - a gateway serving every Worker at %s
  - a web dashboard at %s ('sudo octo dashboard' logs you in)

Quick start:
  sudo octo up
  eval "$(sudo octo env)"     # points wrangler, kubectl and S3 clients at octo
  npx wrangler deploy         # then: curl "$(octo url <script>)"

'octo status' shows every part and its URLs; 'octo down' stops it all. Ports
above are the defaults. Everything octo keeps is in one data dir (--data-dir,
$OCTO_HOME).`, edge, cfapi.BasePath,
		gateway.URL(scriptPlaceholder, subdomainPlaceholder, config.DefaultEdgePort),
		web.URL(config.DefaultEdgePort))
}

// NewRoot returns the `octo` command with every subcommand, writing to
// stdout and stderr.
func NewRoot() *cobra.Command { return newRoot(os.Stdout, os.Stderr) }

func newRoot(out, errOut io.Writer) *cobra.Command {
	g := &globals{out: out, errOut: errOut}
	root := &cobra.Command{
		Use:           "octo",
		Short:         "A self-hosted Cloudflare Workers platform on your machine",
		Long:          rootLong(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.dataDir, "data-dir", config.DataDirFromEnv(),
		"directory holding all of octo's state (env OCTO_HOME)")
	root.AddCommand(
		newUpCommand(g), newDaemonCommand(g), newDownCommand(g), newStatusCommand(g),
		newLogsCommand(g), newEnvCommand(g), newKubectlCommand(g), newVersionCommand(g),
		newAPICommand(g), newGatewayCommand(g), newOperatorsCommand(g), newURLCommand(g), newDashboardCommand(g),
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
