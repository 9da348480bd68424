package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/octohq/octo/internal/gateway"
	"github.com/octohq/octo/internal/store"
)

func newURLCommand(g *globals) *cobra.Command {
	var subdomain string
	cmd := &cobra.Command{
		Use:   "url <script>",
		Short: "Print the local URL of a Worker",
		Long: `Print the URL at which the edge port serves a Worker script:
http://<script>.<subdomain>.workers.localhost:<edge port>/. The subdomain is the
default account's unless --account-subdomain names another account's.

*.localhost resolves to 127.0.0.1 in curl and browsers; other clients can
send the Host header themselves (curl --connect-to also works with
<script>.<subdomain>.workers.dev).`,
		Example: `  curl "$(octo url hello)"
  octo url api --account-subdomain team`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			script := args[0]
			if err := store.ValidScriptName(script); err != nil {
				return fmt.Errorf("%q is not a Worker script name: lowercase letters, digits, '-' and '_', at most 63", script)
			}
			cfg, err := g.config()
			if err != nil {
				return err
			}
			if subdomain == "" {
				id, err := store.LoadIdentity(cfg)
				if err != nil {
					return exitf(ExitNotRunning, "no account in %s yet: start octo once with 'sudo octo up', or pass --account-subdomain", cfg.DataDir)
				}
				subdomain = id.Subdomain
			}
			fmt.Fprintln(g.out, gateway.URL(script, subdomain, cfg.EdgePort))
			return nil
		},
	}
	cmd.Flags().StringVar(&subdomain, "account-subdomain", "", "workers subdomain of the account (default: the default account's)")
	return cmd
}
