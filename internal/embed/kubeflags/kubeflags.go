// Package kubeflags parses command-line style arguments into the option structs
// of the upstream Kubernetes components, the way their cobra commands would,
// without running those commands (which would install signal handlers).
package kubeflags

import (
	"fmt"

	"github.com/spf13/pflag"
	cliflag "k8s.io/component-base/cli/flag"
)

// Parse parses args into the flag sets of a component named name.
func Parse(name string, sets cliflag.NamedFlagSets, args []string) (*pflag.FlagSet, error) {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetNormalizeFunc(cliflag.WordSepNormalizeFunc)
	for _, f := range sets.FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%s flags: %w", name, err)
	}
	return fs, nil
}
