package edge

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// echoRoutes answers with what reached it: the Host, the path and query,
// the body, and whether X-Forwarded-For was added.
type echoRoutes struct{}

func (echoRoutes) Register(e *echo.Echo) {
	e.Any("/client/v4/*", func(c echo.Context) error {
		body, _ := io.ReadAll(c.Request().Body)
		r := c.Request()
		return c.String(http.StatusOK, r.Method+" "+r.Host+" "+r.URL.RequestURI()+" body="+string(body)+" xff="+r.Header.Get("X-Forwarded-For"))
	})
}

// TestUpstreamPassesOtherHostsThrough: the gateway process's edge sends the
// Workers to its host handler and everything else, unchanged and streamed,
// to the daemon's edge on a unix socket.
func TestUpstreamPassesOtherHostsThrough(t *testing.T) {
	dir, err := os.MkdirTemp("", "edge") // short: a socket path has at most 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "edge.sock")
	ctx := context.Background()
	daemon := NewUnix("edge", sock, nil, echoRoutes{}, routes{run: 300 * time.Millisecond})
	if err := daemon.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = daemon.Stop(ctx) })
	if err := daemon.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v, %v; want 0600", fi.Mode(), err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	front := NewTCP("gateway", addr, nil, workers{}, NewUpstream(sock, nil))
	if err := front.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = front.Stop(ctx) })
	if err := front.Ready(ctx); err != nil {
		t.Fatal(err)
	}

	do := func(method, host, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do(http.MethodPut, addr, "/client/v4/accounts/x?a=1", "code"); code != 200 || body != "PUT "+addr+" /client/v4/accounts/x?a=1 body=code xff=" {
		t.Errorf("API through the upstream: %d %q", code, body)
	}
	if code, body := do(http.MethodGet, addr, "/events", ""); code != 200 || !strings.HasSuffix(body, "data: end\n\n") {
		t.Errorf("event stream through the upstream: %d %q", code, body)
	}
	if code, body := do(http.MethodPost, "hi.octo.workers.localhost", "/", "abc"); code != 200 || !strings.HasPrefix(body, "got 3 bytes") {
		t.Errorf("worker host: %d %q", code, body)
	}
	// The daemon gone: a clear 502, not a hang.
	_ = daemon.Stop(ctx)
	if code, body := do(http.MethodGet, addr, "/client/v4/user", ""); code != http.StatusBadGateway || !strings.Contains(body, "octo status") {
		t.Errorf("daemon down: %d %q", code, body)
	}
}
