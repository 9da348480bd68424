// Package healthz waits for the health endpoint of an embedded component.
package healthz

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/pki"
)

// interval between two probes.
const interval = 50 * time.Millisecond

// Client returns an HTTP client for probes: short timeout, no pooled
// connections (a pooled one could outlive the server it was opened to).
func Client(tlsConfig *tls.Config) *http.Client {
	return &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DisableKeepAlives: true, TLSClientConfig: tlsConfig,
	}}
}

// Poll GETs url until it answers 200 or ctx is done. exited, when not nil,
// is checked before each probe and ends the wait with its error: it reports
// that the component stopped running.
func Poll(ctx context.Context, client *http.Client, url string, exited func() error) error {
	var last error
	for {
		if exited != nil {
			if err := exited(); err != nil {
				return err
			}
		}
		if last = get(ctx, client, url); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w (last answer: %v)", url, ctx.Err(), last)
		case <-time.After(interval):
		}
	}
}

func get(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

// Exited adapts the result channel of a component's run goroutine for Poll.
// The result is put back so that later readers see it too.
func Exited(done chan error) func() error {
	return func() error {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("exited before it was healthy: %v", err)
		default:
			return nil
		}
	}
}

// Wait polls https://127.0.0.1:port/healthz of a Kubernetes component with
// the admin client certificate (the components serve a self-signed one).
func Wait(ctx context.Context, port int, p *pki.PKI, done chan error) error {
	cert, err := tls.LoadX509KeyPair(p.Path("admin.crt"), p.Path("admin.key"))
	if err != nil {
		return fmt.Errorf("admin client certificate: %w", err)
	}
	client := Client(&tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}) //nolint:gosec // loopback, self-signed
	return Poll(ctx, client, "https://"+config.Addr(port)+"/healthz", Exited(done))
}
