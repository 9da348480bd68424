package childproc

import (
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestChildOutlivesLockedThreadsEnding: a child started with Pdeathsig
// survives goroutines that lock a thread and end (the runtime ends their
// threads), and its exit is reported.
func TestChildOutlivesLockedThreadsEnding(t *testing.T) {
	cmd := exec.Command("sleep", "2")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	done, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	// End many locked threads, as the workerd validator does.
	for range 50 {
		ch := make(chan struct{})
		go func() { runtime.LockOSThread(); close(ch) }()
		<-ch
	}
	select {
	case err := <-done:
		t.Fatalf("child ended early: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	if err := syscall.Kill(cmd.Process.Pid, 0); err != nil {
		t.Fatalf("child gone: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("child exit: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("child exit not reported")
	}
}

func TestStartError(t *testing.T) {
	if _, err := Start(exec.Command("/nonexistent/binary")); err == nil {
		t.Fatal("want an error for a missing binary")
	}
}
