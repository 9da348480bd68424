package gateway

import (
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// A new pod on the gateway's node serves as soon as workerd listens on its
// unix sockets: workerd binds them once every Worker of its config is
// loaded. The kubelet reports the pod Ready only later (its PLEG relists
// every second, then the first readiness probe, then the status write),
// ~0.5–1.5 s that every deploy would wait. So the gateway routes to such a
// pod once a connection to one of its Worker sockets is accepted.
//
// Only pods never seen Ready, and young, qualify: a pod that was Ready and
// is not any more (a wedged process: its sockets still accept into the
// kernel's backlog; a restarted container) waits for the kubelet.

// earlyRecheck is how often the gateway looks again at the local pods that
// may start serving, while requests come.
const earlyRecheck = 20 * time.Millisecond

// earlyWindow bounds the age of a pod that may be routed to before the
// kubelet reports it Ready.
const earlyWindow = 2 * time.Minute

// earlyReady reports whether a pod that is not Ready already serves on its
// local sockets (with the host part of its addresses), and otherwise
// whether it may still do so before it changes.
func (g *Gateway) earlyReady(p *corev1.Pod, sockets map[string]int) (local string, serving, maybe bool) {
	if p.DeletionTimestamp != nil || p.Spec.NodeName == "" || g.localSockets == nil ||
		time.Since(p.CreationTimestamp.Time) > earlyWindow {
		return "", false, false
	}
	if _, ok := g.seenReady.Load(p.UID); ok {
		return "", false, false
	}
	if g.localSockets(p) == "" {
		return "", false, false // not on this node
	}
	local = g.localHost(p)
	if local == "" {
		return "", false, true // its volume is not set up yet
	}
	port := 0
	for _, n := range sockets {
		if n > 0 && n < 65536 {
			port = n
			break
		}
	}
	if port == 0 {
		return "", false, false
	}
	g.dirsMu.RLock()
	sd, ok := g.socketDirs[local]
	g.dirsMu.RUnlock()
	if !ok {
		return "", false, true
	}
	c, err := net.DialTimeout("unix", sd.socket(port), 50*time.Millisecond)
	if err != nil {
		return "", false, true
	}
	c.Close()
	return local, true, false
}
