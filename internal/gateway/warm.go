package gateway

import (
	"context"
	"net"
	"os"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/warmstart"
)

// The warm start (docs/adr/0015-warm-start.md). After `octo up` on a data
// dir with Workers, the kubelet starts every bundle pod again, which takes
// seconds of CPU per pod. Until a pod serves a script, a version that the
// warm-start hosts hold (warmstart.Hosts, outside Kubernetes, loaded from
// the snapshot `octo down` saved) is served by the host that holds it.
// Once the pods serve, pick finds them first and the hosts stop; their
// sockets go with them.

// Warm is where the warm-start hosts serve, and what.
type Warm struct {
	// Sockets are the hosts' unix sockets, in warmstart.HostIndex order.
	Sockets []string
	// Entries are the versions the hosts hold (warmstart.Snapshot.Entries).
	Entries []warmstart.Entry
}

// warmKey is a version the hosts hold, under its account and script.
type warmKey struct{ account, script, version string }

// pickWarm returns a target on the warm-start host that holds the version
// the newest deployment picks, or nil when no host holds it or the hosts
// are gone.
func (g *Gateway) pickWarm(a store.Account, script string, deployments [][]apiv1.VersionTraffic) *target {
	if len(g.warmSockets) == 0 || len(deployments) == 0 || len(deployments[0]) == 0 {
		return nil
	}
	version := g.pickVersion(deployments[0])
	if !g.warmHeld[warmKey{a.ID, script, version}] {
		return nil
	}
	i := warmstart.HostIndex(version, len(g.warmSockets))
	if _, err := os.Stat(g.warmSockets[i]); err != nil {
		return nil // retired: the pods serve
	}
	return &target{script: script, primary: backend{pod: "warm-start", addr: warmstart.HostAddr(i), version: version,
		limit: apiv1.DefaultCPULimit, loaderScript: script, loaderAccount: a.ID}}
}

// warmDialer reaches the warm-start hosts' addresses on their sockets, and
// the rest with next.
func (g *Gateway) warmDialer(next func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if len(g.warmSockets) == 0 {
		return next
	}
	return warmstart.Dialer(g.warmSockets, next)
}
