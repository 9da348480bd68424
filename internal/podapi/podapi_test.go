package podapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/octohq/octo/internal/workerd"
)

func TestRoutesAndLifecycle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	kv := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "kv "+r.Method+" "+r.URL.Path+" "+r.Header.Get(workerd.KVHeader))
	})
	collector := func(w http.ResponseWriter, r *http.Request, account string) {
		b, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, "tail "+account+" "+r.URL.Path+" "+string(b))
	}
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Host: "127.0.0.1", Port: port, Key: key})
	s.kv, s.tail = kv, collector // stand-ins that echo what reaches them
	s.source = func(netip.Addr) bool { return true }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	if err := s.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Name() != "pod-api" || !strings.HasSuffix(s.Endpoint(), ":"+strconv.Itoa(port)) {
		t.Fatal(s.Name(), s.Endpoint())
	}

	do := func(method, path, body string, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, s.Endpoint()+path, strings.NewReader(body))
		req.Host = "fake-host"
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	kvHdr := map[string]string{workerd.KVHeader: "a/n", workerd.AuthHeader: key.Credential("a")}
	if code, body := do(http.MethodGet, "/k1?urlencoded=true", "", kvHdr); code != 200 || body != "kv GET /k1 a/n" {
		t.Fatalf("kv: %d %q", code, body)
	}
	// A KV key named like the collector path is still KV.
	if code, body := do(http.MethodPut, "/tail/x", "v", kvHdr); code != 200 || body != "kv PUT /tail/x a/n" {
		t.Fatalf("kv tail-like key: %d %q", code, body)
	}
	tailHdr := map[string]string{workerd.AccountHeader: "a", workerd.AuthHeader: key.Credential("a")}
	if code, body := do(http.MethodPost, "/tail/octo-hello-v1", "[]", tailHdr); code != 200 || body != "tail a /tail/octo-hello-v1 []" {
		t.Fatalf("tail: %d %q", code, body)
	}
	// Without the credential, neither reaches its handler.
	if code, body := do(http.MethodGet, "/k1?urlencoded=true", "", map[string]string{workerd.KVHeader: "a/n"}); code != http.StatusForbidden || strings.HasPrefix(body, "kv") {
		t.Fatalf("kv without credential: %d %q", code, body)
	}
	if code, body := do(http.MethodPost, "/tail/octo-hello-v1", "[]", map[string]string{workerd.AccountHeader: "a"}); code != http.StatusForbidden || strings.HasPrefix(body, "tail") {
		t.Fatalf("tail without credential: %d %q", code, body)
	}
	// With the default source check, a local user is refused even with
	// the credential.
	local := New(Options{Key: key})
	local.kv = kv
	hs := httptest.NewServer(local.Handler())
	defer hs.Close()
	req, _ := http.NewRequest(http.MethodGet, hs.URL+"/k1?urlencoded=true", nil)
	for k, v := range kvHdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("kv from loopback: %d", resp.StatusCode)
	}
	if code, _ := do(http.MethodGet, "/elsewhere", "", nil); code != http.StatusNotFound {
		t.Fatalf("unknown: %d", code)
	}
}
