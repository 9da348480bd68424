package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/octohq/octo/internal/version"
)

func newVersionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the versions of octo and its embedded parts",
		Args:  cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintf(g.out, "octo %s\nkubernetes %s\ncontainerd %s\ngo %s %s/%s\n",
				version.Octo, version.Kubernetes, version.Containerd, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
