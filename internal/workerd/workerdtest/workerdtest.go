// Package workerdtest runs a real workerd for tests: `workerd serve` on a
// config, until the test ends.
package workerdtest

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// ListenTimeout bounds how long Serve waits for workerd to listen.
const ListenTimeout = 20 * time.Second

// Serve runs `bin serve config --control-fd=3` with env (nil: none) until
// the test ends, waits until workerd listens on socket and returns that
// socket's port and a reader of workerd's stderr. It fails the test when
// workerd does not listen within ListenTimeout.
func Serve(tb testing.TB, bin, config, socket string, env []string) (int, func() string) {
	tb.Helper()
	return ServeFlags(tb, bin, config, socket, env)
}

// ServeFlags is Serve with more flags of `workerd serve`, e.g.
// --experimental.
func ServeFlags(tb testing.TB, bin, config, socket string, env []string, flags ...string) (int, func() string) {
	tb.Helper()
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ctlR.Close() })
	cmd := exec.Command(bin, append([]string{"serve", config, "--control-fd=3"}, flags...)...)
	cmd.Env = env
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	cmd.ExtraFiles = []*os.File{ctlW}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	ctlW.Close()
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	port := make(chan int, 1)
	go func() {
		defer close(port)
		sc := bufio.NewScanner(ctlR)
		for sc.Scan() {
			var ev struct {
				Event  string `json:"event"`
				Socket string `json:"socket"`
				Port   int    `json:"port"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event == "listen" && ev.Socket == socket {
				port <- ev.Port
				return
			}
		}
	}()
	select {
	case p, ok := <-port:
		if ok {
			return p, stderr.String
		}
	case <-time.After(ListenTimeout):
	}
	tb.Fatalf("workerd did not listen on %s; stderr:\n%s", socket, stderr.String())
	return 0, nil
}

// syncBuffer is a strings.Builder safe for a writer and readers at once.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
