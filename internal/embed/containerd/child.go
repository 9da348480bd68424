package containerd

import (
	"fmt"

	"github.com/containerd/containerd/v2/cmd/containerd/command"
	// Registers containerd's built-in plugins (CRI, snapshotters, runtimes).
	_ "github.com/containerd/containerd/v2/cmd/containerd/builtins"
	"github.com/prometheus/client_golang/prometheus"
)

// ChildCommand is the hidden argv[1] that makes octo run as containerd.
const ChildCommand = "__containerd"

// RunChild runs containerd in this process; octo's main calls it when started
// as ChildCommand. args are containerd's own arguments.
func RunChild(args []string) error {
	// gRPC server metrics are registered in the default registry at init by a
	// library octo links for kine; containerd registers them again and panics.
	reg := prometheus.NewRegistry()
	prometheus.DefaultRegisterer = reg
	prometheus.DefaultGatherer = reg
	if err := command.App().Run(append([]string{"containerd"}, args...)); err != nil {
		return fmt.Errorf("containerd: %w", err)
	}
	return nil
}
