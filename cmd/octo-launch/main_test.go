package main

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
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
