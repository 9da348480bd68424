package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/spf13/cobra"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/daemon"
	"github.com/octohq/octo/web"
)

func newDashboardCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "dashboard",
		Short: "Print a one-time login link to the web dashboard",
		Long: fmt.Sprintf(`Print a link that logs a browser in to the web dashboard of the running octo.
The link works once, within %d minutes; the browser then keeps a session
until the daemon restarts or for %d hours. Making a link needs root, like
'octo env': the dashboard gives the same control as the API token.`,
			int(web.LoginTTL/time.Minute), int(web.SessionTTL/time.Hour)),
		Example: `  sudo octo dashboard
  xdg-open "$(sudo octo dashboard)"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			link, err := dashboardLoginURL(cfg, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintln(g.out, link)
			fmt.Fprintf(g.errOut, "Open this link within %d minutes; it works once.\n", int(web.LoginTTL/time.Minute))
			return nil
		},
	}
}

// dashboardLoginURL returns a one-time login link to the dashboard of the
// octo running with cfg, signed with the key the daemon keeps in the data
// dir (readable by root only).
func dashboardLoginURL(cfg config.Config, now time.Time) (string, error) {
	path := cfg.DashboardLoginKeyPath()
	key, err := web.ReadLoginKey(path)
	switch {
	case errors.Is(err, fs.ErrPermission):
		return "", exitf(ExitPrecondition, "cannot read %s: making a dashboard login link needs root: run 'sudo octo dashboard'", path)
	case errors.Is(err, fs.ErrNotExist):
		return "", exitf(ExitNotRunning, "no dashboard login key in %s: start octo with 'sudo octo up'", cfg.DataDir)
	case err != nil:
		return "", err
	}
	if _, alive := daemon.RunningPID(cfg); !alive {
		return "", exitf(ExitNotRunning, "octo is not running (data dir %s): start it with 'sudo octo up'", cfg.DataDir)
	}
	token, err := web.LoginToken(key, now)
	if err != nil {
		return "", fmt.Errorf("dashboard login link: %w", err)
	}
	return web.LoginURL(cfg.EdgePort, token), nil
}
