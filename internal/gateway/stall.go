package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
)

// Stall detection. workerd runs every Worker of a pod on one thread: a
// request that computes without yielding (while (true) {}) blocks the others
// until its CPU limit ends it (the pod's liveness probe, sized by the
// largest limits.cpu_ms of the pod). The gateway notices such a pod — a
// request in flight, nothing answered for StallAfter, and its health worker
// silent — marks its bundle so that the operators start a second pod
// (apiv1.AnnotationStalledPod), and routes the bundle's requests to the
// other pod as soon as it is ready. The mark goes when the pod answers again.
const (
	// StallAfter is how long a pod may go without finishing a request,
	// while one is in flight, before its health worker is probed.
	StallAfter = 500 * time.Millisecond
	// stallProbeTimeout bounds the probe of the health worker.
	stallProbeTimeout = 300 * time.Millisecond
	// stallTick is the period of the watchdog.
	stallTick = 250 * time.Millisecond
)

// StallReporter marks a bundle while one of its pods is stalled (stalled
// true), or removes the mark when it names that pod (stalled false): two
// pods of a bundle may stall, and the second's mark must outlive the first.
type StallReporter func(ctx context.Context, namespace, bundle, pod string, stalled bool) error

// BundleStalls is the StallReporter that writes apiv1.AnnotationStalledPod
// on the WorkerBundle: the gateway's only writes are these and DeletePods.
// A removal is conditional on the bundle's resourceVersion, so that it never
// removes a mark written meanwhile for another pod.
func BundleStalls(c client.Client) StallReporter {
	return func(ctx context.Context, namespace, bundle, pod string, stalled bool) error {
		b := &apiv1.WorkerBundle{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: bundle}, b); err != nil {
			return client.IgnoreNotFound(err)
		}
		cur := b.GetAnnotations()[apiv1.AnnotationStalledPod]
		if (stalled && cur == pod) || (!stalled && cur != pod) {
			return nil
		}
		orig := b.DeepCopy()
		ann := b.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		if stalled {
			ann[apiv1.AnnotationStalledPod] = pod
		} else {
			delete(ann, apiv1.AnnotationStalledPod)
		}
		b.SetAnnotations(ann)
		if err := c.Patch(ctx, b, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("mark bundle %s/%s: pod %s stalled=%v: %w", namespace, bundle, pod, stalled, err)
		}
		return nil
	}
}

// ClearStalls removes the stall marks of every WorkerBundle: a gateway that
// starts knows of no stalled pod, and a mark left by a previous run would
// keep a surge pod for ever. With replicated (other gateways serve beside
// this one, and may have marked a pod that is stalled now), only the marks
// of pods that are gone are removed.
func ClearStalls(ctx context.Context, c client.Client, replicated bool) error {
	var list apiv1.WorkerBundleList
	if err := c.List(ctx, &list); err != nil {
		return fmt.Errorf("list bundles: %w", err)
	}
	report := BundleStalls(c)
	var errs []error
	for i := range list.Items {
		b := &list.Items[i]
		pod := b.GetAnnotations()[apiv1.AnnotationStalledPod]
		if pod == "" {
			continue
		}
		if replicated {
			err := c.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: pod}, &corev1.Pod{})
			if err == nil {
				continue // another gateway's mark, maybe
			}
			if !apierrors.IsNotFound(err) {
				errs = append(errs, err)
				continue
			}
		}
		errs = append(errs, report(ctx, b.Namespace, b.Name, pod, false))
	}
	return errors.Join(errs...)
}

// PodKiller ends a pod at once (namespace, name and UID: never another pod
// of that name).
type PodKiller func(ctx context.Context, namespace, name, uid string) error

// DeletePods is the PodKiller that deletes the pod with no grace period;
// its ReplicaSet replaces it.
func DeletePods(c client.Client) PodKiller {
	return func(ctx context.Context, namespace, name, uid string) error {
		p := &corev1.Pod{}
		p.Namespace, p.Name = namespace, name
		uidv := types.UID(uid)
		err := c.Delete(ctx, p, client.GracePeriodSeconds(0), client.Preconditions{UID: &uidv})
		if client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("end pod %s/%s: %w", namespace, name, err)
		}
		return nil
	}
}

// request is a request in flight in a pod, with its version's CPU limit.
type request struct {
	start time.Time
	limit time.Duration
}

// podLoad is what the gateway knows of a pod's requests.
type podLoad struct {
	mu   sync.Mutex
	reqs map[*request]struct{}
	// blockedSince (unix ns) and limit describe the current stall: the loop
	// has been blocked at least since blockedSince, and it may stay so for
	// limit, the largest CPU limit of the requests in flight when it was
	// found (one of them blocks it; none may be cut short).
	blockedSince int64
	limit        time.Duration
	// mark is the stall mark the bundle should carry for this pod, marked
	// the one it is known to carry (reports are retried until they agree).
	mark, marked atomic.Bool
	// killed: the gateway ended the pod for a request past its limit.
	killed   atomic.Bool
	inflight atomic.Int64
	stalled  atomic.Bool
	expired  atomic.Bool  // dropped from Gateway.loads (idle)
	since    atomic.Int64 // unix nanoseconds: when it was found stalled
	lastDone atomic.Int64 // unix nanoseconds of the last finished request
	// health is podIP:port of the pod's health worker, "" until the pod
	// has an IP (a pod routed to before the kubelet reports it, early.go).
	health atomic.Pointer[string]
	// set once, when the load is created
	key, namespace, name, uid, bundle string
}

// healthAddr is the address of the pod's health worker, or "".
func (l *podLoad) healthAddr() string {
	if h := l.health.Load(); h != nil {
		return *h
	}
	return ""
}

// load returns the load record of the pod p, creating it. A pod is keyed
// by namespace/name and UID, so a pod recreated under its name starts anew.
func (g *Gateway) load(p *corev1.Pod) *podLoad {
	key := string(p.UID)
	if key == "" {
		key = p.Namespace + "/" + p.Name
	}
	if v, ok := g.loads.Load(key); ok {
		l := v.(*podLoad)
		if l.healthAddr() == "" {
			if h := healthAddr(p); h != "" { // the pod got its IP since
				l.health.Store(&h)
			}
		}
		return l
	}
	l := &podLoad{key: key, namespace: p.Namespace, name: p.Name, uid: string(p.UID), reqs: map[*request]struct{}{}, bundle: p.Annotations[apiv1.AnnotationBundleName]}
	if h := healthAddr(p); h != "" {
		l.health.Store(&h)
	}
	l.lastDone.Store(time.Now().UnixNano())
	actual, _ := g.loads.LoadOrStore(key, l)
	return actual.(*podLoad)
}

// begin counts a request to l's pod, started at start, of a version whose
// CPU limit is limit; end ends it.
func (g *Gateway) begin(l *podLoad, start time.Time, limit time.Duration) *request {
	if l == nil {
		return nil
	}
	if l.expired.Load() { // the watchdog forgot it while it was idle
		l.expired.Store(false)
		g.loads.Store(l.key, l)
	}
	r := &request{start: start, limit: limit}
	l.mu.Lock()
	l.reqs[r] = struct{}{}
	l.mu.Unlock()
	l.inflight.Add(1)
	return r
}

// end ends a request begin counted.
func (g *Gateway) end(l *podLoad, r *request) {
	if l == nil {
		return
	}
	l.lastDone.Store(time.Now().UnixNano())
	l.inflight.Add(-1)
	l.mu.Lock()
	delete(l.reqs, r)
	l.mu.Unlock()
}

// blame records the stall found now: blocked at least since the last
// request finished or the oldest one in flight started, whichever is later,
// and allowed the largest CPU limit of the requests in flight.
func (l *podLoad) blame() {
	l.mu.Lock()
	defer l.mu.Unlock()
	var oldest time.Time
	l.limit = 0
	for r := range l.reqs {
		if oldest.IsZero() || r.start.Before(oldest) {
			oldest = r.start
		}
		l.limit = max(l.limit, r.limit)
	}
	if l.limit == 0 {
		l.limit = apiv1.DefaultCPULimit
	}
	l.blockedSince = max(l.lastDone.Load(), oldest.UnixNano())
}

// overdue reports whether the stalled loop has been blocked for the limit
// blame allowed. The requests need not be in flight any more: a client that
// gave up does not unblock the loop.
func (l *podLoad) overdue(now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit, now.Sub(time.Unix(0, l.blockedSince)) >= l.limit
}

// avoidStalled drops the backends of stalled pods from cands, unless all
// of them are: then waiting on a stalled pod beats answering 503.
func (g *Gateway) avoidStalled(cands []backend) []backend {
	stalled := 0
	for _, b := range cands {
		if b.load != nil && b.load.stalled.Load() {
			stalled++
		}
	}
	if stalled == 0 || stalled == len(cands) {
		return cands
	}
	out := make([]backend, 0, len(cands)-stalled)
	for _, b := range cands {
		if b.load == nil || !b.load.stalled.Load() {
			out = append(out, b)
		}
	}
	return out
}

// WatchStalls runs the stall watchdog until ctx ends; without a
// StallReporter it only steers requests away from stalled pods.
func (g *Gateway) WatchStalls(ctx context.Context) {
	probe := &http.Client{Timeout: stallProbeTimeout, Transport: &http.Transport{
		DialContext:       (&net.Dialer{Timeout: stallProbeTimeout}).DialContext,
		DisableKeepAlives: true,
	}}
	tick := time.NewTicker(stallTick)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		g.loads.Range(func(k, v any) bool {
			l := v.(*podLoad)
			idle := now.Sub(time.Unix(0, l.lastDone.Load()))
			unsynced := l.mark.Load() != l.marked.Load()
			if !l.stalled.Load() && !unsynced && (l.killed.Load() || l.inflight.Load() == 0 || idle < StallAfter) {
				if l.inflight.Load() == 0 && idle > loadIdleExpiry {
					// A pod long idle, or gone; begin puts it back.
					l.expired.Store(true)
					g.loads.Delete(k)
					if l.inflight.Load() > 0 { // a request came meanwhile
						l.expired.Store(false)
						g.loads.Store(k, l)
					}
				}
				return true
			}
			wg.Go(func() { g.checkStall(ctx, probe, l) })
			return true
		})
		wg.Wait()
	}
}

// loadIdleExpiry forgets the load record of a pod without requests.
const loadIdleExpiry = 10 * time.Minute

// stallGiveUp clears the mark of a pod that stays silent for longer than
// any CPU limit allows.
const stallGiveUp = apiv1.MaxCPULimit + time.Minute

// checkStall probes the health worker of l's pod and marks, ends or clears
// it, then brings the bundle's mark in line.
func (g *Gateway) checkStall(ctx context.Context, probe *http.Client, l *podLoad) {
	defer g.report(ctx, l)
	health := l.healthAddr()
	if health == "" || l.killed.Load() {
		return // nothing to probe; or ended, and its mark already cleared
	}
	key := l.namespace + "/" + l.name
	stalled := l.stalled.Load()
	answered, gone := healthy(ctx, probe, health)
	if stalled && !answered && !gone && !g.podExists(ctx, l) {
		gone = true // deleted (a rollout): its IP no longer answers at all
	}
	switch {
	case !stalled && !answered && !gone:
		l.blame()
		l.stalled.Store(true)
		l.mark.Store(true)
		g.log.Warn("worker pod stalled: a request keeps its event loop busy; starting a second pod for the bundle's other Workers",
			"pod", key, "bundle", l.bundle, "inflight", l.inflight.Load())
	case stalled && !answered && !gone && g.kill != nil:
		limit, ok := l.overdue(time.Now())
		if !ok {
			return
		}
		g.log.Warn("worker exceeded its CPU limit: ending its pod (error 1102)", "pod", key, "bundle", l.bundle, "limit", limit)
		l.killed.Store(true)
		kctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := g.kill(kctx, l.namespace, l.name, l.uid); err != nil {
			g.log.Warn("end stalled pod", "err", err)
			l.killed.Store(false)
			return
		}
		// The pod is going; the surge pod serves the bundle.
		l.stalled.Store(false)
		l.mark.Store(false)
	case stalled && (answered || gone || time.Since(time.Unix(0, l.blockedSince)) > stallGiveUp):
		// It answers again; or nothing listens any more (the process was
		// killed at its CPU limit, or the pod is gone): a restarted
		// process is probed anew.
		l.stalled.Store(false)
		l.mark.Store(false)
		g.log.Info("worker pod no longer stalled", "pod", key, "bundle", l.bundle, "answers", answered)
	}
}

// podExists reports whether l's pod is still there, not being deleted
// (from the gateway's cache; true when it cannot tell).
func (g *Gateway) podExists(ctx context.Context, l *podLoad) bool {
	if g.reader == nil {
		return true
	}
	var p corev1.Pod
	err := g.reader.Get(ctx, client.ObjectKey{Namespace: l.namespace, Name: l.name}, &p)
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		return true
	}
	return (l.uid == "" || string(p.UID) == l.uid) && p.DeletionTimestamp == nil
}

// report brings the bundle's stall mark for l's pod in line with l.mark,
// when a StallReporter is set; a failure is retried on the next tick.
func (g *Gateway) report(ctx context.Context, l *podLoad) {
	want := l.mark.Load()
	if g.stallReporter == nil || l.bundle == "" || want == l.marked.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := g.stallReporter(ctx, l.namespace, l.bundle, l.name, want); err != nil {
		g.log.Warn("mark stalled bundle", "err", err)
		return
	}
	l.marked.Store(want)
}

// healthy probes the health worker at addr: answered is a 200; gone means
// that nothing accepts connections there (a stalled process still does: the
// kernel accepts, workerd never reads).
func healthy(ctx context.Context, c *http.Client, addr string) (answered, gone bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return false, false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, dialError(err) && !isTimeout(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, false
}

// isTimeout reports whether err is a timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// healthAddr is podIP:port of the pod's health worker (the container port
// named "health"), or "" (also while the pod has no IP).
func healthAddr(p *corev1.Pod) string {
	if p.Status.PodIP == "" {
		return ""
	}
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			if port.Name == healthPortName {
				return net.JoinHostPort(p.Status.PodIP, strconv.Itoa(int(port.ContainerPort)))
			}
		}
	}
	return ""
}

// healthPortName is the container port of a workerd pod's health worker.
const healthPortName = "health"
