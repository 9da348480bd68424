// Package kubeconfig merges octo's cluster into the user's kubeconfig as
// context "octo", the way kind does, and removes it again.
package kubeconfig

import (
	"fmt"
	"os"
	"path/filepath"

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
// when missing. It returns dst.
func Merge(src, dst string) (string, error) {
	from, err := clientcmd.LoadFromFile(src)
	if err != nil {
		return dst, fmt.Errorf("read %s: %w", src, err)
	}
	to, err := load(dst)
	if err != nil {
		return dst, err
	}
	to.Clusters[Name] = from.Clusters[Name]
	to.AuthInfos[Name] = from.AuthInfos[Name]
	to.Contexts[Name] = from.Contexts[Name]
	to.CurrentContext = Name
	return dst, write(to, dst)
}

// Remove deletes the "octo" entries from path; the current context is
// cleared when it was "octo". A missing file is not an error.
func Remove(path string) error {
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return nil
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

func write(c *clientcmdapi.Config, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := clientcmd.WriteToFile(*c, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}
