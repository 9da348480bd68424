// Package healthz waits for the /healthz endpoint of an embedded Kubernetes
// component on a loopback port.
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

// Wait polls https://127.0.0.1:port/healthz with the admin client certificate
// until it answers 200, ctx ends, or done yields (the component exited).
func Wait(ctx context.Context, port int, p *pki.PKI, done chan error) error {
	cert, err := tls.LoadX509KeyPair(p.Path("admin.crt"), p.Path("admin.key"))
	if err != nil {
		return fmt.Errorf("admin client certificate: %w", err)
	}
	// The components serve a self-signed certificate on loopback.
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}, //nolint:gosec // loopback, self-signed
	}}
	defer client.CloseIdleConnections()
	url := "https://" + config.Addr(port) + "/healthz"
	var last error
	for {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("exited before healthy: %v", err)
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("not healthy: %w", last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
