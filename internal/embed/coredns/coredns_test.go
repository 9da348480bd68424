package coredns

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"k8s.io/klog/v2"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed/embedtest"
)

// fakeAPIServer serves what the kubernetes plugin lists and watches: one
// Service (default/kubernetes), one namespace, no endpoints or pods.
func fakeAPIServer(t *testing.T) *httptest.Server {
	t.Helper()
	lists := map[string]string{
		"/api/v1/services": `{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[
			{"metadata":{"name":"kubernetes","namespace":"default","resourceVersion":"1"},
			 "spec":{"type":"ClusterIP","clusterIP":"10.43.0.1","clusterIPs":["10.43.0.1"],"ports":[{"name":"https","protocol":"TCP","port":443}]}}]}`,
		"/api/v1/namespaces":                       `{"kind":"NamespaceList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"default","resourceVersion":"1"}}]}`,
		"/apis/discovery.k8s.io/v1/endpointslices": `{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"1"},"items":[]}`,
		"/api/v1/pods":                             `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("watch") == "true" {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		if body, ok := lists[r.URL.Path]; ok {
			fmt.Fprint(w, body)
			return
		}
		if r.URL.Path == "/version" {
			fmt.Fprint(w, `{"major":"1","minor":"34","gitVersion":"v1.34.4"}`)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// fakeUpstream answers every A query with 192.0.2.7.
func fakeUpstream(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP("192.0.2.7")})
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

// lockedBuffer is a bytes.Buffer safe for klog's writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestResolves: cluster names come from the API server, other names from
// the upstream resolvers.
func TestResolves(t *testing.T) {
	api := fakeAPIServer(t)
	dir := t.TempDir()
	cfg := config.Config{DataDir: dir}
	kubeconfig := fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: %q}}]\n"+
		"users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n", api.URL)
	if err := os.WriteFile(cfg.KubeconfigPath(), []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	// As the daemon routes klog (routeKlog).
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	for name, value := range map[string]string{"logtostderr": "false", "alsologtostderr": "false", "one_output": "true"} {
		if err := fs.Set(name, value); err != nil {
			t.Fatal(err)
		}
	}
	klogOut := &lockedBuffer{}
	klog.SetOutput(klogOut)
	t.Cleanup(func() { klog.SetOutput(os.Stderr) })
	s := New(cfg, slog.New(slog.DiscardHandler))
	s.listen, s.port, s.upstream = "127.0.0.1", embedtest.FreePort(t), fakeUpstream(t)
	if got := s.Corefile(); !strings.Contains(got, "kubernetes cluster.local in-addr.arpa ip6.arpa") || !strings.Contains(got, filepath.Join(dir, "kubeconfig.yaml")) {
		t.Fatalf("Corefile:\n%s", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	if err := s.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	// klog writes to the daemon's output again, not to CoreDNS's logger.
	klog.Info("a line after coredns started")
	klog.Flush()
	if !strings.Contains(klogOut.String(), "a line after coredns started") {
		t.Errorf("klog no longer writes to its output: %q", klogOut.String())
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, strings.TrimPrefix(s.Endpoint(), "dns://"))
	}}
	lookup := func(name string) []string {
		for {
			addrs, err := r.LookupHost(ctx, name)
			if err == nil {
				slices.Sort(addrs)
				return addrs
			}
			if ctx.Err() != nil {
				t.Fatalf("lookup %s: %v", name, err)
			}
			time.Sleep(100 * time.Millisecond) // until the plugin has synced
		}
	}
	if got := lookup("kubernetes.default.svc.cluster.local"); !slices.Equal(got, []string{"10.43.0.1"}) {
		t.Errorf("kubernetes.default.svc.cluster.local = %v, want the Service's 10.43.0.1", got)
	}
	if got := lookup("example.org"); !slices.Equal(got, []string{"192.0.2.7"}) {
		t.Errorf("example.org = %v, want the upstream's 192.0.2.7", got)
	}
	if _, err := r.LookupHost(ctx, "missing.default.svc.cluster.local"); err == nil {
		t.Error("a Service that does not exist resolves")
	}
}
