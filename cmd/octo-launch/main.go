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
//
// With OCTO_OBJECTS_LOCK set (a pod that hosts Durable Objects), it first
// takes an exclusive lock on that file, waiting while another process holds
// it, and passes the locked descriptor on to <program>: a pod that replaces
// another never runs its objects while the previous workerd still does.
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
	if path := os.Getenv(ObjectsLockEnv); path != "" {
		if _, err := lock(path); err != nil {
			fmt.Fprintf(os.Stderr, "octo-launch: %v\n", err)
			os.Exit(1)
		}
	}
	err := syscall.Exec(os.Args[2], os.Args[2:], os.Environ())
	fmt.Fprintf(os.Stderr, "octo-launch: exec %s: %v\n", os.Args[2], err)
	os.Exit(1)
}

// ObjectsLockEnv names the lock file of a pod that hosts Durable Objects
// (controller.ObjectsLockEnv sets it).
const ObjectsLockEnv = "OCTO_OBJECTS_LOCK"

// lock takes an exclusive flock on path, waiting for its holder, on a
// descriptor that survives exec (returned): the lock lasts as long as the
// program.
func lock(path string) (int, error) {
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CREAT, 0o600) // no O_CLOEXEC
	if err != nil {
		return -1, fmt.Errorf("open the objects lock %s: %w", path, err)
	}
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		return fd, nil
	}
	fmt.Fprintf(os.Stderr, "octo-launch: waiting for the previous instance to release %s\n", path)
	if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("lock %s: %w", path, err)
	}
	return fd, nil
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
