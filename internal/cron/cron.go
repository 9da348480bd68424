// Package cron fires the cron triggers of every Worker on the platform: one
// scheduler, run by the operators, reads each WorkerRelease's
// spec.schedules and, at every time a cron names (UTC, whole minutes),
// calls the scheduled handler of the script's active deployment in a pod
// that runs it (workerd.ScheduledPath). What it fired is recorded in the
// release's status.cron, before the call, so a run is never fired twice,
// across restarts too: after a restart, only the latest time missed while
// octo was down (at most MaxCatchUp ago) runs, once.
package cron

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/builder"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
)

// Defaults of Options.
const (
	// MaxCatchUp bounds how far back a run missed while the scheduler was
	// not running is still fired (once) when it starts again.
	MaxCatchUp = 24 * time.Hour
	// DefaultConcurrency is how many runs are in flight at once (a run
	// waiting for a pod holds no slot).
	DefaultConcurrency = 32
	// maxBackfill bounds the times of one trigger fired by one tick when
	// ticks came late (a busy process): older ones are skipped.
	maxBackfill = 10
	// DefaultWaitForPod is how long a run waits for a pod that runs its
	// version (pods starting after `octo up`, a first rollout).
	DefaultWaitForPod = 2 * time.Minute
	// DefaultRunTimeout bounds one run: Cloudflare's limit for a cron
	// trigger's wall time is 15 minutes.
	DefaultRunTimeout = 15 * time.Minute
)

// Outcome of a run that reached no Worker.
const OutcomeUnreachable = "unreachable"

// Options configure a Scheduler.
type Options struct {
	// Client reads WorkerReleases, WorkerVersions and Pods (a cached client
	// is fine) and writes the releases' status (required).
	Client client.Client
	// Reader reads a release before its status is written; nil means Client.
	// The manager's API reader avoids conflicts with a stale cache.
	Reader client.Reader
	// Watched reports whether someone tails a script: its runs then go to
	// the traced twin, so that `wrangler tail` shows them. nil: never.
	Watched func(account, script string) bool
	// Credential is the pod credential of an account, which the pods'
	// trigger Worker and loader host ask of a scheduled run (required).
	Credential func(account string) string
	// Transport reaches the pods; nil: a plain one.
	Transport http.RoundTripper
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Concurrency, WaitForPod and RunTimeout default to the constants above.
	Concurrency int
	WaitForPod  time.Duration
	RunTimeout  time.Duration
	Log         *slog.Logger
}

// Scheduler fires cron triggers. It is a controller-runtime Runnable (Start)
// that runs on the leader only.
type Scheduler struct {
	o    Options
	http *http.Client
	sem  chan struct{}
	// fired is the latest time fired per release (namespace/name), ahead
	// of the status the cache shows.
	mu    sync.Mutex
	fired map[types.NamespacedName]time.Time
	// statusMu serialises status writes: runs append to one list.
	statusMu sync.Mutex
	wg       sync.WaitGroup
	// ticked is set after the first Tick: from then on, every time due
	// since the last one fires (a late tick loses none); the first Tick
	// fires only the latest missed time (the restart rule).
	ticked bool
}

// New returns a Scheduler.
func New(o Options) *Scheduler {
	o.Reader = cmp.Or[client.Reader](o.Reader, o.Client)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	o.Concurrency = cmp.Or(o.Concurrency, DefaultConcurrency)
	o.WaitForPod = cmp.Or(o.WaitForPod, DefaultWaitForPod)
	o.RunTimeout = cmp.Or(o.RunTimeout, DefaultRunTimeout)
	tr := o.Transport
	if tr == nil {
		tr = &http.Transport{DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext, MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second}
	}
	return &Scheduler{o: o, http: &http.Client{Transport: tr}, sem: make(chan struct{}, o.Concurrency), fired: map[types.NamespacedName]time.Time{}}
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: one
// scheduler fires for the whole platform.
func (s *Scheduler) NeedLeaderElection() bool { return true }

// Start fires due runs at once (the catch-up after a restart), then at
// every whole minute, until ctx ends; it waits for the runs in flight.
func (s *Scheduler) Start(ctx context.Context) error {
	defer s.wg.Wait()
	for {
		if err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.o.Log.Warn("cron: cannot read the schedules", "err", err)
		}
		now := s.o.Now()
		// A little after the minute: the times are whole minutes.
		next := now.Truncate(time.Minute).Add(time.Minute + 20*time.Millisecond)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(next.Sub(now)):
		}
	}
}

// fire is one run to make.
type fire struct {
	rel  types.NamespacedName
	cron string
	at   time.Time
}

// Tick fires every run due now that was not fired yet, and returns without
// waiting for them.
func (s *Scheduler) Tick(ctx context.Context) error {
	var rels apiv1.WorkerReleaseList
	if err := s.o.Client.List(ctx, &rels); err != nil {
		return fmt.Errorf("list releases: %w", err)
	}
	now := s.o.Now().UTC()
	all := s.ticked
	s.ticked = true
	for i := range rels.Items {
		rel := &rels.Items[i]
		fires := s.due(rel, now, all)
		if len(fires) == 0 {
			continue
		}
		latest := fires[0].at
		for _, f := range fires {
			if f.at.After(latest) {
				latest = f.at
			}
		}
		key := client.ObjectKeyFromObject(rel)
		// Recorded before the runs: a crash now skips them, never repeats them.
		err := s.updateStatus(ctx, key, func(st *apiv1.CronStatus) error {
			if st.LastScheduledTime != nil && !st.LastScheduledTime.Time.Before(latest) {
				return errFired // another scheduler (or this one, before the cache caught up) did
			}
			st.LastScheduledTime = &metav1.Time{Time: latest}
			return nil
		})
		if errors.Is(err, errFired) {
			s.mu.Lock()
			s.fired[key] = latest
			s.mu.Unlock()
			continue
		}
		if err != nil {
			s.o.Log.Warn("cron: cannot record a run; not firing it", "release", key, "err", err)
			continue
		}
		s.mu.Lock()
		s.fired[key] = latest
		s.mu.Unlock()
		for _, f := range fires {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.run(ctx, f)
			}()
		}
	}
	return nil
}

// due returns the runs of rel due at now: for each trigger, its times
// after the last one fired (and after it was created, and at most
// MaxCatchUp ago) that are not after now: all of them (at most
// maxBackfill, the latest) with all set, else only the latest.
func (s *Scheduler) due(rel *apiv1.WorkerRelease, now time.Time, all bool) []fire {
	if len(rel.Spec.Schedules) == 0 || rel.DeletionTimestamp != nil {
		return nil
	}
	key := client.ObjectKeyFromObject(rel)
	base := now.Add(-MaxCatchUp)
	if st := rel.Status.Cron; st != nil && st.LastScheduledTime != nil && st.LastScheduledTime.Time.After(base) {
		base = st.LastScheduledTime.Time
	}
	s.mu.Lock()
	if t, ok := s.fired[key]; ok && t.After(base) {
		base = t
	}
	s.mu.Unlock()
	var out []fire
	for _, t := range rel.Spec.Schedules {
		sched, err := store.ParseCron(t.Cron)
		if err != nil {
			continue // the API refuses such expressions; one written by hand is skipped
		}
		from := base
		// A trigger fires from the minute after it was made.
		if created := t.CreatedOn.Time.UTC().Truncate(time.Minute); created.After(from) {
			from = created
		}
		var times []time.Time
		for next := sched.Next(from.UTC()); !next.IsZero() && !next.After(now); next = sched.Next(next) {
			times = append(times, next)
		}
		if !all && len(times) > 1 {
			times = times[len(times)-1:]
		}
		if len(times) > maxBackfill {
			times = times[len(times)-maxBackfill:]
		}
		for _, at := range times {
			out = append(out, fire{rel: key, cron: t.Cron, at: at})
		}
	}
	return out
}

// run makes one run and records it.
func (s *Scheduler) run(ctx context.Context, f fire) {
	start := time.Now()
	r := apiv1.CronRun{Cron: f.cron, ScheduledTime: metav1.Time{Time: f.at}}
	version, res, err := s.call(ctx, f)
	r.VersionID, r.DurationMillis = version, time.Since(start).Milliseconds()
	log := s.o.Log.With("release", f.rel, "cron", f.cron, "scheduledTime", f.at)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		r.Outcome, r.Message = OutcomeUnreachable, truncate(err.Error(), 1024)
		log.Warn("cron: scheduled run failed", "err", err)
	} else {
		r.Outcome = res.Outcome
		log.Info("cron: scheduled run", "version", version, "outcome", res.Outcome, "duration", time.Since(start).Round(time.Millisecond))
	}
	if err := s.updateStatus(context.WithoutCancel(ctx), f.rel, func(st *apiv1.CronStatus) error {
		st.Runs = append([]apiv1.CronRun{r}, st.Runs...)
		if len(st.Runs) > apiv1.MaxCronRuns {
			st.Runs = st.Runs[:apiv1.MaxCronRuns]
		}
		return nil
	}); err != nil {
		log.Warn("cron: cannot record the run", "err", err)
	}
}

// errFired means the time was already recorded as fired.
var errFired = errors.New("already fired")

// errRetry marks a failure that a pod starting or rolling out may mend.
var errRetry = errors.New("no pod runs the version yet")

// errNotThere marks a target that did not run the handler: nothing
// listened, or the pod does not hold the version (LoaderFailedHeader).
var errNotThere = errors.New("the target does not run the version")

// call runs f's scheduled handler: in the active deployment's version (by
// percentage), retried while no pod runs it, for at most WaitForPod.
func (s *Scheduler) call(ctx context.Context, f fire) (string, workerd.ScheduledResult, error) {
	deadline := time.Now().Add(s.o.WaitForPod)
	for attempt := 0; ; attempt++ {
		version, res, err := s.try(ctx, f)
		if err == nil || !errors.Is(err, errRetry) || time.Now().After(deadline) {
			return version, res, err
		}
		select {
		case <-ctx.Done():
			return version, res, ctx.Err()
		case <-time.After(min(time.Second<<min(attempt, 3), 5*time.Second)):
		}
	}
}

func (s *Scheduler) try(ctx context.Context, f fire) (string, workerd.ScheduledResult, error) {
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	var rel apiv1.WorkerRelease
	if err := s.o.Client.Get(ctx, f.rel, &rel); err != nil {
		return "", workerd.ScheduledResult{}, fmt.Errorf("read the release: %w", err)
	}
	dep := rel.ActiveDeployment()
	if dep == nil || len(dep.Versions) == 0 {
		return "", workerd.ScheduledResult{}, errors.New("the script has no deployment")
	}
	version := pickVersion(dep.Versions)
	v, err := s.version(ctx, &rel, version)
	if err != nil {
		return version, workerd.ScheduledResult{}, err
	}
	pods, err := s.pods(ctx, &rel)
	if err != nil {
		return version, workerd.ScheduledResult{}, err
	}
	traced := s.o.Watched != nil && s.o.Watched(rel.Spec.AccountID, rel.Spec.ScriptName)
	loadable := workerd.Loadable(v) == nil
	for _, t := range targets(pods, version, traced, loadable) {
		res, err := s.post(ctx, t, &rel, version, f)
		if err == nil {
			return version, res, nil
		}
		if !errors.Is(err, errNotThere) {
			// The run may have started: never sent twice.
			return version, workerd.ScheduledResult{}, err
		}
		s.o.Log.Debug("cron: target failed", "addr", t.addr, "err", err)
	}
	return version, workerd.ScheduledResult{}, fmt.Errorf("version %s: %w", version, errRetry)
}

// pickVersion picks a version of a deployment by percentage.
func pickVersion(vs []apiv1.VersionTraffic) string {
	n := rand.IntN(100)
	for _, v := range vs {
		if n < int(v.Percentage) {
			return v.VersionID
		}
		n -= int(v.Percentage)
	}
	return vs[0].VersionID
}

func (s *Scheduler) version(ctx context.Context, rel *apiv1.WorkerRelease, id string) (*apiv1.WorkerVersion, error) {
	var list apiv1.WorkerVersionList
	if err := s.o.Client.List(ctx, &list, client.InNamespace(rel.Namespace), client.MatchingLabels{
		apiv1.LabelAccount: rel.Spec.AccountID, apiv1.LabelScript: store.ObjectName(rel.Spec.ScriptName)}); err != nil {
		return nil, fmt.Errorf("read the versions: %w", err)
	}
	for i := range list.Items {
		if list.Items[i].Spec.VersionID == id {
			return &list.Items[i], nil
		}
	}
	return nil, fmt.Errorf("version %s is not stored", id)
}

// pod is a Ready pod of the account: its address and sockets.
type pod struct {
	ip      string
	sockets map[string]int
}

func (s *Scheduler) pods(ctx context.Context, rel *apiv1.WorkerRelease) ([]pod, error) {
	var list corev1.PodList
	if err := s.o.Client.List(ctx, &list, client.InNamespace(rel.Namespace), client.MatchingLabels{apiv1.LabelAccount: rel.Spec.AccountID}); err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var out []pod
	for i := range list.Items {
		p := &list.Items[i]
		if p.DeletionTimestamp != nil || p.Status.PodIP == "" || !ready(p) {
			continue
		}
		var sockets map[string]int
		if json.Unmarshal([]byte(p.Annotations[apiv1.AnnotationSockets]), &sockets) != nil || len(sockets) == 0 {
			continue
		}
		out = append(out, pod{ip: p.Status.PodIP, sockets: sockets})
	}
	return out, nil
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// target is where a run is sent: a pod's trigger Worker or its loader host.
type target struct {
	addr   string
	loader bool
	traced bool
}

// targets lists where version's run may go, best first, as the gateway
// routes requests: a traced run of a version the loader can run goes to a
// loader host (no static twin exists), other runs to the trigger Worker of
// a pod that runs the version (its traced twin when traced); a version no
// pod runs yet (a redeploy rolling out) goes to a loader host if it can.
func targets(pods []pod, version string, traced, loadable bool) []target {
	var static, loaders []target
	for _, p := range pods {
		if _, ok := p.sockets[version]; ok {
			addr := net.JoinHostPort(p.ip, strconv.Itoa(builder.TriggerPort))
			if traced && !loadable {
				// The twin, or the Worker where none was built (no collector).
				static = append(static, target{addr: addr, traced: true})
			}
			static = append(static, target{addr: addr})
		}
		if port, ok := p.sockets[workerd.LoaderWorkerName]; ok && loadable && port > 0 && port < 65536 {
			loaders = append(loaders, target{addr: net.JoinHostPort(p.ip, strconv.Itoa(port)), loader: true, traced: traced})
		}
	}
	if traced && loadable {
		return append(loaders, static...)
	}
	return append(static, loaders...)
}

// post sends one run to t.
func (s *Scheduler) post(ctx context.Context, t target, rel *apiv1.WorkerRelease, version string, f fire) (workerd.ScheduledResult, error) {
	ctx, cancel := context.WithTimeout(ctx, s.o.RunTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+t.addr+workerd.ScheduledPath, nil)
	if err != nil {
		return workerd.ScheduledResult{}, err
	}
	req.Header.Set(workerd.ScheduledCronHeader, f.cron)
	req.Header.Set(workerd.ScheduledTimeHeader, strconv.FormatInt(f.at.UnixMilli(), 10))
	req.Header.Set(workerd.LoaderScriptHeader, rel.Spec.ScriptName)
	req.Header.Set(workerd.LoaderVersionHeader, version)
	if s.o.Credential != nil {
		req.Header.Set(workerd.AuthHeader, s.o.Credential(rel.Spec.AccountID))
	}
	if t.traced {
		req.Header.Set(workerd.LoaderTraceHeader, rel.Spec.ScriptName)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return workerd.ScheduledResult{}, fmt.Errorf("%s: %w: %v", t.addr, errNotThere, err)
		}
		return workerd.ScheduledResult{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.Header.Get(workerd.LoaderFailedHeader) != "" {
		return workerd.ScheduledResult{}, fmt.Errorf("%s: %w: %s", t.addr, errNotThere, truncate(string(body), 200))
	}
	if resp.StatusCode != http.StatusOK {
		return workerd.ScheduledResult{}, fmt.Errorf("%s: %s: %s", t.addr, resp.Status, truncate(string(body), 200))
	}
	var res workerd.ScheduledResult
	if err := json.Unmarshal(body, &res); err != nil || res.Outcome == "" {
		return workerd.ScheduledResult{}, fmt.Errorf("%s: not a scheduled result: %s", t.addr, truncate(string(body), 200))
	}
	return res, nil
}

// updateStatus changes the release's status.cron under statusMu, reading
// the release fresh and retrying on conflicts.
func (s *Scheduler) updateStatus(ctx context.Context, key types.NamespacedName, change func(*apiv1.CronStatus) error) error {
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var rel apiv1.WorkerRelease
		if err := s.o.Reader.Get(ctx, key, &rel); err != nil {
			return err
		}
		if rel.Status.Cron == nil {
			rel.Status.Cron = &apiv1.CronStatus{}
		}
		if err := change(rel.Status.Cron); err != nil {
			return err
		}
		return s.o.Client.Status().Update(ctx, &rel)
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
