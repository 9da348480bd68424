//go:build e2e

package e2e

// TestSecurity runs the attacks of the security model (README, "Security
// model") against a real octo and checks that each is refused with nothing
// changed: from another host on the network (a network namespace wired to
// the host like a LAN peer), and against the data dir.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/octohq/octo/internal/config"
)

func TestSecurity(t *testing.T) {
	// Before any octo runs: root executes programs from the data dir, so a
	// data dir others can write is refused and nothing starts.
	t.Run("data-dir-writable-by-others-is-refused", func(t *testing.T) {
		parent := t.TempDir()
		if err := os.Chmod(parent, 0o777); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(parent, "data")
		e := &env{t: t, bin: *octoBin, cfg: config.Default(dir)}
		out, err := e.octo(append([]string{"up", "--no-kubeconfig-merge"}, ports...)...)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out, "writable by group or others") {
			t.Fatalf("octo up on a data dir under a mode 0777 parent: %v, want exit 2 naming the problem:\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(dir, "octo.pid")); err == nil {
			t.Error("octo up wrote a pid file although it refused the data dir")
		}
	})

	e := bootOcto(t)
	vars := parseEnv(t, e.mustOcto("env"))
	edge := strings.TrimPrefix(vars["CLOUDFLARE_API_BASE_URL"], "http://")
	_, edgePort, _ := strings.Cut(strings.TrimSuffix(edge, "/client/v4"), ":")

	t.Run("other-hosts-cannot-reach-the-pod-network", func(t *testing.T) {
		peer := newPeerHost(t)
		// Control: the peer reaches the host over its link.
		ln, err := net.Listen("tcp", peerHostIP+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprint(w, "ok") }))
		}()
		if err := peer.get("http://" + ln.Addr().String() + "/"); err != nil {
			t.Fatalf("control: the peer cannot reach the host at all (%v): the test network is broken", err)
		}
		// The pod API listens on the bridge address; from the host it answers.
		bridge := "http://10.42.0.1:" + edgePort + "/"
		if _, err := http.Get(bridge); err != nil {
			t.Fatalf("control: the host cannot reach %s: %v", bridge, err)
		}
		if err := peer.get(bridge); err == nil {
			t.Errorf("another host reached the pod API at %s", bridge)
		}
		// A pod address, e.g. the API forwarder's pods or any running pod.
		pods, err := e.client().CoreV1().Pods(metav1.NamespaceAll).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || p.Spec.HostNetwork || len(p.Spec.Containers[0].Ports) == 0 {
				continue
			}
			addr := fmt.Sprintf("http://%s:%d/", p.Status.PodIP, p.Spec.Containers[0].Ports[0].ContainerPort)
			if err := peer.get(addr); err == nil {
				t.Errorf("another host reached pod %s/%s at %s", p.Namespace, p.Name, addr)
			}
		}
	})
}

// The link between the host and the peer: a /30 outside every range octo uses.
const (
	peerHostIP = "192.168.251.1"
	peerIP     = "192.168.251.2"
	peerNS     = "octo-e2e-peer"
)

// peerHost is a network namespace wired to the host by a veth pair, like
// another machine on the LAN that routes the pod network to this host.
type peerHost struct{ t *testing.T }

func newPeerHost(t *testing.T) *peerHost {
	t.Helper()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	_ = exec.Command("ip", "netns", "del", peerNS).Run()
	run("netns", "add", peerNS)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", peerNS).Run() }) // removes the veth pair too
	run("link", "add", "octo-e2e-h", "type", "veth", "peer", "name", "octo-e2e-p")
	run("link", "set", "octo-e2e-p", "netns", peerNS)
	run("addr", "add", peerHostIP+"/30", "dev", "octo-e2e-h")
	run("link", "set", "octo-e2e-h", "up")
	run("netns", "exec", peerNS, "ip", "addr", "add", peerIP+"/30", "dev", "octo-e2e-p")
	run("netns", "exec", peerNS, "ip", "link", "set", "octo-e2e-p", "up")
	run("netns", "exec", peerNS, "ip", "link", "set", "lo", "up")
	run("netns", "exec", peerNS, "ip", "route", "add", "10.42.0.0/16", "via", peerHostIP)
	run("netns", "exec", peerNS, "ip", "route", "add", "10.43.0.0/16", "via", peerHostIP)
	return &peerHost{t: t}
}

// get fetches url from the peer; nil means it connected and got an answer.
func (p *peerHost) get(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", peerNS, "curl", "-sS", "-m", "3", "-o", "/dev/null", url).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
