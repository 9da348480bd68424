package s3

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v3"
)

// TestConnDeadline: the middleware octo mounts in versitygw bounds a
// connection after its request: an idle keep-alive connection is closed once
// the deadline passes (versitygw sets no fasthttp timeouts of its own).
func TestConnDeadline(t *testing.T) {
	if requestTimeout < 10*time.Minute {
		t.Fatalf("requestTimeout %v would cut the registry's layer transfers", requestTimeout)
	}
	app := fiber.New()
	app.Use("/", connDeadline(300*time.Millisecond))
	app.Get("/", func(c fiber.Ctx) error { return c.SendString("ok") })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln, fiber.ListenConfig{DisableStartupMessage: true}) }()
	t.Cleanup(func() { _ = app.Shutdown() })

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: s3\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Fatalf("answer %d %q", resp.StatusCode, body)
	}
	// Idle now: the server must close the connection once the deadline passes.
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = br.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the idle connection was still open after %v", time.Since(start))
	}
	if err == nil {
		t.Fatal("unexpected data on the idle connection")
	}
}
