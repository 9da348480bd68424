package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/octohq/octo/internal/cfapi"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/daemon"
	"github.com/octohq/octo/web"
)

func newStatusCommand(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every part of octo, its state and endpoint",
		Long: `Show whether octo runs and the state and endpoint of each part.
Exit code 0 when every part is ready, 3 when octo is not running, 1 otherwise.`,
		Example: `  octo status
  octo status -o json | jq '.components[] | select(.state != "ready")'`,
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
			switch output {
			case "json":
				enc := json.NewEncoder(g.out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(st); err != nil {
					return err
				}
			case "", "table":
				renderStatus(g.out, cfg, st)
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

// renderStatus prints the human-readable status table.
func renderStatus(w io.Writer, cfg config.Config, st daemon.Status) {
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
	if st.Error != "" {
		fmt.Fprintf(w, "\nerror: %s\n", st.Error)
	}
}

// renderEndpoints prints what a user connects to after `octo up`.
func renderEndpoints(w io.Writer, cfg config.Config, st daemon.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, name := range []string{"kube-apiserver", "s3", "registry"} {
		if c, ok := st.Component(name); ok {
			fmt.Fprintf(tw, "  %s\t%s\n", name, c.Endpoint)
		}
	}
	if c, ok := st.Component("edge"); ok {
		fmt.Fprintf(tw, "  cloudflare api\t%s%s\n", c.Endpoint, cfapi.BasePath)
		fmt.Fprintf(tw, "  dashboard\t%s\n", web.URL(cfg.EdgePort))
	}
	fmt.Fprintf(tw, "  kubeconfig\t%s\n", cfg.KubeconfigPath())
	fmt.Fprintf(tw, "  data dir\t%s\n", cfg.DataDir)
	tw.Flush()
}
