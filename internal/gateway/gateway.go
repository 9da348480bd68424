// Package gateway routes requests for Workers by Host to the pods that serve
// them.
//
// Host <script>.<subdomain>.workers.localhost[:port] (or …workers.dev, for
// curl --connect-to) names an account by its workers subdomain and a script
// of it. The script's WorkerRelease gives the active deployment; each
// request picks one of its versions by percentage, then a ready pod of the
// account whose api.cf-worker/sockets annotation maps that version to a
// port, and is proxied to podIP:port. Pods are watched by the gateway
// itself (not reached through the Service: kube-proxy would add ~1.45 s to
// every deploy). The preview host <first 8 hex of a version id>-<script>…
// reaches that version whatever the deployment.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	randv2 "math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/metrics"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
)

// Host suffixes the gateway serves.
var hostSuffixes = []string{".workers.localhost", ".workers.dev"}

// withDot returns the domains as host suffixes: each with a leading dot.
func withDot(domains []string) []string {
	out := make([]string, 0, len(domains))
	for _, d := range domains {
		if d = strings.ToLower(strings.Trim(d, ".")); d != "" {
			out = append(out, "."+d)
		}
	}
	return out
}

// URL is where a script is served on the edge port.
func URL(script, subdomain string, edgePort int) string {
	host := script + "." + subdomain + ".workers.localhost"
	if edgePort > 0 {
		host += ":" + strconv.Itoa(edgePort)
	}
	return "http://" + host + "/"
}

// PodLister returns the pods of an account's bundles (label
// api.cf-worker/account=<id>). The gateway never modifies them.
type PodLister interface {
	// AccountPods lists the pods of account in namespace, the account's
	// own: pods elsewhere that carry its label are never trusted.
	AccountPods(ctx context.Context, namespace, account string) ([]corev1.Pod, error)
}

// ReaderPods lists pods from a client.Reader, typically the cache built by
// ClusterOptions.
type ReaderPods struct{ Reader client.Reader }

// AccountPods implements PodLister.
func (p ReaderPods) AccountPods(ctx context.Context, namespace, account string) ([]corev1.Pod, error) {
	var list corev1.PodList
	if err := p.Reader.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{apiv1.LabelAccount: account}); err != nil {
		return nil, fmt.Errorf("list pods of account %s: %w", account, err)
	}
	return list.Items, nil
}

// Options configure a Gateway.
type Options struct {
	// HostSuffixes are the domains under which Workers answer,
	// <script>.<subdomain>.<suffix>; nil: workers.localhost and
	// workers.dev.
	HostSuffixes []string
	// Accounts resolves workers subdomains to accounts.
	Accounts store.AccountSource
	// Reader reads WorkerReleases (and WorkerVersions, for preview hosts).
	Reader client.Reader
	// Pods lists the account pods.
	Pods PodLister
	// EdgePort is printed in the URLs of the 404 page when the request's
	// Host has no port.
	EdgePort int
	// Rand returns a number in [0,n); nil means math/rand/v2 (fast, not
	// cryptographic). Used for the percentage split and the pod choice.
	Rand func(n int) int
	// Transport reaches the pods; nil means NewTransport().
	Transport http.RoundTripper
	// AccountTTL is how long the subdomain → account table is reused; 0
	// means 2 s. An unknown subdomain refreshes it at once.
	AccountTTL time.Duration
	// Watched reports whether someone tails a script (tail.Hub.Watched);
	// the requests of such scripts go to the version's traced twin (in
	// the pod's loader host, or static at workerd.TracedPortOffset; see
	// loader.go), the others to the untraced Worker. nil: nobody ever
	// tails.
	Watched func(account, script string) bool
	// LocalSockets returns the host directory of a pod's socket volume
	// (apiv1.SocketVolume) when the pod runs on this host, or "" when it
	// does not: such pods are reached on their unix sockets, the others on
	// podIP:port. nil: always podIP:port. See NodeSockets.
	LocalSockets func(p *corev1.Pod) string
	// NodeStarted is when this host's node started (embedded mode). A pod
	// of the node (LocalSockets names its volume) whose containers all
	// started before then is what an earlier run left: its status still
	// shows that run's IP, which the node may have given another pod
	// since, and Ready. It gets no request until the kubelet reports it
	// again. Zero: no such check.
	NodeStarted time.Time
	// Stalls marks the bundle of a stalled pod (see WatchStalls), e.g.
	// BundleStalls; nil: stalled pods are only avoided.
	Stalls StallReporter
	// Kill ends a stalled pod once a request in it has run for its
	// version's CPU limit (see WatchStalls), e.g. DeletePods; nil: the
	// pod's liveness probe does, at the largest limit of the pod.
	Kill PodKiller
	// Changes lets the gateway reuse its routing work between changes of
	// the objects it reads (ClusterOptions sets it); nil: none is reused.
	Changes *Changes
	// NoLoader turns the redeploy fast path off (loader.go): a new
	// deployment is served once a pod runs it, the previous one until then.
	// Traced twins of the versions the loader runs still come from the
	// loader host: their images have no static twin.
	NoLoader bool
	// Assets reads the Workers' static assets (store.AssetFiles, best with
	// store.CachedManifests); nil:
	// assets-only Workers answer 503 and the others' requests go to the
	// Worker.
	Assets store.AssetReader
	// StartWait is how long a request waits for a pod of its script when
	// none serves it yet (a first deploy, the pod of a script with Durable
	// Objects being replaced) before the gateway answers 503 "starting";
	// at most MaxStartWaiters requests wait at once. 0: none waits.
	StartWait time.Duration
	// Metrics, when set, counts every request of an existing script by
	// version and minute (status class, latency); requests for hosts that
	// name no script are not counted, so the series stay bounded.
	Metrics *metrics.Recorder
	// Warm is the warm-start hosts (warm.go); nil: none.
	Warm *Warm
	Log  *slog.Logger
}

// DefaultStartWait is the StartWait octo's gateway runs with: longer than
// a bundle pod takes to be replaced on a busy 2-core machine.
const DefaultStartWait = 15 * time.Second

// MaxStartWaiters bounds the requests waiting for a pod (StartWait), and
// those waiting for the cache of a warm start (Starting); the others are
// answered 503 at once.
const MaxStartWaiters = 1024

// startPoll is how often a waiting request looks for a pod again.
const startPoll = 50 * time.Millisecond

// Gateway is the Workers gateway: an http.Handler for the hosts Handles
// accepts.
type Gateway struct {
	// suffixes end the Workers' hosts, each with its leading dot.
	suffixes   []string
	watched    func(account, script string) bool
	accounts   store.AccountSource
	reader     client.Reader
	pods       PodLister
	edgePort   int
	rand       func(n int) int
	log        *slog.Logger
	proxy      *httputil.ReverseProxy
	accountTTL time.Duration
	startWait  time.Duration
	waiters    chan struct{} // MaxStartWaiters slots
	logBudget  logBudget
	metrics    *metrics.Recorder

	snap      atomic.Pointer[accountSnapshot]
	refreshMu sync.Mutex

	socketsMu sync.RWMutex
	sockets   map[string]map[string]int // annotation value → parsed

	localSockets func(p *corev1.Pod) string
	nodeStarted  time.Time
	// socketDirs maps the host part of a local pod's addresses (localHost)
	// to its socket directory, open.
	dirsMu     sync.RWMutex
	socketDirs map[string]socketDir

	changes *Changes
	routes  routes

	noLoader bool
	// loadables memoises, by version ID, whether workerd.Loadable accepts
	// the version and its CPU limit (versions are immutable).
	loadableMu sync.Mutex
	loadables  map[string]loadability
	// announced holds the versions pickLoader logged.
	announced map[string]bool

	// loads holds a *podLoad per pod UID (stall.go).
	loads sync.Map
	// seenReady holds the UIDs of pods the gateway saw Ready (early.go).
	seenReady     sync.Map
	stallReporter StallReporter
	kill          PodKiller

	assets store.AssetReader
	files  fileCache

	// warmSockets and warmHeld are Options.Warm (warm.go); warmGone is
	// set once the hosts have retired.
	warmSockets []string
	warmHeld    map[warmKey]bool
	warmGone    atomic.Bool
}

type accountSnapshot struct {
	at     time.Time
	all    []store.Account
	claims store.SubdomainClaims
}

// ResponseHeaderTimeout is how long the gateway waits for a Worker's
// response headers once the request is sent: generous next to Cloudflare's
// 30 s of CPU per request, and Cloudflare's own 100 s proxy timeout (error
// 524). A streamed body may then take as long as it needs.
const ResponseHeaderTimeout = 100 * time.Second

// NewTransport returns the shared keep-alive transport to the pods. It
// never uses a proxy from the environment.
func NewTransport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: ResponseHeaderTimeout,
		DisableCompression:    true,
	}
}

// New returns a Gateway.
func New(opts Options) *Gateway {
	g := &Gateway{
		suffixes: hostSuffixes,
		accounts: opts.Accounts, reader: opts.Reader, pods: opts.Pods, edgePort: opts.EdgePort,
		rand: opts.Rand, log: opts.Log, accountTTL: opts.AccountTTL, watched: opts.Watched,
		sockets: map[string]map[string]int{}, localSockets: opts.LocalSockets, nodeStarted: opts.NodeStarted,
		socketDirs: map[string]socketDir{}, stallReporter: opts.Stalls, changes: opts.Changes, kill: opts.Kill,
		noLoader: opts.NoLoader, loadables: map[string]loadability{}, announced: map[string]bool{},
		routes: routes{pods: map[accountKey]podsEntry{}, resolved: map[hostKey]resolveEntry{}},
		assets: opts.Assets, files: fileCache{m: map[string]cachedFile{}},
		startWait: opts.StartWait, waiters: make(chan struct{}, MaxStartWaiters), metrics: opts.Metrics,
	}
	if opts.Warm != nil {
		g.warmSockets = opts.Warm.Sockets
		g.warmHeld = map[warmKey]bool{}
		for _, e := range opts.Warm.Entries {
			g.warmHeld[warmKey{e.Account, e.Script, e.Version}] = true
		}
	}
	if g.rand == nil {
		g.rand = randv2.IntN
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.accountTTL <= 0 {
		g.accountTTL = 2 * time.Second
	}
	base := opts.Transport
	if base == nil {
		tr := NewTransport()
		tr.DialContext = g.warmDialer(g.dialer(tr.DialContext))
		base = tr
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:      rewrite,
		Transport:    &retryTransport{base: base, log: g.log},
		ErrorHandler: g.proxyError,
		BufferPool:   bufferPool{},
		ErrorLog:     slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	if opts.HostSuffixes != nil {
		g.suffixes = withDot(opts.HostSuffixes)
	}
	return g
}

// Register implements edge.Registrar; the gateway adds no echo route, the
// edge dispatches its hosts to it before echo (HostHandler).
func (g *Gateway) Register(*echo.Echo) {}

// Handles reports whether host (with or without port) is a Workers host:
// *.workers.localhost or *.workers.dev.
func (g *Gateway) Handles(host string) bool {
	_, ok := hostLabels(host, g.suffixes)
	return ok
}

// hostLabels returns what precedes the workers suffix, lower-cased (without
// allocating when the host already is).
func hostLabels(host string, suffixes []string) (string, bool) {
	h := host
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	for _, suf := range suffixes {
		if rest, ok := strings.CutSuffix(h, suf); ok && rest != "" {
			return rest, true
		}
	}
	return "", false
}

// scriptHost splits a Workers host into its two labels, <first>.<sub>.
func scriptHost(host string, suffixes []string) (first, sub string, ok bool) {
	rest, ok := hostLabels(host, suffixes)
	if !ok {
		return "", "", false
	}
	first, sub, ok = strings.Cut(rest, ".")
	if !ok || first == "" || sub == "" || strings.Contains(sub, ".") {
		return "", "", false
	}
	return first, sub, true
}

// hostPort returns the port of a Host header, or fallback.
func hostPort(host string, fallback int) int {
	if _, p, err := net.SplitHostPort(host); err == nil {
		if n, err := strconv.Atoi(p); err == nil {
			return n
		}
	}
	return fallback
}

// target is what a request was routed to; the proxy's Rewrite and the
// retrying transport read it from the request context.
type target struct {
	script  string
	primary backend
	// alts are other pods that serve the deployment, for one retry.
	alts []backend
	ray  string
	// start is when the gateway began the request.
	start time.Time
}

type backend struct {
	pod     string // namespace/name
	addr    string // podIP:port
	version string
	load    *podLoad
	// limit is the version's CPU limit (apiv1.AnnotationCPULimits).
	limit time.Duration
	// loaderScript is set when addr is the pod's loader host: the script
	// whose version the host runs (loader.go).
	loaderScript string
	// trace is the Worker name of the traced twin the loader host runs
	// (workerd.LoaderTraceHeader); empty: untraced.
	trace string
	// untraced is, for a traced twin in the loader host, the address of the
	// same pod's untraced Worker: the retry should the host fail to load it.
	untraced string
	// loaderAccount is set when addr is a warm-start host (warm.go): the
	// account of the version, which such a host serves several of.
	loaderAccount string
}

type targetKey struct{}

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	first, sub, ok := scriptHost(r.Host, g.suffixes)
	if !ok {
		g.notFound(w, r, nil, "Workers hosts look like <script>.<subdomain>.workers.localhost.")
		return
	}
	acct, found, err := g.account(ctx, sub)
	var dup duplicateError
	if errors.As(err, &dup) {
		text(w, http.StatusConflict, dup.Error())
		return
	}
	if err != nil {
		g.fail(w, err)
		return
	}
	if !found {
		g.notFound(w, r, nil, fmt.Sprintf("No account has the workers subdomain %q.", sub))
		return
	}
	rt, err := g.cachedResolve(ctx, acct, first)
	script, deployments, preview := rt.script, rt.deployments, rt.preview
	if err != nil {
		var nf notFoundError
		if errors.As(err, &nf) {
			g.notFound(w, r, &acct, string(nf))
			return
		}
		g.fail(w, err)
		return
	}
	version := "" // the version that answers, for the metrics
	w, observed := g.observe(w, r, acct.ID, script, &version)
	defer observed()
	if len(deployments) > 0 && len(deployments[0]) > 0 {
		// Static assets answer first, from the version the request gets;
		// in a deployment with assets, the Worker of that same version
		// answers the rest (an assets-only version has no pod).
		chosen := g.pickVersion(deployments[0])
		info := g.loadability(ctx, acct, script, chosen)
		if info.assets != nil && g.serveAssets(w, r, acct, info) {
			version = chosen
			return
		}
		withAssets := info.assets != nil
		for _, v := range deployments[0] {
			withAssets = withAssets || g.loadability(ctx, acct, script, v.VersionID).assets != nil
		}
		if withAssets {
			deployments = append([][]apiv1.VersionTraffic{{{VersionID: chosen, Percentage: 100}}}, deployments[1:]...)
		}
	}
	// Traced while someone tails, and for the sampled share of a script
	// whose logs are kept (Workers Logs): its trace events reach the
	// collector.
	traced := (g.watched != nil && g.watched(acct.ID, script)) ||
		(rt.logged > 0 && float64(g.rand(1<<20)) < rt.logged*(1<<20) && g.logBudget.take(acct.ID+"/"+script, time.Now()))
	// A warm start's hosts serve what they hold until they retire, while
	// the pods yield the CPU (warm.go); a traced request goes to a pod
	// when one serves, for the hosts trace nothing.
	var t *target
	if !traced {
		t = g.pickWarm(acct, script, deployments)
	}
	if t == nil {
		t, err = g.pick(ctx, acct, script, deployments, preview, traced)
	}
	if err == nil && t == nil && traced {
		t = g.pickWarm(acct, script, deployments)
	}
	if err == nil && t == nil {
		t, err = g.waitForPod(ctx, func() (*target, error) { return g.pick(ctx, acct, script, deployments, preview, traced) })
	}
	if err != nil {
		g.fail(w, err)
		return
	}
	if t == nil {
		w.Header().Set("Retry-After", "1")
		msg := "worker " + script + " is starting; retry in a moment"
		if preview {
			msg = "worker " + script + " version " + deployments[0][0].VersionID + " is not running yet; retry in a moment"
		}
		text(w, http.StatusServiceUnavailable, msg)
		return
	}
	version = t.primary.version
	g.forward(w, r, t)
}

// observe counts, once the request is answered (when the returned func is
// called), its status and latency under account, script and *version, the
// version that answered (Options.Metrics); without metrics it returns w.
func (g *Gateway) observe(w http.ResponseWriter, r *http.Request, account, script string, version *string) (http.ResponseWriter, func()) {
	if g.metrics == nil {
		return w, func() {}
	}
	sw := &statusWriter{ResponseWriter: w}
	start := time.Now()
	upgrade := r.Header.Get("Upgrade") != ""
	return sw, func() {
		status, took := sw.Status(), time.Since(start)
		if upgrade && sw.status == 0 { // hijacked: the proxy wrote 101 on the connection
			status, took = http.StatusSwitchingProtocols, -1
		}
		g.metrics.Observe(metrics.Key{Account: account, Script: script, Version: *version}, status, took)
	}
}

// forward proxies r to t, with a new ray ID, counted in its pod's load.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, t *target) {
	t.ray, t.start = ray(), time.Now()
	w.Header().Set("Cf-Ray", t.ray)
	req := g.begin(t.primary.load, t.start, t.primary.limit)
	defer g.end(t.primary.load, req)
	g.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, t)))
}

// MaxLoggedPerSecond bounds the invocations of one script logged per
// second (Workers Logs): past it, requests take the untraced Worker. A
// traced invocation costs the pod memory until its events are posted; at
// ~1,400 logged requests/s a pod's workerd outgrew its limit within
// seconds (docs/benchmarks.md, issue 16).
const MaxLoggedPerSecond = 100

// logBudget is a token bucket of MaxLoggedPerSecond per script.
type logBudget struct {
	mu      sync.Mutex
	buckets map[string]*logBucket
}

type logBucket struct {
	tokens float64
	at     time.Time
}

// take spends one logged invocation of key at now, if the bucket has one.
func (b *logBudget) take(key string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buckets == nil || len(b.buckets) > 10_000 {
		b.buckets = map[string]*logBucket{}
	}
	k := b.buckets[key]
	if k == nil {
		k = &logBucket{tokens: MaxLoggedPerSecond, at: now}
		b.buckets[key] = k
	}
	k.tokens = min(MaxLoggedPerSecond, k.tokens+now.Sub(k.at).Seconds()*MaxLoggedPerSecond)
	k.at = now
	if k.tokens < 1 {
		return false
	}
	k.tokens--
	return true
}

// waitForPod calls pick until it finds a target, for up to StartWait, while
// the client waits and a waiter slot is free; nil when none turned up.
func (g *Gateway) waitForPod(ctx context.Context, pick func() (*target, error)) (*target, error) {
	if g.startWait <= 0 {
		return nil, nil
	}
	select {
	case g.waiters <- struct{}{}:
		defer func() { <-g.waiters }()
	default:
		return nil, nil
	}
	deadline := time.NewTimer(g.startWait)
	defer deadline.Stop()
	tick := time.NewTicker(startPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, nil
		case <-deadline.C:
			return nil, nil
		case <-tick.C:
		}
		if t, err := pick(); err != nil || t != nil {
			return t, err
		}
	}
}

// notFoundError is a 404 with its explanation.
type notFoundError string

func (e notFoundError) Error() string { return string(e) }

// resolve finds what a host's first label names: a script's deployments,
// newest first (the active one, then the ones it replaced, which serve while
// the new one rolls out), or a preview of one version.
func (g *Gateway) resolve(ctx context.Context, a store.Account, first string) (route, error) {
	rel, err := store.ReadRelease(ctx, g.reader, a, first)
	if err != nil {
		return route{}, err
	}
	if rel != nil {
		d := rel.ActiveDeployment()
		if d == nil || len(d.Versions) == 0 {
			return route{}, notFoundError(fmt.Sprintf("Worker %q has no active deployment; deploy a version with `wrangler deploy` or `wrangler versions deploy`.", first))
		}
		r := route{script: first, logged: rel.Spec.Observability.SamplingRate()}
		for _, dep := range rel.Spec.Deployments {
			if len(dep.Versions) > 0 {
				r.deployments = append(r.deployments, dep.Versions)
			}
		}
		return r, nil
	}
	prefix, name, ok := previewLabel(first)
	if !ok {
		return route{}, notFoundError(fmt.Sprintf("There is no Worker %q in account %s.", first, a.Name))
	}
	rel, err = store.ReadRelease(ctx, g.reader, a, name)
	if err != nil {
		return route{}, err
	}
	if rel == nil {
		return route{}, notFoundError(fmt.Sprintf("There is no Worker %q (nor %q) in account %s.", first, name, a.Name))
	}
	id, err := g.findVersion(ctx, a, rel, prefix)
	if err != nil {
		return route{}, err
	}
	if id == "" {
		return route{}, notFoundError(fmt.Sprintf("Worker %q has no version starting with %s.", name, prefix))
	}
	return route{script: name, deployments: [][]apiv1.VersionTraffic{{{VersionID: id, Percentage: 100}}}, preview: true,
		logged: rel.Spec.Observability.SamplingRate()}, nil
}

// route is what a Host resolves to: the script, its deployments (the
// active one first, then the previous ones, for requests while pods start),
// whether it is a preview host (one version), and the share of its
// invocations whose logs are kept (Workers Logs: those go to the traced
// Worker).
type route struct {
	script      string
	deployments [][]apiv1.VersionTraffic
	preview     bool
	logged      float64
}

// previewLabel splits "<8 hex>-<script>".
func previewLabel(label string) (prefix, script string, ok bool) {
	if len(label) < 10 || label[8] != '-' {
		return "", "", false
	}
	for _, c := range label[:8] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", "", false
		}
	}
	return label[:8], label[9:], true
}

// findVersion returns the ID of the script's version starting with prefix:
// from the deployments first, then from the WorkerVersions.
func (g *Gateway) findVersion(ctx context.Context, a store.Account, rel *apiv1.WorkerRelease, prefix string) (string, error) {
	for _, d := range rel.Spec.Deployments {
		for _, v := range d.Versions {
			if strings.HasPrefix(v.VersionID, prefix) {
				return v.VersionID, nil
			}
		}
	}
	versions, err := store.ReadVersions(ctx, g.reader, a, rel.Spec.ScriptName)
	if err != nil {
		return "", err
	}
	for _, v := range versions {
		if strings.HasPrefix(v.Spec.VersionID, prefix) {
			return v.Spec.VersionID, nil
		}
	}
	return "", nil
}

// knows reports whether the snapshot has an answer for sub.
func (s *accountSnapshot) knows(sub string) bool {
	_, ok := s.claims.BySubdomain[sub]
	return ok || s.claims.Subdomains[sub] != nil
}

// duplicateError refuses a subdomain (or the account ID behind it) that
// more than one WorkerAccount claims.
type duplicateError struct {
	what       string
	namespaces []string
}

func (e duplicateError) Error() string {
	return fmt.Sprintf("%s is claimed by WorkerAccounts in namespaces %s; octo serves it once only one claims it", e.what, strings.Join(e.namespaces, ", "))
}

// account returns the account of a workers subdomain.
func (g *Gateway) account(ctx context.Context, sub string) (store.Account, bool, error) {
	s := g.snap.Load()
	if s == nil || time.Since(s.at) >= g.accountTTL || !s.knows(sub) {
		var err error
		if s, err = g.refreshAccounts(ctx); err != nil {
			return store.Account{}, false, err
		}
	}
	if ns := s.claims.Subdomains[sub]; ns != nil {
		return store.Account{}, false, duplicateError{what: "workers subdomain " + strconv.Quote(sub), namespaces: ns}
	}
	a, ok := s.claims.BySubdomain[sub]
	if ok {
		if ns := s.claims.IDs[a.ID]; ns != nil {
			return store.Account{}, false, duplicateError{what: "account " + a.ID, namespaces: ns}
		}
	}
	return a, ok, nil
}

// refreshAccounts reloads the subdomain table, once for concurrent callers.
func (g *Gateway) refreshAccounts(ctx context.Context) (*accountSnapshot, error) {
	start := time.Now()
	g.refreshMu.Lock()
	defer g.refreshMu.Unlock()
	if s := g.snap.Load(); s != nil && s.at.After(start) {
		return s, nil // refreshed while we waited
	}
	all, err := g.accounts.Accounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	s := &accountSnapshot{at: time.Now(), all: all, claims: store.ClaimSubdomains(all)}
	claimed := len(s.claims.Subdomains)+len(s.claims.IDs) > 0
	if prev := g.snap.Load(); claimed && (prev == nil || fmt.Sprint(prev.claims.Subdomains, prev.claims.IDs) != fmt.Sprint(s.claims.Subdomains, s.claims.IDs)) {
		g.log.Warn("gateway: WorkerAccounts claim the same subdomain or account ID; those are not served",
			"subdomains", s.claims.Subdomains, "accountIDs", s.claims.IDs)
	}
	g.snap.Store(s)
	return s, nil
}

// pod is a ready pod with its sockets.
type pod struct {
	name    string
	ip      string
	sockets map[string]int
	// local is the host part of the addresses of a pod on this host,
	// reached on its unix sockets (localHost); "" for the pod network.
	local string
	load  *podLoad
	// limits are the CPU limits of the versions that have their own, in ms.
	limits map[string]int
}

// limit is the CPU limit of version in this pod.
func (p pod) limit(version string) time.Duration {
	if ms, ok := p.limits[version]; ok && ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return apiv1.DefaultCPULimit
}

// addr is the address the transport dials for the socket on port.
func (p pod) addr(port int) string {
	if p.local != "" {
		return net.JoinHostPort(p.local, strconv.Itoa(port))
	}
	return net.JoinHostPort(p.ip, strconv.Itoa(port))
}

// readyPods returns the account's ready, not terminating pods, and the
// local pods that already serve on their sockets before the kubelet reports
// them ready (early.go). starting reports whether some local pod may yet
// start serving so.
func (g *Gateway) readyPods(ctx context.Context, a store.Account) (out []pod, starting bool, err error) {
	pods, err := g.pods.AccountPods(ctx, a.Namespace, a.ID)
	if err != nil {
		return nil, false, err
	}
	out = make([]pod, 0, len(pods))
	for i := range pods {
		p := &pods[i]
		s := g.parseSockets(p.Annotations[apiv1.AnnotationSockets])
		if len(s) == 0 {
			continue
		}
		local := ""
		if g.earlierRun(p) {
			continue // until the kubelet reports its new containers
		}
		if podReady(p) {
			g.seenReady.Store(p.UID, struct{}{})
			local = g.localHost(p)
		} else {
			var serving, maybe bool
			if local, serving, maybe = g.earlyReady(p, s); !serving {
				starting = starting || maybe
				continue
			}
		}
		out = append(out, pod{name: p.Namespace + "/" + p.Name, ip: p.Status.PodIP, sockets: s, local: local, load: g.load(p),
			limits: g.parseSockets(p.Annotations[apiv1.AnnotationCPULimits])})
	}
	return out, starting, nil
}

// earlierRun reports whether p is a pod of this host's node from before
// the node started (Options.NodeStarted). A pod created since is not,
// whatever its containers' state (early.go routes to it before the kubelet
// reports them).
func (g *Gateway) earlierRun(p *corev1.Pod) bool {
	if g.nodeStarted.IsZero() || g.localSockets == nil || g.localSockets(p) == "" {
		return false
	}
	since := g.nodeStarted.Truncate(time.Second) // timestamps have seconds only
	if !p.CreationTimestamp.Time.Before(since) {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if r := c.State.Running; r != nil && !r.StartedAt.Time.Before(since) {
			return false
		}
	}
	return true
}

func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.PodIP == "" || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// parseSockets decodes the sockets annotation, memoised by value.
func (g *Gateway) parseSockets(v string) map[string]int {
	if v == "" {
		return nil
	}
	g.socketsMu.RLock()
	s, ok := g.sockets[v]
	g.socketsMu.RUnlock()
	if ok {
		return s
	}
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		g.log.Warn("bad sockets annotation", "value", v, "err", err)
		s = nil
	}
	g.socketsMu.Lock()
	if len(g.sockets) > 1024 {
		g.sockets = map[string]map[string]int{}
	}
	g.sockets[v] = s
	g.socketsMu.Unlock()
	return s
}

// pick chooses, in the newest deployment that a ready pod serves, the
// version (by percentage) and a pod serving it, the traced twin's socket
// when traced: until a new deployment's pods are ready, the pod of the
// deployment it replaced runs the new version in its loader host when it
// can (pickLoader), or else keeps answering with the old one, so a redeploy
// drops no request. nil means nothing serves the script yet.
func (g *Gateway) pick(ctx context.Context, a store.Account, script string, deployments [][]apiv1.VersionTraffic, preview, traced bool) (*target, error) {
	pods, err := g.cachedReadyPods(ctx, a)
	if err != nil {
		return nil, err
	}
	// A traced request for a version the loader host runs goes to the
	// host, which loads its traced twin (loader.go); other versions have a
	// static twin at port + workerd.TracedPortOffset.
	var tracedByLoader func(version string) bool
	if traced {
		tracedByLoader = func(version string) bool { return g.loadable(ctx, a, script, version) }
	}
	for i, versions := range deployments {
		if t := g.pickIn(pods, script, versions, preview, tracedByLoader); t != nil {
			if i > 0 && !preview {
				if lt := g.pickLoader(ctx, a, script, deployments[0], pods, t, traced); lt != nil {
					return lt, nil
				}
			}
			return t, nil
		}
	}
	return nil, nil
}

// pickIn is pick within one deployment; tracedByLoader is nil for an
// untraced request.
func (g *Gateway) pickIn(pods []pod, script string, versions []apiv1.VersionTraffic, preview bool, tracedByLoader func(version string) bool) *target {
	chosen := g.pickVersion(versions)
	order := []string{chosen}
	if !preview {
		for _, v := range versions {
			if v.VersionID != chosen {
				order = append(order, v.VersionID)
			}
		}
	}
	// cands serve the first version in order that any pod serves; rest
	// serve the deployment's other versions (retry targets only).
	var cands, rest []backend
	for _, id := range order {
		viaLoader := tracedByLoader != nil && tracedByLoader(id)
		for _, p := range pods {
			if port, ok := p.sockets[id]; ok && validPort(port) {
				b := backend{pod: p.name, addr: p.addr(port), version: id, load: p.load, limit: p.limit(id)}
				switch lp, ok := p.sockets[workerd.LoaderWorkerName]; {
				case viaLoader && ok && validPort(lp):
					b.addr, b.loaderScript, b.trace, b.untraced = p.addr(lp), script, workerd.ServiceName(script, id), b.addr
				case tracedByLoader != nil:
					b.addr = p.addr(port + workerd.TracedPortOffset)
				}
				if len(cands) == 0 || cands[0].version == id {
					cands = append(cands, b)
				} else {
					rest = append(rest, b)
				}
			}
		}
	}
	if len(cands) == 0 {
		return nil
	}
	cands = g.avoidStalled(cands)
	i := 0
	if len(cands) > 1 {
		i = g.rand(len(cands))
	}
	t := &target{script: script, primary: cands[i]}
	if u := t.primary.untraced; u != "" {
		// A failed traced load answers untraced rather than not at all.
		t.alts = append(t.alts, backend{pod: t.primary.pod, addr: u, version: t.primary.version, load: t.primary.load, limit: t.primary.limit})
	}
	for j, b := range cands {
		if j != i && b.pod != t.primary.pod {
			t.alts = append(t.alts, b)
		}
	}
	for _, b := range rest {
		if b.pod != t.primary.pod {
			t.alts = append(t.alts, b)
		}
	}
	return t
}

// pickVersion picks a version by percentage.
func (g *Gateway) pickVersion(vs []apiv1.VersionTraffic) string {
	total := 0
	for _, v := range vs {
		total += max(int(v.Percentage), 0)
	}
	if total <= 0 {
		return vs[0].VersionID
	}
	n := g.rand(total)
	for _, v := range vs {
		p := max(int(v.Percentage), 0)
		if n < p {
			return v.VersionID
		}
		n -= p
	}
	return vs[len(vs)-1].VersionID
}

// deployed returns the URLs of an account's scripts that have an active
// deployment, sorted.
func (g *Gateway) deployed(ctx context.Context, a store.Account, port int) []string {
	var list apiv1.WorkerReleaseList
	if err := g.reader.List(ctx, &list, client.InNamespace(a.Namespace), client.MatchingLabels{apiv1.LabelAccount: a.ID}); err != nil {
		g.log.Warn("list releases", "account", a.ID, "err", err)
		return nil
	}
	var out []string
	for i := range list.Items {
		rel := &list.Items[i]
		if rel.Spec.AccountID == a.ID && rel.DeletionTimestamp == nil && rel.ActiveDeployment() != nil {
			out = append(out, URL(rel.Spec.ScriptName, a.Subdomain, port))
		}
	}
	sort.Strings(out)
	return out
}

func (g *Gateway) fail(w http.ResponseWriter, err error) {
	g.log.Error("gateway", "err", err)
	text(w, http.StatusInternalServerError, "octo gateway error: "+err.Error())
}

func text(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = fmt.Fprintln(w, msg)
}

// ray returns a cf-ray value: 16 hex digits and a location.
func ray() string {
	var b [21]byte
	const hexDigits = "0123456789abcdef"
	n := randv2.Uint64()
	for i := 15; i >= 0; i-- {
		b[i] = hexDigits[n&0xf]
		n >>= 4
	}
	copy(b[16:], "-OCTO")
	return string(b[:])
}

// statusWriter remembers the status of the response it writes; Unwrap lets
// http.ResponseController reach the connection (flushes, upgrades).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	// Informational answers come before the final one; 101 is final.
	if s.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap returns the writer it wraps.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Status is the status written, 200 when none was.
func (s *statusWriter) Status() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}
