//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/cfapi"
	"github.com/octohq/octo/internal/config"
)

// bootOcto starts a fresh octo the way TestLifecycle does: as root, on its
// own temporary data dir and the suite's non-default ports. The cleanup tails
// the component logs when the test failed, then runs `octo down --purge --yes`.
func bootOcto(t *testing.T, flags ...string) *env {
	t.Helper()
	return bootOctoBin(t, *octoBin, flags...)
}

// bootOctoBin is bootOcto with the octo binary at path (TestUpgrade boots an
// older release) and `octo up` flags beyond the suite's ports. The cleanup
// runs e.bin, so a test that swaps the binary stops the cluster with
// whichever one runs it.
func bootOctoBin(t *testing.T, path string, flags ...string) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the e2e test boots a real cluster and must run as root (make e2e under sudo)")
	}
	bin, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("octo binary: %v (run make build)", err)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	e := &env{t: t, bin: bin, cfg: config.Default(dataDir), baseSys: readSysctls(t)}
	t.Cleanup(func() {
		checkNoRoute(t, e.cfg.ComponentLogPath("octo"))
		if t.Failed() {
			for _, part := range []string{"octo", "kube-apiserver"} {
				if b, err := os.ReadFile(e.cfg.ComponentLogPath(part)); err == nil {
					t.Logf("---- tail of %s log ----\n%s", part, tail(string(b), 80))
				}
			}
			keepLogs(t, filepath.Dir(e.cfg.ComponentLogPath("octo")))
		}
		_, _ = e.octo("down", "--purge", "--yes")
	})
	e.mustOcto(append(append([]string{"up"}, ports...), flags...)...)
	cfg, err := config.Load(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	return e
}

// keepLogs copies the component logs of a failed test to
// $OCTO_E2E_LOGS/<test name>, when that variable is set, before the purge
// removes them.
func keepLogs(t *testing.T, dir string) {
	root := os.Getenv("OCTO_E2E_LOGS")
	if root == "" {
		return
	}
	dst := filepath.Join(root, strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
		t.Logf("keep logs: %v", err)
		return
	}
	t.Logf("component logs kept in %s", dst)
}

// with returns a copy of e that reports to t, for use inside subtests (a
// parent's t must not fail from a subtest).
func (e *env) with(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// parseEnv reads the `export NAME='value'` lines that `octo env` prints.
func parseEnv(t *testing.T, out string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "export ")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			t.Fatalf("octo env: bad line %q", line)
		}
		vars[k] = shellUnquote(v)
	}
	for _, k := range []string{"CLOUDFLARE_API_BASE_URL", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID",
		"KUBECONFIG", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL_S3"} {
		if vars[k] == "" {
			t.Fatalf("octo env lacks %s:\n%s", k, out)
		}
	}
	return vars
}

// shellUnquote undoes the POSIX single quoting of `octo env`, which writes a
// quote inside a value as quote, backslash, quote, quote.
func shellUnquote(s string) string {
	var b strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'':
			quoted = !quoted
		case c == '\\' && !quoted && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// newAccount creates a WorkerAccount with a new account ID and the workers
// subdomain sub, in a namespace of its own, waits until the API serves it,
// and returns vars for it (the same octo, CLOUDFLARE_ACCOUNT_ID changed).
func newAccount(t *testing.T, vars map[string]string, sub string) map[string]string {
	t.Helper()
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(raw)
	c := newCluster(t, vars)
	ctx := context.Background()
	ns := "e2e-" + sub
	if _, err := c.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	wa := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiv1.Group + "/" + apiv1.Version, "kind": "WorkerAccount",
		"metadata": map[string]any{"name": id, "namespace": ns},
		"spec":     map[string]any{"workerBundleName": "bundle", "displayName": sub, "subdomain": sub},
	}}
	res := schema.GroupVersionResource{Group: apiv1.Group, Version: apiv1.Version, Resource: "workeraccounts"}
	if _, err := c.dyn.Resource(res).Namespace(ns).Create(ctx, wa, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create WorkerAccount %s: %v", id, err)
	}
	out := maps.Clone(vars)
	out["CLOUDFLARE_ACCOUNT_ID"] = id
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, vars["CLOUDFLARE_API_BASE_URL"]+"/accounts/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+vars["CLOUDFLARE_API_TOKEN"])
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return out
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API does not serve the new account %s after 30 s (last: %v %v)", id, resp, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkNoRoute fails the test when the API logged a request it has no route
// for (answered 7003 or 405): a wrangler call octo does not implement.
func checkNoRoute(t *testing.T, log string) {
	b, err := os.ReadFile(log)
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, cfapi.NoRouteMessage) {
			t.Errorf("the API had no route for a request: %s", line)
		}
	}
}
