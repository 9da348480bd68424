package gateway

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	corev1 "k8s.io/api/core/v1"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/workerd"
)

// localSuffix ends the host part of the address of a pod reached on its unix
// sockets: "<pod UID>.pod.octo:<port>". The transport pools connections by
// address, so a connection to one pod's socket is never handed to another
// pod, even one that later has the same IP.
const localSuffix = ".pod.octo"

// NodeSockets is Options.LocalSockets for a gateway on the node nodeName
// whose kubelet keeps its pods under kubeletRoot: the pod's socket volume as
// the host sees it, <kubeletRoot>/pods/<UID>/volumes/kubernetes.io~empty-dir/
// <apiv1.SocketVolume>. Pods of other nodes, or without that volume, get "".
func NodeSockets(kubeletRoot, nodeName string) func(p *corev1.Pod) string {
	return func(p *corev1.Pod) string {
		if p.Spec.NodeName != nodeName || p.UID == "" {
			return ""
		}
		for _, v := range p.Spec.Volumes {
			if v.Name == apiv1.SocketVolume && v.EmptyDir != nil {
				return filepath.Join(kubeletRoot, "pods", string(p.UID), "volumes", "kubernetes.io~empty-dir", apiv1.SocketVolume)
			}
		}
		return ""
	}
}

// localHost returns the host part of the addresses of a pod reached on its
// unix sockets, opening its socket directory on first sight, or "" for the
// pod network.
func (g *Gateway) localHost(p *corev1.Pod) string {
	if g.localSockets == nil {
		return ""
	}
	host := string(p.UID) + localSuffix
	g.dirsMu.RLock()
	sd, known := g.socketDirs[host]
	g.dirsMu.RUnlock()
	if known {
		// First seen before its IP (early.go), or given a new one: the
		// fallback must not dial an address the pod no longer has.
		if sd.ip != p.Status.PodIP && p.Status.PodIP != "" {
			g.dirsMu.Lock()
			if sd, ok := g.socketDirs[host]; ok {
				sd.ip = p.Status.PodIP
				g.socketDirs[host] = sd
			}
			g.dirsMu.Unlock()
		}
		return host
	}
	path := g.localSockets(p)
	if path == "" {
		return ""
	}
	dir, err := openSocketDir(path)
	if err != nil {
		g.log.Debug("pod sockets not reachable from the host; using the pod network", "pod", p.Namespace+"/"+p.Name, "err", err)
		return ""
	}
	g.dirsMu.Lock()
	defer g.dirsMu.Unlock()
	if _, ok := g.socketDirs[host]; ok { // opened meanwhile
		dir.Close()
		return host
	}
	if len(g.socketDirs) >= maxSocketDirs {
		g.pruneSocketDirs()
	}
	g.socketDirs[host] = socketDir{dir: dir, ip: p.Status.PodIP}
	return host
}

// socketDir is a local pod's socket directory, open, and its IP.
type socketDir struct {
	dir *os.File
	ip  string
}

// socket is the path that reaches the socket of port through the open
// directory (the full path may be longer than a socket address allows).
func (sd socketDir) socket(port int) string {
	return workerd.UnixSocketPath("/proc/self/fd/"+strconv.Itoa(int(sd.dir.Fd())), port)
}

// maxSocketDirs bounds the gateway's table of local pods (one open
// directory each).
const maxSocketDirs = 1024

// pruneSocketDirs forgets the pods whose socket directory is gone (the
// kubelet removed the pod), or, if all are still there, every pod: the live
// ones come back on their next request. The memoised pods are dropped with
// them, since they name the forgotten addresses. Dials may still be using a
// forgotten directory for a moment: it is closed a minute later.
// Called with dirsMu held.
func (g *Gateway) pruneSocketDirs() {
	var gone []*os.File
	for host, sd := range g.socketDirs {
		if _, err := os.Stat(sd.dir.Name()); errors.Is(err, fs.ErrNotExist) {
			gone = append(gone, sd.dir)
			delete(g.socketDirs, host)
		}
	}
	if len(g.socketDirs) >= maxSocketDirs {
		for _, sd := range g.socketDirs {
			gone = append(gone, sd.dir)
		}
		clear(g.socketDirs)
	}
	// A computation of the pods running now could store them after a
	// clear; a change makes the next request recompute whatever is stored.
	if g.changes != nil {
		g.changes.PodsChanged()
	}
	time.AfterFunc(time.Minute, func() {
		for _, f := range gone {
			f.Close()
		}
	})
}

// openSocketDir opens a pod's socket directory as a path-only handle.
// Sockets are dialled through it (/proc/self/fd/<fd>/<port>.sock): the full
// path under the kubelet's root is longer than a unix socket address may be
// (108 bytes).
func openSocketDir(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// dialer wraps the transport's TCP dial: a local pod's address opens the
// unix socket of that port (workerd.UnixSocketPath) instead.
func (g *Gateway) dialer(tcp func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || !strings.HasSuffix(host, localSuffix) {
			return tcp(ctx, network, addr)
		}
		n, perr := strconv.Atoi(port)
		g.dirsMu.RLock()
		sd, ok := g.socketDirs[host]
		g.dirsMu.RUnlock()
		if perr != nil || !ok {
			return nil, &net.OpError{Op: "dial", Net: "unix", Err: errUnknownLocalPod}
		}
		c, err := d.DialContext(ctx, "unix", sd.socket(n))
		if err == nil || ctx.Err() != nil || sd.ip == "" {
			return c, err
		}
		// No socket there (an image built before the sockets, a restart
		// under way): the pod network still reaches the Worker.
		return tcp(ctx, network, net.JoinHostPort(sd.ip, port))
	}
}

// errUnknownLocalPod is a local address the gateway never handed out.
var errUnknownLocalPod = &net.AddrError{Err: "no socket directory is known for this pod", Addr: "unix"}
