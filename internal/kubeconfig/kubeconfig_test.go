package kubeconfig

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func writeConfig(t *testing.T, path, name, server string) {
	t.Helper()
	c := clientcmdapi.NewConfig()
	c.Clusters[name] = &clientcmdapi.Cluster{Server: server}
	c.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: "t"}
	c.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	c.CurrentContext = name
	if err := clientcmd.WriteToFile(*c, path); err != nil {
		t.Fatal(err)
	}
}

func TestMergeKeepsOtherContextsAndRemoveUndoes(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "octo.yaml"), filepath.Join(dir, "kube", "config")
	writeConfig(t, src, Name, "https://127.0.0.1:6443")
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, dst, "kind-dev", "https://127.0.0.1:1234")

	if _, err := Merge(src, dst); err != nil {
		t.Fatal(err)
	}
	c, err := clientcmd.LoadFromFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if c.CurrentContext != Name || c.Clusters[Name].Server != "https://127.0.0.1:6443" || c.Contexts["kind-dev"] == nil {
		t.Fatalf("merged config wrong: current=%q clusters=%v", c.CurrentContext, c.Clusters)
	}
	if st, _ := os.Stat(dst); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}

	if err := Remove(dst); err != nil {
		t.Fatal(err)
	}
	c, _ = clientcmd.LoadFromFile(dst)
	if c.Contexts[Name] != nil || c.CurrentContext != "" || c.Contexts["kind-dev"] == nil {
		t.Fatalf("after Remove: current=%q contexts=%v", c.CurrentContext, c.Contexts)
	}
}

func TestMergeCreatesMissingFile(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "octo.yaml"), filepath.Join(dir, "new", "config")
	writeConfig(t, src, Name, "https://127.0.0.1:6443")
	if _, err := Merge(src, dst); err != nil {
		t.Fatal(err)
	}
	if _, err := clientcmd.LoadFromFile(dst); err != nil {
		t.Fatal(err)
	}
	if err := Remove(filepath.Join(dir, "absent")); err != nil {
		t.Fatalf("Remove of a missing file: %v", err)
	}
}
