package daemon

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/warmstart"
	"github.com/octohq/octo/internal/workerd"
)

// The warm start (docs/adr/0015-warm-start.md): while octo runs, the code
// of the versions the pods serve is kept in a snapshot (keepWarmSnapshot);
// the next `octo up` runs
// warm-start hosts from its first phase on (newWarmHosts), keeps the
// kubelet's pods off the CPU while the hosts load that code
// (podsYieldCPU), and stops the hosts once every pod of this run serves
// (retireWarmHosts).

// warmSnapshot is where the daemon keeps the warm-start snapshot.
func warmSnapshot(cfg config.Config) warmstart.Snapshot {
	return warmstart.Snapshot{Dir: cfg.Path("warm-start")}
}

// warmHostMemory bounds each warm-start host's memory: ~2 MB per small
// Worker, with room for larger ones.
const warmHostMemory = 2 << 30

// warmCgroup is the cgroup of the warm-start hosts' cgroups, apart from
// the validations' (workerd.ValidateCgroup) so as to weigh them alone.
const warmCgroup = "octo-warm"

// warmShares is the CPU weight of the warm-start host: sixteen busy
// processes'. While it serves, the Workers of the snapshot answer from it
// alone, and its quota (one core) leaves the other core to the control
// plane's start.
const warmShares = 16 * workerd.DefaultCPUShares

// newWarmHosts returns the warm-start host of cfg's snapshot. One host on
// one core, first in line for it, loads 1,000 Workers in 7–9 s while the
// control plane starts on the other core: octo was ready in 6.3–8.2 s.
// Two hosts loaded them in 4.5–5 s but held the API server back until
// then: octo was ready in 8.3–9.1 s (docs/benchmarks.md).
func newWarmHosts(cfg config.Config, svc *services, log *slog.Logger) *warmstart.Hosts {
	return warmstart.NewHosts(warmstart.Options{
		Snapshot: warmSnapshot(cfg),
		// One per data dir: a run killed with -9 leaves it, the next
		// start replaces it.
		Dir: filepath.Join(os.TempDir(), fmt.Sprintf("octo-warm-%08x", crc32.ChecksumIEEE([]byte(cfg.DataDir)))),
		Bin: func(ctx context.Context) (string, error) {
			select {
			case <-svc.extracted:
				return svc.workerdPath, svc.extractErr
			case <-ctx.Done():
				return "", context.Cause(ctx)
			}
		},
		Count:   1,
		Sandbox: workerd.Sandbox{Memory: warmHostMemory, CPU: 1, Pids: 256, AllowNoCgroup: true, Group: warmCgroup},
		Shares:  warmShares,
		Log:     log.With("component", "warm-start"),
	})
}

// warmSnapshotEvery is how often the snapshot is brought in step with
// what the active deployments serve.
const warmSnapshotEvery = 5 * time.Second

// keepWarmSnapshot keeps the snapshot in step with the versions the
// active deployments serve that the loader can run, read from r (the
// operators' cache) every warmSnapshotEvery: a new version's code is read
// once with code, a version no longer served is dropped. It runs until ctx
// ends, so the snapshot is at most that old at `octo down`, or at a crash.
func keepWarmSnapshot(ctx context.Context, r client.Reader, snap warmstart.Snapshot, code VersionCodeFunc, log *slog.Logger) error {
	var last []warmstart.Entry
	tick := time.NewTicker(warmSnapshotEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		entries, versions, err := servedVersions(ctx, r)
		if err != nil {
			log.Debug("warm start: deployments not read", "err", err)
			continue
		}
		if slices.Equal(entries, last) {
			continue
		}
		t0 := time.Now()
		saved, skipped, err := snap.Update(ctx, entries, func(ctx context.Context, e warmstart.Entry) (workerd.LoaderCode, error) {
			return code(ctx, versions[e.Version])
		})
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("warm start: snapshot not updated", "err", err)
			}
			continue
		}
		for v, err := range skipped {
			log.Debug("warm start: a version is left out of the snapshot", "version", v, "err", err)
		}
		log.Info("warm start: snapshot updated", "workers", len(saved), "skipped", len(skipped), "after", time.Since(t0).Round(time.Millisecond))
		if len(skipped) == 0 {
			last = entries
		}
	}
}

// VersionCodeFunc returns the code of a version (store.Store.VersionCode).
type VersionCodeFunc func(ctx context.Context, v *apiv1.WorkerVersion) (workerd.LoaderCode, error)

// servedVersions lists, sorted, the versions the active deployments serve
// that the loader can run (workerd.Loadable), and those versions by ID.
func servedVersions(ctx context.Context, r client.Reader) ([]warmstart.Entry, map[string]*apiv1.WorkerVersion, error) {
	var rels apiv1.WorkerReleaseList
	if err := r.List(ctx, &rels); err != nil {
		return nil, nil, fmt.Errorf("list releases: %w", err)
	}
	var versions apiv1.WorkerVersionList
	if err := r.List(ctx, &versions); err != nil {
		return nil, nil, fmt.Errorf("list versions: %w", err)
	}
	accounts, err := store.ClusterAccounts{Reader: r}.Accounts(ctx)
	if err != nil {
		return nil, nil, err
	}
	subdomains := uniqueSubdomains(accounts)
	byID := make(map[string]*apiv1.WorkerVersion, len(versions.Items))
	for i := range versions.Items {
		byID[versions.Items[i].Spec.VersionID] = &versions.Items[i]
	}
	var out []warmstart.Entry
	served := map[string]*apiv1.WorkerVersion{}
	for _, rel := range rels.Items {
		d := rel.ActiveDeployment()
		if d == nil || rel.DeletionTimestamp != nil {
			continue
		}
		for _, t := range d.Versions {
			v := byID[t.VersionID]
			if v == nil || v.Spec.AccountID != rel.Spec.AccountID || v.Spec.ScriptName != rel.Spec.ScriptName || workerd.Loadable(v) != nil {
				continue
			}
			out = append(out, warmstart.Entry{Account: rel.Spec.AccountID, Subdomain: subdomains[rel.Spec.AccountID],
				Script: rel.Spec.ScriptName, Version: t.VersionID})
			served[t.VersionID] = v
		}
	}
	slices.SortFunc(out, func(a, b warmstart.Entry) int { return strings.Compare(a.Version, b.Version) })
	return out, served, nil
}

// uniqueSubdomains maps the ID of each account to its workers subdomain,
// lower-case, when the gateway serves it (store.SubdomainClaims): no other
// account claims the same subdomain or ID.
func uniqueSubdomains(accounts []store.Account) map[string]string {
	c := store.ClaimSubdomains(accounts)
	out := map[string]string{}
	for sub := range c.BySubdomain {
		if a, ok := c.Served(sub); ok {
			out[a.ID] = sub
		}
	}
	return out
}

// kubepodsCPU is the kubelet's cgroup of every pod in the v1 cpu hierarchy
// (cgroupfs driver).
const kubepodsCPU = "/sys/fs/cgroup/cpu/kubepods"

// yieldAfterReady bounds how long the pods yield the CPU once octo is
// ready and the hosts have loaded their Workers.
const yieldAfterReady = 30 * time.Second

// podsYieldCPU makes every pod's processes run only on CPU nobody else
// wants (cpu.idle) during a warm start (yield): the kubelet starts every
// pod of the earlier run at once, and their workerd processes compiling
// every Worker again would take both cores from the hosts, from the
// control plane (the gateway's cache, last to sync, among them) and then
// from the requests the hosts serve. They yield until the hosts have
// loaded their Workers (preloaded) and octo is ready, then until the hosts
// retire (retired: every pod serves), yieldAfterReady at most. Without a
// warm start it clears what a killed run may have left. A host without
// cgroup v1's cpu.idle (cgroup v2, kernels before 5.15) skips it.
func podsYieldCPU(ctx context.Context, yield bool, preloaded, ready, retired <-chan struct{}, log *slog.Logger) {
	idle := filepath.Join(kubepodsCPU, "cpu.idle")
	if !yield {
		if err := os.WriteFile(idle, []byte("0"), 0o644); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Debug("warm start: pods' CPU share not reset", "err", err)
		}
		return
	}
	if err := os.MkdirAll(kubepodsCPU, 0o755); err != nil {
		log.Debug("warm start: pods keep their CPU share", "err", err)
		return
	}
	if err := os.WriteFile(idle, []byte("1"), 0o644); err != nil {
		log.Debug("warm start: pods keep their CPU share", "err", err)
		return
	}
	go func() {
		for _, c := range []<-chan struct{}{preloaded, ready} {
			select {
			case <-c:
			case <-ctx.Done():
			}
		}
		select {
		case <-retired:
		case <-time.After(yieldAfterReady):
		case <-ctx.Done():
		}
		if err := os.WriteFile(idle, []byte("0"), 0o644); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("warm start: pods' CPU share not restored", "err", err)
		}
	}()
}

// retireTimeout is how long the warm-start hosts may serve at most: their
// Workers are never unloaded.
const retireTimeout = 10 * time.Minute

// retireWarmHosts stops the hosts once every Workers pod of the node runs
// containers of this run and is Ready (c reads the pods), or after
// retireTimeout.
func retireWarmHosts(ctx context.Context, c client.Reader, hosts *warmstart.Hosts, nodeStarted time.Time, log *slog.Logger) {
	deadline := time.After(retireTimeout)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-deadline:
			hosts.Retire()
			return
		case <-tick.C:
		}
		serving, err := podsServe(ctx, c, nodeStarted)
		if err != nil {
			log.Debug("warm start: pods not read", "err", err)
			continue
		}
		if serving {
			hosts.Retire()
			return
		}
	}
}

// podsServe reports whether every Workers pod is Ready with containers
// started since nodeStarted.
func podsServe(ctx context.Context, c client.Reader, nodeStarted time.Time) (bool, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.HasLabels{apiv1.LabelAccount}); err != nil {
		return false, fmt.Errorf("list pods: %w", err)
	}
	since := nodeStarted.Truncate(time.Second)
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		ready := false
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady {
				ready = cond.Status == corev1.ConditionTrue
			}
		}
		if !ready || len(p.Status.ContainerStatuses) == 0 {
			return false, nil
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running == nil || cs.State.Running.StartedAt.Time.Before(since) {
				return false, nil
			}
		}
	}
	return true, nil
}

// podsAfterWarmStart is the kubelet's HoldPods: while the warm-start hosts
// (started, the component whose readiness says whether they serve) serve
// the Workers, the kubelet starts the pods once octo is ready (ready
// closed). Each pod costs the runtime, its shim, runc and the network
// plugins ~50 ms of CPU that no cgroup of the pods accounts (32 pods: ~1.5
// s of a warm start with 1,000 Workers, while both cores were busy), and
// none serves before the hosts do. Without hosts the pods start at once.
func podsAfterWarmStart(started *early, hosts *warmstart.Hosts, ready <-chan struct{}) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := started.Wait(ctx); err != nil {
			return ctx.Err() // nil: the hosts failed, the pods serve
		}
		if len(hosts.Sockets()) == 0 {
			return nil
		}
		select {
		case <-ready:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
