// Package childproc starts the daemon's long-lived child processes
// (containerd, the gateway) so that Pdeathsig means what it says.
//
// Linux sends a child its parent-death signal when the *thread* that forked
// it ends, not the process. The Go runtime ends a thread whenever a
// goroutine locked to it (runtime.LockOSThread) returns without unlocking,
// and any thread may have forked a child earlier: the workerd validator
// does exactly that, so a child started from an ordinary goroutine could be
// killed at any moment. Start forks from a thread of its own that lives, locked,
// until the child exits.
package childproc

import (
	"os/exec"
	"runtime"
)

// Start starts cmd from an OS thread reserved for it and returns a channel
// that receives cmd.Wait's result once (buffered). The thread ends only
// after the child has exited.
func Start(cmd *exec.Cmd) (<-chan error, error) {
	started := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread ends with this goroutine, after the
		// child, and no other goroutine ever runs on it.
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}
