package logs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOwner(t *testing.T) {
	cases := map[string]string{
		"k8s.io/kubernetes/pkg/kubelet.(*Kubelet).syncLoop":                     "kubelet",
		"k8s.io/kubernetes/pkg/proxy/iptables.(*Proxier).syncProxyRules":        "kube-proxy",
		"k8s.io/kubernetes/pkg/scheduler.(*Scheduler).scheduleOne":              "kube-scheduler",
		"k8s.io/kubernetes/pkg/controller/deployment.(*DeploymentController).x": "kube-controller-manager",
		"k8s.io/apiserver/pkg/server.(*GenericAPIServer).Run":                   "kube-apiserver",
		"k8s.io/client-go/tools/cache.(*Reflector).ListAndWatch":                "",
	}
	for fn, want := range cases {
		if got := Owner(fn); got != want {
			t.Errorf("Owner(%q) = %q, want %q", fn, got, want)
		}
	}
}

func TestRouterWritesSharedFileForUnknownCallers(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRouter(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Write([]byte("I0101 hello\n")); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, Shared+".log"))
	if err != nil || !strings.Contains(string(b), "hello") {
		t.Fatalf("shared log = %q, %v", b, err)
	}
	st, _ := os.Stat(filepath.Join(dir, Shared+".log"))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("log mode %v, want 0600", st.Mode().Perm())
	}
}

func TestComponentsIncludesShared(t *testing.T) {
	c := Components()
	if c[len(c)-1] != Shared || len(c) < 6 {
		t.Fatalf("Components() = %v", c)
	}
}
