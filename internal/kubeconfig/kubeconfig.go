// Package kubeconfig merges octo's cluster into the user's kubeconfig as
// context "octo", the way kind does, and removes it again.
package kubeconfig

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Name is the cluster, user and context name octo uses.
const Name = "octo"

// DefaultPath is the first file of $KUBECONFIG, or ~/.kube/config.
func DefaultPath() string {
	if env := os.Getenv("KUBECONFIG"); env != "" {
		return filepath.SplitList(env)[0]
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/root"
	}
	return filepath.Join(home, ".kube", "config")
}

// Merge copies the "octo" cluster, user and context of src into dst, makes it
// the current context and keeps everything else in dst. dst is created (0600)
// when missing. It returns dst. A dst reached through a symlink that leads
// out of the user's home directory is refused (see target).
func Merge(src, dst string) (string, error) {
	from, err := clientcmd.LoadFromFile(src)
	if err != nil {
		return dst, fmt.Errorf("read %s: %w", src, err)
	}
	path, err := target(dst)
	if err != nil {
		return dst, err
	}
	to, err := load(path)
	if err != nil {
		return dst, err
	}
	to.Clusters[Name] = from.Clusters[Name]
	to.AuthInfos[Name] = from.AuthInfos[Name]
	to.Contexts[Name] = from.Contexts[Name]
	to.CurrentContext = Name
	return dst, write(to, path)
}

// Remove deletes the "octo" entries from path; the current context is
// cleared when it was "octo". A missing file is not an error; a path
// through a symlink out of the home directory is refused, as by Merge.
func Remove(path string) error {
	if _, err := os.Lstat(path); os.IsNotExist(err) {
		return nil
	}
	path, err := target(path)
	if err != nil {
		return err
	}
	c, err := load(path)
	if err != nil {
		return err
	}
	delete(c.Clusters, Name)
	delete(c.AuthInfos, Name)
	delete(c.Contexts, Name)
	if c.CurrentContext == Name {
		c.CurrentContext = ""
	}
	return write(c, path)
}

func load(path string) (*clientcmdapi.Config, error) {
	c, err := clientcmd.LoadFromFile(path)
	if os.IsNotExist(err) {
		return clientcmdapi.NewConfig(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return c, nil
}

// target is the file a write of path goes to. octo may run as root and
// write the kubeconfig of $HOME or $KUBECONFIG: a symlink there (of the
// file or of a directory above it) is followed only when it leads to a
// place inside the user's home directory, so that a link planted towards
// /etc or another user's files never gets root's write. The file itself is
// then replaced atomically (write), never written through.
func target(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("kubeconfig path %s: %w", path, err)
	}
	real, err := resolve(abs)
	if err != nil {
		return "", fmt.Errorf("kubeconfig path %s: %w", path, err)
	}
	if real == abs {
		return abs, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("kubeconfig %s is a symlink to %s and the home directory is unknown: %w", path, real, err)
	}
	if h, err := filepath.EvalSymlinks(home); err == nil {
		home = h
	}
	if !within(real, home) {
		return "", fmt.Errorf("refusing to write kubeconfig %s: it leads through a symlink to %s, outside the home directory %s", path, real, home)
	}
	return real, nil
}

// resolve follows the symlinks of abs; the part of it that does not exist
// yet is kept as it is. A dangling symlink is an error.
func resolve(abs string) (string, error) {
	missing := ""
	dir := abs
	for {
		real, err := filepath.EvalSymlinks(dir)
		if err == nil {
			return filepath.Join(real, missing), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		if fi, lerr := os.Lstat(dir); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return "", fmt.Errorf("%s is a dangling symlink", dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return abs, nil
		}
		missing = filepath.Join(filepath.Base(dir), missing)
		dir = parent
	}
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// write replaces path with c atomically: a new file (0600, the old file's
// owner) in the same directory, renamed over path. The directory is opened
// once and everything happens inside it, so neither a symlink at path nor
// one swapped in meanwhile is written through.
func write(c *clientcmdapi.Config, path string) error {
	dir, base := filepath.Dir(path), filepath.Base(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	data, err := clientcmd.Write(*c)
	if err != nil {
		return fmt.Errorf("encode kubeconfig: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer root.Close()
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return fmt.Errorf("random: %w", err)
	}
	tmp := "." + base + "." + hex.EncodeToString(suffix[:])
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer root.Remove(tmp) // after a successful rename there is nothing left
	if err := keepOwner(root, base, f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := root.Rename(tmp, base); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// keepOwner gives f the owner of the file it replaces, so that a
// kubeconfig written by root (sudo octo up) stays its user's.
func keepOwner(root *os.Root, name string, f *os.File) error {
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || (int(st.Uid) == os.Geteuid() && int(st.Gid) == os.Getegid()) {
		return nil
	}
	return f.Chown(int(st.Uid), int(st.Gid))
}
