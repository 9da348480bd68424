package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed/s3"
	"github.com/octohq/octo/internal/envvars"
	"github.com/octohq/octo/internal/store"
)

func newEnvCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "env",
		Short: "Print shell export lines for wrangler, kubectl, S3 clients and the registry",
		Long: `Print export lines that point wrangler (CLOUDFLARE_API_BASE_URL,
CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID), kubectl, AWS/S3 clients and image
tools at this octo. Use it with eval.`,
		Example: `  eval "$(octo env)"
  aws s3 ls --endpoint-url "$AWS_ENDPOINT_URL_S3"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			creds, err := s3.LoadCredentials(cfg)
			if err != nil {
				return exitf(ExitNotRunning, "no S3 credentials in %s yet: start octo once with 'sudo octo up'", cfg.DataDir)
			}
			id, err := store.LoadIdentity(cfg)
			if err != nil {
				return exitf(ExitNotRunning, "no API token in %s yet: start octo once with 'sudo octo up'", cfg.DataDir)
			}
			writeEnv(g.out, cfg, creds, id)
			return nil
		},
	}
}

// writeEnv prints the export lines.
func writeEnv(w io.Writer, cfg config.Config, creds s3.Credentials, id store.Identity) {
	for _, l := range envvars.Lines(cfg, creds, id) {
		fmt.Fprintln(w, l)
	}
}
