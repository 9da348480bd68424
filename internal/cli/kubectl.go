package cli

import (
	"os"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
)

func newKubectlCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "kubectl [args...]",
		Short: "Run the embedded kubectl against octo's cluster",
		Long: `Run kubectl, built into octo, with octo's admin kubeconfig (unless
--kubeconfig or $KUBECONFIG says otherwise). Every kubectl argument works.`,
		Example: `  octo kubectl get nodes
  octo kubectl get pods -A -o wide`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			dataDir := g.dataDir
			args = stripDataDir(args, &dataDir)
			g.dataDir = dataDir
			cfg, err := g.config()
			if err != nil {
				return err
			}
			if os.Getenv("KUBECONFIG") == "" {
				os.Setenv("KUBECONFIG", cfg.KubeconfigPath())
			}
			streams := genericiooptions.IOStreams{In: os.Stdin, Out: g.out, ErrOut: g.errOut}
			k := kubectlcmd.NewKubectlCommand(kubectlcmd.KubectlOptions{
				Arguments: append([]string{"kubectl"}, args...),
				ConfigFlags: genericclioptions.NewConfigFlags(true).WithDeprecatedPasswordFlag().
					WithDiscoveryBurst(300).WithDiscoveryQPS(50.0).WithWarningPrinter(streams),
				IOStreams: streams,
			})
			k.SetArgs(args)
			if err := k.ExecuteContext(cmd.Context()); err != nil {
				return &ExitError{Code: ExitFailure, Err: err}
			}
			return nil
		},
	}
}

// stripDataDir removes octo's own --data-dir flag from kubectl's arguments
// (flag parsing is off for this command so that kubectl sees its flags).
func stripDataDir(args []string, dataDir *string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--data-dir" && i+1 < len(args):
			*dataDir = args[i+1]
			i++
		case len(a) > len("--data-dir=") && a[:len("--data-dir=")] == "--data-dir=":
			*dataDir = a[len("--data-dir="):]
		default:
			out = append(out, a)
		}
	}
	return out
}
