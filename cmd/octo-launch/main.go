// Command octo-launch starts workerd in a bundle's container:
//
//	octo-launch <socket dir> <program> [args...]
//
// It removes the unix sockets (*.sock) a previous run of the container left
// in <socket dir>, then executes <program> in its own place. The socket
// directory is a volume that outlives a container restart (a liveness kill
// restarts the container in the same pod), and workerd refuses to listen on
// a socket file that already exists. It is a static binary: the workerd
// image has no shell.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: octo-launch <socket dir> <program> [args...]")
		os.Exit(2)
	}
	if err := clearSockets(os.Args[1]); err != nil {
		fmt.Fprintf(os.Stderr, "octo-launch: %v\n", err)
		os.Exit(1)
	}
	err := syscall.Exec(os.Args[2], os.Args[2:], os.Environ())
	fmt.Fprintf(os.Stderr, "octo-launch: exec %s: %v\n", os.Args[2], err)
	os.Exit(1)
}

// clearSockets removes the *.sock files of dir, and nothing else.
func clearSockets(dir string) error {
	stale, err := filepath.Glob(filepath.Join(dir, "*.sock"))
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, s := range stale {
		if err := os.Remove(s); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove stale socket: %w", err)
		}
	}
	return nil
}
