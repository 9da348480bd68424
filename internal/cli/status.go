package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/daemon"
)

func newStatusCommand(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every part of octo, its state and endpoint",
		Long: `Show whether octo runs and the state and endpoint of each part.
The URLs to connect to (kube-apiserver, S3, registry, the Cloudflare API for
wrangler, dashboard, Workers) follow the table, and are under "urls" in JSON.
Exit code 0 when every part is ready, 3 when octo is not running, 1 otherwise.`,
		Example: `  octo status
  octo status -o json | jq '.components[] | select(.state != "ready")'
  octo status -o json | jq -r .urls.cloudflareApi`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			st, err := daemon.ReadStatus(cfg)
			if err != nil {
				return err
			}
			es := endpoints(cfg, defaultSubdomain(cfg))
			switch output {
			case "json":
				if err := writeStatusJSON(g.out, st, es); err != nil {
					return fmt.Errorf("write status: %w", err)
				}
			case "", "table":
				renderStatus(g.out, cfg, st, es)
			default:
				return exitf(ExitFailure, "unknown output format %q: use table or json", output)
			}
			switch st.State {
			case daemon.Ready:
				return nil
			case daemon.NotRunning:
				return &ExitError{Code: ExitNotRunning, Err: fmt.Errorf("octo is not running; start it with 'sudo octo up'")}
			default:
				return &ExitError{Code: ExitFailure, Err: fmt.Errorf("octo is %s", st.State)}
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

// statusJSON is `octo status -o json`: the daemon's status and the URLs.
type statusJSON struct {
	daemon.Status
	URLs Endpoints `json:"urls"`
}

// writeStatusJSON prints st and es as indented JSON.
func writeStatusJSON(w io.Writer, st daemon.Status, es Endpoints) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(statusJSON{Status: st, URLs: es})
}

// renderStatus prints the human-readable status table, then the endpoints.
func renderStatus(w io.Writer, cfg config.Config, st daemon.Status, es Endpoints) {
	if st.State == daemon.NotRunning {
		fmt.Fprintf(w, "octo is not running (data dir %s)\n", cfg.DataDir)
		return
	}
	fmt.Fprintf(w, "octo %s, pid %d, up %s, data dir %s\n\n", st.State, st.PID,
		time.Since(st.StartedAt).Round(time.Second), st.DataDir)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PART\tSTATE\tENDPOINT\tREADY AFTER")
	for _, c := range st.Components {
		after := "-"
		if c.ReadyAfter > 0 {
			after = time.Duration(c.ReadyAfter).Round(10 * time.Millisecond).String()
		}
		endpoint := c.Endpoint
		if endpoint == "" {
			endpoint = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.State, endpoint, after)
	}
	tw.Flush()
	fmt.Fprintln(w)
	renderEndpoints(w, es)
	if st.Error != "" {
		fmt.Fprintf(w, "\nerror: %s\n", st.Error)
	}
}
