package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newLogsCommand(g *globals) *cobra.Command {
	var follow bool
	var tail int
	cmd := &cobra.Command{
		Use:   "logs [part]",
		Short: "Print the log of the daemon or of one part",
		Long: `Print the daemon's log, or the log of one part: kube-apiserver,
kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubernetes (lines
no single component claims), containerd, kine, ... Logs live in <data-dir>/logs.`,
		Example: `  octo logs
  octo logs -f kubelet
  octo logs --tail 50 containerd`,
		Args: cobra.MaximumNArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
			cfg, err := g.config()
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			parts, _ := logParts(cfg.Path("logs"))
			return parts, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			part := "octo"
			if len(args) == 1 {
				part = args[0]
			}
			path := filepath.Join(cfg.Path("logs"), part+".log")
			if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
				parts, _ := logParts(cfg.Path("logs"))
				if len(parts) == 0 {
					return exitf(ExitFailure, "no logs in %s yet: start octo with 'sudo octo up'", cfg.Path("logs"))
				}
				return exitf(ExitFailure, "no log for %q; parts with logs: %s", part, strings.Join(parts, ", "))
			}
			return printLog(cmd.Context(), g.out, path, tail, follow)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	cmd.Flags().IntVar(&tail, "tail", -1, "print only the last N lines (-1 = all)")
	return cmd
}

// logParts lists the parts that have a log file.
func logParts(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var parts []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".log"); ok && !e.IsDir() {
			parts = append(parts, name)
		}
	}
	sort.Strings(parts)
	return parts, nil
}

// printLog copies the file (or its last tail lines) to w, then follows it.
func printLog(ctx context.Context, w io.Writer, path string, tail int, follow bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer f.Close()
	if tail >= 0 {
		if err := seekTail(f, tail); err != nil {
			return err
		}
	}
	for {
		if _, err := io.Copy(w, f); err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// seekTail positions f at the start of its last n lines.
func seekTail(f *os.File, n int) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	lines := 0
	for off := size; off > 0; {
		step := int64(chunk)
		if off < step {
			step = off
		}
		off -= step
		if _, err := f.ReadAt(buf[:step], off); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		for i := step - 1; i >= 0; i-- {
			if buf[i] == '\n' && off+i != size-1 {
				lines++
				if lines == n {
					_, err := f.Seek(off+i+1, io.SeekStart)
					return err
				}
			}
		}
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}
