// Package logs sends the output of the embedded Kubernetes components, which
// all log through the process-wide klog, into one file per component, so that
// `octo logs kubelet` shows the kubelet and nothing else.
//
// klog writes synchronously in the logging goroutine, so the caller's stack
// tells which component logged: the first frame that belongs to a known
// component package decides the file. Lines from shared library goroutines
// (informers, the client) go to the "kubernetes" file.
package logs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// Shared is the file for klog lines no component claims.
const Shared = "kubernetes"

// owners maps package path prefixes to the component that owns them. Longer,
// more specific prefixes come first.
var owners = []struct{ prefix, component string }{
	{"k8s.io/kubernetes/cmd/kubelet", "kubelet"},
	{"k8s.io/kubernetes/pkg/kubelet", "kubelet"},
	{"k8s.io/kubernetes/pkg/volume", "kubelet"},
	{"k8s.io/cri-client", "kubelet"},
	{"github.com/google/cadvisor", "kubelet"},
	{"k8s.io/kubernetes/cmd/kube-proxy", "kube-proxy"},
	{"k8s.io/kubernetes/pkg/proxy", "kube-proxy"},
	{"k8s.io/kubernetes/cmd/kube-scheduler", "kube-scheduler"},
	{"k8s.io/kubernetes/pkg/scheduler", "kube-scheduler"},
	{"k8s.io/kubernetes/cmd/kube-controller-manager", "kube-controller-manager"},
	{"k8s.io/kubernetes/pkg/controller", "kube-controller-manager"},
	{"k8s.io/controller-manager", "kube-controller-manager"},
	{"k8s.io/kubernetes/cmd/kube-apiserver", "kube-apiserver"},
	{"k8s.io/kubernetes/pkg/controlplane", "kube-apiserver"},
	{"k8s.io/kubernetes/pkg/registry", "kube-apiserver"},
	{"k8s.io/apiserver", "kube-apiserver"},
	{"k8s.io/kube-aggregator", "kube-apiserver"},
	{"k8s.io/apiextensions-apiserver", "kube-apiserver"},
	{"github.com/octohq/octo/internal/embed/kubelet", "kubelet"},
	{"github.com/octohq/octo/internal/embed/kubeproxy", "kube-proxy"},
	{"github.com/octohq/octo/internal/embed/scheduler", "kube-scheduler"},
	{"github.com/octohq/octo/internal/embed/controllermanager", "kube-controller-manager"},
	{"github.com/octohq/octo/internal/embed/apiserver", "kube-apiserver"},
}

// Components lists the files Router writes, for `octo logs` completion.
func Components() []string {
	seen := map[string]bool{}
	var out []string
	for _, o := range owners {
		if !seen[o.component] {
			seen[o.component] = true
			out = append(out, o.component)
		}
	}
	return append(out, Shared)
}

// Owner returns the component owning a function name such as
// "k8s.io/kubernetes/pkg/kubelet.(*Kubelet).syncLoop", or "" if none does.
func Owner(function string) string {
	for _, o := range owners {
		if strings.HasPrefix(function, o.prefix) {
			return o.component
		}
	}
	return ""
}

// Router is an io.Writer for klog that appends each line to the file of the
// component found on the caller's stack.
type Router struct {
	dir   string
	mu    sync.Mutex
	files map[string]io.WriteCloser
}

// NewRouter writes <dir>/<component>.log files.
func NewRouter(dir string) (*Router, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	return &Router{dir: dir, files: map[string]io.WriteCloser{}}, nil
}

// Write implements io.Writer.
func (r *Router) Write(p []byte) (int, error) {
	w, err := r.file(callerComponent())
	if err != nil {
		return 0, err
	}
	return w.Write(p)
}

// callerComponent walks the stack of the logging goroutine.
func callerComponent() string {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(3, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if c := Owner(f.Function); c != "" {
			return c
		}
		if !more {
			return Shared
		}
	}
}

func (r *Router) file(component string) (io.Writer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.files[component]; ok {
		return f, nil
	}
	f, err := os.OpenFile(filepath.Join(r.dir, component+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", component, err)
	}
	r.files[component] = f
	return f, nil
}

// Close closes every file.
func (r *Router) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first error
	for _, f := range r.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	r.files = map[string]io.WriteCloser{}
	return first
}
