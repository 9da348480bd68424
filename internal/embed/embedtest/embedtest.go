// Package embedtest holds what the tests of the embedded parts share.
package embedtest

import (
	"net"
	"testing"
)

// FreePort returns a loopback TCP port that was free a moment ago: a part
// under test listens on it (a race with other processes is possible, and
// accepted in tests).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
