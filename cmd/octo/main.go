// Command octo puts a self-hosted Cloudflare Workers platform on one machine:
// an embedded Kubernetes cluster, an S3 store and an OCI registry, started by
// `octo up` and removed by `octo down`.
package main

import (
	"fmt"
	"os"

	logsapi "k8s.io/component-base/logs/api/v1"

	"github.com/octohq/octo/internal/cli"
	"github.com/octohq/octo/internal/embed/containerd"
)

func main() {
	// octo re-executes itself as containerd, a child of the daemon.
	if len(os.Args) > 1 && os.Args[1] == containerd.ChildCommand {
		if err := containerd.RunChild(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	// Several Kubernetes components apply their logging configuration in
	// this one process; identical re-application must not be an error.
	logsapi.ReapplyHandling = logsapi.ReapplyHandlingIgnoreUnchanged
	os.Exit(cli.Main(os.Args[1:]))
}
