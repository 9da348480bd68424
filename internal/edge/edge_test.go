package edge

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

func TestServerTimeoutsSet(t *testing.T) {
	srv := newHTTPServer(http.NotFoundHandler(), defaultTimeouts(), nil)
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Fatalf("timeouts: header %v, read %v, write %v, idle %v", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
	if d := defaultTimeouts(); d.Read < time.Minute || d.Write < time.Minute || d.BodyIdle <= 0 {
		t.Fatalf("default timeouts too short for uploads: %+v", d)
	}
}

// routes is a Registrar with a slow handler and an event stream.
type routes struct{ run time.Duration }

func (r routes) Register(e *echo.Echo) {
	e.GET("/slow", func(c echo.Context) error {
		time.Sleep(r.run)
		return c.String(http.StatusOK, "late")
	})
	e.GET("/events", func(c echo.Context) error {
		c.Response().Header().Set("Content-Type", "text/event-stream")
		c.Response().WriteHeader(http.StatusOK)
		return stream(c.Request().Context(), c.Response(), r.run)
	})
}

// workers is a HostHandler streaming its answer (and the request body).
type workers struct{ run time.Duration }

func (workers) Register(*echo.Echo) {}

func (workers) Handles(host string) bool { return strings.Contains(host, ".workers.localhost") }

func (w workers) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	rw.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprintf(rw, "got %d bytes\n", len(body))
	_ = stream(r.Context(), rw, w.run)
}

// stream writes a line every 50 ms for d.
func stream(ctx context.Context, w http.ResponseWriter, d time.Duration) error {
	rc := http.NewResponseController(w)
	for end := time.Now().Add(d); time.Now().Before(end); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := io.WriteString(w, "data: tick\n\n"); err != nil {
			return err
		}
		_ = rc.Flush()
	}
	_, err := io.WriteString(w, "data: end\n\n")
	return err
}

// slowBody sends its chunks every gap.
type slowBody struct {
	chunks int
	gap    time.Duration
}

func (b *slowBody) Read(p []byte) (int, error) {
	if b.chunks == 0 {
		return 0, io.EOF
	}
	time.Sleep(b.gap)
	b.chunks--
	p[0] = 'x'
	return 1, nil
}

// TestDeadlines: an ordinary request is cut at the write timeout, while
// event streams and Workers' responses outlive the read and write timeouts,
// and a Worker's request body may take longer than the read timeout as
// long as it keeps coming.
func TestDeadlines(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	run := time.Second
	s := New(port, nil, routes{run: run}, workers{run: run})
	s.timeouts = timeouts{ReadHeader: time.Second, Read: 300 * time.Millisecond, Write: 300 * time.Millisecond, Idle: time.Second, BodyIdle: 300 * time.Millisecond}
	ctx := context.Background()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(ctx) })
	if err := s.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(host, path, accept string, body io.Reader) (string, error) {
		method := http.MethodGet
		if body != nil {
			method = http.MethodPost
		}
		req, err := http.NewRequest(method, s.Endpoint()+path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	edgeHost := s.addr

	if body, err := get(edgeHost, "/slow", "", nil); err == nil {
		t.Errorf("a handler past the write timeout answered %q", body)
	}
	if body, err := get(edgeHost, "/events", "text/event-stream", nil); err != nil || !strings.HasSuffix(body, "data: end\n\n") {
		t.Errorf("event stream cut: %q, %v", body, err)
	}
	if body, err := get("hello.octo.workers.localhost", "/", "", nil); err != nil || !strings.HasSuffix(body, "data: end\n\n") {
		t.Errorf("worker stream cut: %q, %v", body, err)
	}
	// 8 bytes, one every 100 ms: longer than the read timeout, never idle.
	if body, err := get("hello.octo.workers.localhost", "/", "", &slowBody{chunks: 8, gap: 100 * time.Millisecond}); err != nil || !strings.HasPrefix(body, "got 8 bytes") || !strings.HasSuffix(body, "data: end\n\n") {
		t.Errorf("slow worker upload: %q, %v", body, err)
	}
	// A body that stalls longer than BodyIdle is cut.
	if body, err := get("hello.octo.workers.localhost", "/", "", &slowBody{chunks: 2, gap: time.Second}); err == nil && strings.HasPrefix(body, "got 2 bytes") {
		t.Errorf("a stalled worker upload went through: %q", body)
	}
}
