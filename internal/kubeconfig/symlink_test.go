package kubeconfig

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

// TestSymlinkOutOfHomeRefused: octo may run as root; a kubeconfig that is a
// symlink (or lies below a symlinked directory) leading out of $HOME is
// neither written through nor read.
func TestSymlinkOutOfHomeRefused(t *testing.T) {
	home, outside := t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)
	src := filepath.Join(outside, "octo.yaml")
	writeConfig(t, src, Name, "https://127.0.0.1:6443")
	victim := filepath.Join(outside, "shadow")
	if err := os.WriteFile(victim, []byte("root:*:0:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(home, ".kube"), 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(home, ".kube", "config")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	// A symlinked directory out of home, and a dangling link.
	if err := os.Symlink(outside, filepath.Join(home, "kubedir")); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(home, "dangling")
	if err := os.Symlink(filepath.Join(outside, "new"), dangling); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{link, filepath.Join(home, "kubedir", "config"), dangling} {
		if _, err := Merge(src, dst); err == nil {
			t.Errorf("Merge into %s followed a symlink out of home", dst)
		}
		if err := Remove(dst); err == nil && dst != filepath.Join(home, "kubedir", "config") {
			t.Errorf("Remove of %s followed a symlink out of home", dst)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "root:*:0:0\n" {
		t.Fatalf("the symlink's target was written: %q", b)
	}
	for _, p := range []string{filepath.Join(outside, "config"), filepath.Join(outside, "new")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s was created", p)
		}
	}
}

// TestSymlinkInHomeFollowed: a kubeconfig linked to a file in home (a
// dotfiles repository) is updated in place and stays a link.
func TestSymlinkInHomeFollowed(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	src := filepath.Join(home, "octo.yaml")
	writeConfig(t, src, Name, "https://127.0.0.1:6443")
	real := filepath.Join(home, "dotfiles", "kubeconfig")
	if err := os.MkdirAll(filepath.Dir(real), 0o700); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, real, "kind-dev", "https://127.0.0.1:1234")
	link := filepath.Join(home, ".kube", "config")
	if err := os.MkdirAll(filepath.Dir(link), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Merge(src, link); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", fi, err)
	}
	c, err := clientcmd.LoadFromFile(real)
	if err != nil || c.CurrentContext != Name || c.Contexts["kind-dev"] == nil {
		t.Fatalf("linked file not merged: %v %v", c, err)
	}
	if st, _ := os.Stat(real); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(real))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}
