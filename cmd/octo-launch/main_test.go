package main

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestClearSockets: the sockets a previous run left go, other files stay.
func TestClearSockets(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "8081.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // a dead process's socket file stays behind
	if err := os.WriteFile(filepath.Join(dir, "keep.txt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := clearSockets(dir); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"keep.txt"}) {
		t.Errorf("left %v, want only keep.txt", names)
	}
	// A workerd can listen there again.
	ln, err = net.Listen("unix", filepath.Join(dir, "8081.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := clearSockets(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("a missing directory: %v", err)
	}
}

// TestLock: the objects lock is exclusive, waited for, and held on a
// descriptor workerd inherits.
func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".lock-counter")
	fd, err := lock(path)
	if err != nil {
		t.Fatal(err)
	}
	if flags, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0); e != 0 || flags&syscall.FD_CLOEXEC != 0 {
		t.Errorf("the lock's descriptor closes on exec (flags %#x, %v)", flags, e)
	}
	got := make(chan int, 1)
	go func() {
		fd2, err := lock(path) // another instance: waits
		if err != nil {
			t.Error(err)
		}
		got <- fd2
	}()
	select {
	case <-got:
		t.Fatal("a second instance took the lock while the first held it")
	case <-time.After(200 * time.Millisecond):
	}
	syscall.Close(fd) // the first instance ends
	select {
	case fd2 := <-got:
		syscall.Close(fd2)
	case <-time.After(5 * time.Second):
		t.Fatal("the second instance did not get the lock once the first ended")
	}
}
