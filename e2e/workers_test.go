//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv1 "github.com/octohq/octo/api/v1"
)

// serveTimeout bounds how long a deploy may take to answer: image build,
// pull and pod start.
const serveTimeout = 3 * time.Minute

// gatewayClient talks to Workers through octo's edge port with the Host of
// the URL wrangler printed, mapped to localhost.
type gatewayClient struct {
	edge      string // host:port of the edge server
	subdomain string
	http      *http.Client
}

func newGatewayClient(t *testing.T, vars map[string]string) *gatewayClient {
	t.Helper()
	u, err := url.Parse(vars["CLOUDFLARE_API_BASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	return &gatewayClient{edge: u.Host, subdomain: "octo", http: &http.Client{Timeout: 10 * time.Second}}
}

// host is the Worker's local host name, as `octo url` prints it.
func (g *gatewayClient) host(script string) string {
	_, port, _ := strings.Cut(g.edge, ":")
	return script + "." + g.subdomain + ".workers.localhost:" + port
}

// get requests path of script and returns status and body.
func (g *gatewayClient) get(script, path string) (int, string, error) {
	return g.do(http.MethodGet, g.host(script), path)
}

func (g *gatewayClient) do(method, host, path string) (int, string, error) {
	req, err := http.NewRequest(method, "http://"+g.edge+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := g.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitBody polls until script answers 200 with want at path.
func (g *gatewayClient) waitBody(t *testing.T, script, path, want string) time.Duration {
	t.Helper()
	t0 := time.Now()
	var last string
	for time.Since(t0) < serveTimeout {
		code, body, err := g.get(script, path)
		if err == nil && code == http.StatusOK && body == want {
			return time.Since(t0)
		}
		last = fmt.Sprintf("%d %q %v", code, body, err)
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s%s did not answer %q within %s; last answer: %s", g.host(script), path, want, serveTimeout, last)
	return 0
}

func expected(t *testing.T, project string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "workers", project, "expect.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestWorkers deploys the corpus with the real wrangler and checks that every
// Worker answers through the gateway, that gradual deployments, rollbacks,
// redeploys, secrets, KV and tail behave, that a broken Worker is refused
// without hurting the others, and that everything serves again after
// `octo down` + `octo up`.
func TestWorkers(t *testing.T) {
	// Four scripts per bundle: the corpus spans three bundles, as a big
	// account spans many.
	e := bootOcto(t, "--workers-per-bundle=4")
	vars := parseEnv(t, e.mustOcto("env"))
	w := newWranglerFor(t, vars, wranglerLatest) // what most people run; TestWrangler covers the others

	g := newGatewayClient(t, vars)
	work := t.TempDir()
	dirs := map[string]string{}
	deploy := func(t *testing.T, project string) string {
		t.Helper()
		dir, ok := dirs[project]
		if !ok {
			dir = copyProject(t, project, filepath.Join(work, project))
			dirs[project] = dir
		}
		return versionID(t, w.must(t, dir, "", "deploy"), "Current Version ID:")
	}

	var mykv string
	t.Run("deploy-and-serve", func(t *testing.T) {
		mykv = w.createNamespace(t, work, "e2e-workers-mykv")
		for _, p := range []string{"esm", "service-worker", "bundled-text", "no-bundle", "wasm", "nodejs-compat", "vars", "secret", "kv", "hono"} {
			dir := copyProject(t, p, filepath.Join(work, p))
			dirs[p] = dir
			switch p {
			case "kv":
				cfg := filepath.Join(dir, "wrangler.toml")
				b, _ := os.ReadFile(cfg)
				if err := os.WriteFile(cfg, bytes.ReplaceAll(b, []byte("__MYKV_ID__"), []byte(mykv)), 0o644); err != nil {
					t.Fatal(err)
				}
			case "hono": // esbuild resolves hono from the e2e package's node_modules
				nm, _ := filepath.Abs("node_modules")
				if err := os.Symlink(nm, filepath.Join(dir, "node_modules")); err != nil {
					t.Fatal(err)
				}
			}
			deploy(t, p)
			if p == "secret" {
				w.must(t, dir, "s3cr3t-e2e-value", "secret", "put", "API_KEY")
			}
		}
		for _, p := range []string{"esm", "service-worker", "bundled-text", "no-bundle", "wasm", "nodejs-compat", "vars", "secret", "kv", "hono"} {
			took := g.waitBody(t, "e2e-"+p, "/", expected(t, p))
			t.Logf("e2e-%s answers after %s", p, took.Round(time.Millisecond))
		}
		if code, body, err := g.get("e2e-hono", "/hello/octo"); err != nil || code != 200 || body != `{"hello":"octo"}` {
			t.Errorf("hono route /hello/octo = %d %q %v", code, body, err)
		}
		// The workers.dev name wrangler printed works too (curl --connect-to style).
		_, port, _ := strings.Cut(g.edge, ":")
		if code, body, err := g.do(http.MethodGet, "e2e-esm.octo.workers.dev:"+port, "/"); err != nil || code != 200 || body != "hello from esm" {
			t.Errorf("workers.dev host = %d %q %v", code, body, err)
		}
		if code, body, _ := g.do(http.MethodGet, "nope.octo.workers.localhost:"+port, "/"); code != http.StatusNotFound || !strings.Contains(body, "nope") {
			t.Errorf("unknown worker = %d %q, want a 404 page naming it", code, body)
		}
		if out := e.mustOcto("url", "e2e-esm"); !strings.Contains(out, g.host("e2e-esm")) {
			t.Errorf("octo url e2e-esm printed %q, want %s", out, g.host("e2e-esm"))
		}
	})

	t.Run("gradual-and-rollback", func(t *testing.T) {
		dir := dirs["esm"]
		a := deployedVersion(t, w, dir)
		src := filepath.Join(dir, "src", "index.js")
		b0, _ := os.ReadFile(src)
		if err := os.WriteFile(src, bytes.ReplaceAll(b0, []byte(`"hello from esm"`), []byte(`"hello from esm v2"`)), 0o644); err != nil {
			t.Fatal(err)
		}
		up := w.must(t, dir, "", "versions", "upload", "--message", "v2")
		b := versionID(t, up, "Worker Version ID:")
		// The preview URL wrangler prints serves the uploaded version before any deployment.
		preview := b[:8] + "-e2e-esm"
		if !strings.Contains(up, preview+".octo.workers.dev") {
			t.Errorf("versions upload printed no preview URL for %s:\n%s", preview, up)
		}
		g.waitBody(t, preview, "/", "hello from esm v2")
		if _, body, _ := g.get("e2e-esm", "/"); body != "hello from esm" {
			t.Errorf("before versions deploy the worker answers %q, want the deployed version", body)
		}
		w.must(t, dir, "", "versions", "deploy", a+"@30%", b+"@70%", "--yes")
		// Wait until the new version serves, then count.
		deadline := time.Now().Add(serveTimeout)
		for {
			if _, body, _ := g.get("e2e-esm", "/"); body == "hello from esm v2" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("version B never answered after versions deploy")
			}
			time.Sleep(200 * time.Millisecond)
		}
		counts := map[string]int{}
		for i := 0; i < 200; i++ {
			code, body, err := g.get("e2e-esm", "/")
			if err != nil || code != 200 {
				t.Fatalf("request %d: %d %v", i, code, err)
			}
			counts[body]++
		}
		t.Logf("30/70 split over 200 requests: %v", counts)
		if pa := counts["hello from esm"] * 100 / 200; pa < 20 || pa > 40 {
			t.Errorf("version A answered %d%% of requests, want 30%% ± 10", pa)
		}
		if pb := counts["hello from esm v2"] * 100 / 200; pb < 60 || pb > 80 {
			t.Errorf("version B answered %d%% of requests, want 70%% ± 10", pb)
		}
		w.must(t, dir, "", "rollback", a, "--message", "back", "--yes")
		waitStable(t, g, "e2e-esm", "hello from esm", 20)
	})

	t.Run("redeploy-drops-nothing", func(t *testing.T) {
		dir := dirs["esm"]
		src := filepath.Join(dir, "src", "index.js")
		b0, _ := os.ReadFile(src)
		body := strings.NewReplacer(`"hello from esm v2"`, `"hello from esm v3"`, `"hello from esm"`, `"hello from esm v3"`).Replace(string(b0))
		if err := os.WriteFile(src, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		p := startPoller(g, "e2e-esm", 10*time.Millisecond, func(body string) bool { return true })
		id := deploy(t, "esm")
		waitStable(t, g, "e2e-esm", "hello from esm v3", 20)
		time.Sleep(3 * time.Second) // the old pod's termination
		bad, total, first := p.stop()
		t.Logf("requests during redeploy: %d, failed: %d", total, bad)
		if bad != 0 {
			t.Errorf("%d of %d requests failed during the redeploy; first: %v", bad, total, first)
		}
		// Both paths served v3: the old pod's loader host at once (ADR
		// 0007; the gateway logs it once per version), then v3's own pod.
		log, _ := os.ReadFile(e.cfg.ComponentLogPath("gateway"))
		if !slices.ContainsFunc(strings.Split(string(log), "\n"), func(l string) bool {
			return strings.Contains(l, "the loader serves a new version") && strings.Contains(l, id)
		}) {
			t.Errorf("the gateway never sent version %s to a loader host (fast path); %s has no line for it", id, e.cfg.ComponentLogPath("gateway"))
		}
		served := false
		for _, pod := range bundlePods(t, e) {
			served = served || strings.Contains(pod.Annotations[apiv1.AnnotationSockets], id)
		}
		if !served {
			t.Errorf("no bundle pod serves version %s statically after the rollout", id)
		}
	})

	t.Run("deploy-restarts-one-bundle", func(t *testing.T) {
		before := bundlePods(t, e)
		id := deployedVersion(t, w, dirs["esm"])
		mine := ""
		for _, p := range before {
			if strings.Contains(p.Annotations[apiv1.AnnotationSockets], id) {
				mine = p.Labels[apiv1.LabelBundle]
			}
		}
		others := 0
		for _, p := range before {
			if p.Labels[apiv1.LabelBundle] != mine {
				others++
			}
		}
		if mine == "" || others == 0 {
			t.Fatalf("want e2e-esm's bundle and pods of other bundles; esm's bundle %q, pods %d", mine, len(before))
		}
		src := filepath.Join(dirs["esm"], "src", "index.js")
		b0, _ := os.ReadFile(src)
		if err := os.WriteFile(src, bytes.ReplaceAll(b0, []byte(`"hello from esm v3"`), []byte(`"hello from esm v4"`)), 0o644); err != nil {
			t.Fatal(err)
		}
		deploy(t, "esm")
		g.waitBody(t, "e2e-esm", "/", "hello from esm v4")
		after := bundlePods(t, e)
		for name, p := range before {
			if p.Labels[apiv1.LabelBundle] == mine {
				continue
			}
			q, ok := after[name]
			if !ok || q.UID != p.UID || restarts(q) != restarts(p) {
				t.Errorf("pod %s of bundle %s was replaced or restarted by a deploy into bundle %s", name, p.Labels[apiv1.LabelBundle], mine)
			}
		}
		if err := os.WriteFile(src, b0, 0o644); err != nil { // back to v3 for the later subtests
			t.Fatal(err)
		}
		deploy(t, "esm")
		g.waitBody(t, "e2e-esm", "/", "hello from esm v3")
	})

	t.Run("broken-worker-is-refused", func(t *testing.T) {
		dir := copyProject(t, "broken", filepath.Join(work, "broken"))
		stdout, stderr, code := w.wrangler(t, dir, "", "deploy")
		if code == 0 {
			t.Fatalf("deploying a worker that throws at startup succeeded:\n%s", stdout)
		}
		if !strings.Contains(stdout+stderr, "broken on purpose") {
			t.Errorf("wrangler did not print the runtime's message:\n%s\n%s", stdout, stderr)
		}
		if code, body, _ := g.get("e2e-vars", "/"); code != 200 || body != expected(t, "vars") {
			t.Errorf("another worker stopped serving after the broken upload: %d %q", code, body)
		}
	})

	t.Run("secret-reaches-worker", func(t *testing.T) {
		w.must(t, dirs["secret"], "rotated-value", "secret", "put", "API_KEY")
		g.waitBody(t, "e2e-secret", "/", "rotated-value")
	})

	t.Run("kv-both-directions", func(t *testing.T) {
		dir := dirs["kv"]
		w.must(t, dir, "", "kv", "key", "put", "--namespace-id="+mykv, "fromapi", "api-value", "--remote")
		g.waitBody(t, "e2e-kv", "/?key=fromapi", "api-value")
		// GET / makes the worker write "greeting"; the API must read it.
		g.waitBody(t, "e2e-kv", "/", expected(t, "kv"))
		if out := w.must(t, dir, "", "kv", "key", "get", "--namespace-id="+mykv, "greeting", "--remote"); strings.TrimSpace(out) != "hello-kv" {
			t.Errorf("kv key get greeting = %q, want the value the worker wrote", out)
		}
	})

	t.Run("tail", func(t *testing.T) {
		checkTail(t, w, g, dirs["esm"], "e2e-esm")
	})

	t.Run("soak-without-restarts", func(t *testing.T) {
		before := workerdRestarts(t, e)
		const n, conns = 50_000, 16
		var sent, failed atomic.Int64
		var wg sync.WaitGroup
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}, Timeout: 10 * time.Second}
		for range conns {
			wg.Go(func() {
				for sent.Add(1) <= n {
					req, _ := http.NewRequest(http.MethodGet, "http://"+g.edge+"/soak", nil)
					req.Host = g.host("e2e-esm")
					resp, err := c.Do(req)
					if err != nil {
						failed.Add(1)
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if f := failed.Load(); f > 0 {
			t.Errorf("%d of %d requests failed", f, n)
		}
		if after := workerdRestarts(t, e); after != before {
			t.Errorf("workerd restarted %d times during %d requests", after-before, n)
		}
	})

	t.Run("runaway-request", func(t *testing.T) {
		deploy(t, "spin")
		g.waitBody(t, "e2e-spin", "/", "spin idle")
		spinVersion := deployedVersion(t, w, dirs["spin"])
		// wrangler sent limits.cpu_ms; the version carries it.
		var limits *apiv1.VersionLimits
		for _, v := range newCluster(t, vars).versions(t, "e2e-spin") {
			if v.Spec.VersionID == spinVersion {
				limits = v.Spec.Limits
			}
		}
		if limits == nil || limits.CPUMs != 12000 {
			t.Fatalf("version %s limits %+v, want cpu_ms 12000 from wrangler.toml", spinVersion, limits)
		}
		spinBundle, esmBundle := bundleOf(t, e, spinVersion), bundleOf(t, e, deployedVersion(t, w, dirs["esm"]))
		// A Worker that shares e2e-spin's process (bundles of four, in
		// upload order: kv and hono).
		neighbour := ""
		for _, proj := range []string{"kv", "hono", "wasm", "vars"} {
			if bundleOf(t, e, deployedVersion(t, w, dirs[proj])) == spinBundle {
				neighbour = proj
				break
			}
		}
		if neighbour == "" {
			t.Fatalf("no Worker of the corpus shares bundle %s with e2e-spin", spinBundle)
		}
		// e2e-esm lives in another bundle: it must answer throughout.
		p := startPoller(g, "e2e-esm", 50*time.Millisecond, func(body string) bool { return strings.HasPrefix(body, "hello from esm") })
		// The neighbour must answer again while the runaway request still
		// spins: from the surge pod the stalled bundle gets.
		var spinning atomic.Bool
		spinning.Store(true)
		var answeredWhileSpinning atomic.Int64
		stopN := make(chan struct{})
		nDone := make(chan struct{})
		go func() {
			defer close(nDone)
			time.Sleep(2 * time.Second) // the runaway request holds the process by now
			for {
				select {
				case <-stopN:
					return
				default:
				}
				code, body, _ := g.get("e2e-"+neighbour, "/")
				if code == 200 && body == expected(t, neighbour) && spinning.Load() {
					answeredWhileSpinning.Add(1)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		c := &http.Client{Timeout: 2 * time.Minute}
		req, _ := http.NewRequest(http.MethodGet, "http://"+g.edge+"/spin", nil)
		req.Host = g.host("e2e-spin")
		start := time.Now()
		resp, err := c.Do(req)
		spinning.Store(false)
		took := time.Since(start)
		close(stopN)
		<-nDone
		bad, total, first := p.stop()
		if err != nil {
			t.Fatalf("the runaway request got no answer: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "1102") {
			t.Errorf("runaway request: %d %q, want 503 with error code 1102", resp.StatusCode, body)
		}
		t.Logf("runaway request answered %d after %s (cpu_ms 12000); e2e-%s (same bundle %s) answered %d times meanwhile; e2e-esm (bundle %s): %d of %d requests failed",
			resp.StatusCode, took.Round(100*time.Millisecond), neighbour, spinBundle, answeredWhileSpinning.Load(), esmBundle, bad, total)
		// Its own limit ended it, not the default limit of its neighbours.
		if took >= apiv1.DefaultCPULimit {
			t.Errorf("the runaway request (cpu_ms 12000) ran %s, past the default limit of its bundle's other Workers", took.Round(100*time.Millisecond))
		}
		if answeredWhileSpinning.Load() == 0 {
			t.Errorf("e2e-%s, in e2e-spin's bundle, never answered while the runaway request spun", neighbour)
		}
		if spinBundle != esmBundle && bad > 0 {
			t.Errorf("a runaway request in bundle %s failed %d requests to e2e-esm in bundle %s; first: %v", spinBundle, bad, esmBundle, first)
		}
		// The Workers sharing e2e-spin's process serve again, and the
		// bundle goes back to one pod.
		for _, p := range bundlePods(t, e) {
			if p.Labels[apiv1.LabelBundle] != spinBundle {
				continue
			}
			for _, proj := range []string{"kv", "hono", "wasm", "vars"} {
				if strings.Contains(p.Annotations[apiv1.AnnotationSockets], deployedVersion(t, w, dirs[proj])) {
					g.waitBody(t, "e2e-"+proj, "/", expected(t, proj))
				}
			}
		}
		g.waitBody(t, "e2e-spin", "/", "spin idle")
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
			n := 0
			for _, p := range bundlePods(t, e) {
				if p.Labels[apiv1.LabelBundle] == spinBundle {
					n++
				}
			}
			if n == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("bundle %s still runs %d pods a minute after the runaway request ended", spinBundle, n)
			}
		}
	})

	// R2, D1, KV and service bindings with the newest wrangler; their data
	// must survive down/up (down-up-serves-again). Last before it: the
	// bundles' placement the subtests above rely on stays as it was.
	// After runaway-request, whose bundle neighbours are the corpus's.
	var spaDir string
	t.Run("static-assets", func(t *testing.T) {
		spaDir, _ = staticAssets(t, w, g, work)
	})

	t.Run("cron-triggers", func(t *testing.T) {
		dir := copyProject(t, "cron", filepath.Join(work, "cron"))
		cfg := filepath.Join(dir, "wrangler.toml")
		b, _ := os.ReadFile(cfg)
		if err := os.WriteFile(cfg, bytes.ReplaceAll(b, []byte("__MYKV_ID__"), []byte(mykv)), 0o644); err != nil {
			t.Fatal(err)
		}
		cronTriggers(t, w, g, vars, dir)
	})

	t.Run("storage-bindings", func(t *testing.T) { storageBindings(t, w, g, work) })

	var counted metricsSeen
	t.Run("metrics", func(t *testing.T) {
		counted = metricsCounted(t, w, g, e, vars, copyProject(t, "status", filepath.Join(work, "status")))
	})
	var marker string
	t.Run("workers-logs", func(t *testing.T) {
		marker = workersLogs(t, w, g, e, vars, copyProject(t, "logged", filepath.Join(work, "logged")))
	})

	// A Durable Object counter takes a bundle of its own: the placement
	// above stays as it was.
	objects := false
	t.Run("durable-objects", func(t *testing.T) {
		durableObjects(t, w, g, e, vars, copyProject(t, "counter", filepath.Join(work, "counter")))
		objects = !t.Failed()
	})

	t.Run("down-up-serves-again", func(t *testing.T) {
		if counted.requests > 0 {
			counted.usage = usageMinutes(t, dashboardClient(t, e, vars), vars, "e2e-status")
		}
		e.with(t).mustOcto("down")
		held := warmSnapshotScripts(t, e)
		e.with(t).mustOcto("up")
		for _, p := range []string{"service-worker", "vars", "kv", "hono"} {
			g.waitBody(t, "e2e-"+p, "/", expected(t, p))
		}
		g.waitBody(t, "e2e-esm", "/", "hello from esm v3")
		g.waitBody(t, "e2e-secret", "/", "rotated-value")
		storageSurvived(t, w, g, work)
		cronSurvived(t, g, vars)
		if spaDir != "" {
			assetsSurvived(t, g, spaDir)
		}
		if objects {
			objectsSurvived(t, g)
		}
		if counted.requests > 0 {
			metricsSurvived(t, e, vars, counted)
		}
		if marker != "" {
			logsSurvived(t, e, vars, marker)
		}
		warmStartServed(t, e, held)
	})
}

// warmSnapshotScripts checks the warm-start snapshot `octo down` left
// (docs/adr/0015-warm-start.md): the versions that the loader can run are
// in it, those with a KV binding are not; it returns the scripts it holds.
func warmSnapshotScripts(t *testing.T, e *env) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(e.cfg.Path("warm-start", "index.json"))
	if err != nil {
		t.Fatalf("no warm-start snapshot after octo down: %v", err)
	}
	var entries []struct{ Script string }
	if err := json.Unmarshal(b, &entries); err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for _, en := range entries {
		held[en.Script] = true
	}
	if !held["e2e-esm"] || !held["e2e-vars"] || held["e2e-kv"] {
		t.Errorf("the warm-start snapshot holds %v: want e2e-esm and e2e-vars (the loader runs them), not e2e-kv (a KV binding)", held)
	}
	if st, err := os.Stat(e.cfg.Path("warm-start")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("warm-start snapshot dir: %v %v, want 0700 (it holds secrets' values)", st.Mode(), err)
	}
	return held
}

// warmStartServed checks that the `octo up` after it preloaded every
// script of the snapshot in the warm-start hosts, and that the hosts stop
// once the pods serve, leaving nothing behind.
func warmStartServed(t *testing.T, e *env, held map[string]bool) {
	t.Helper()
	deadline := time.Now().Add(serveTimeout)
	for {
		log, _ := os.ReadFile(e.cfg.LogPath())
		run := string(log)
		if i := strings.LastIndex(run, "msg=\"warm start: hosts serve\""); i >= 0 {
			run = run[i:]
		} else {
			t.Fatalf("octo up ran no warm-start host for the %d scripts of the snapshot", len(held))
		}
		if !regexp.MustCompile(fmt.Sprintf(`msg="warm start: Workers preloaded" .*workers=%d failed=0`, len(held))).MatchString(run) {
			if time.Now().After(deadline) {
				t.Fatalf("the warm-start hosts did not preload the %d scripts of the snapshot", len(held))
			}
		} else if strings.Contains(run, "warm start: the pods serve; hosts stopped") {
			break
		} else if time.Now().After(deadline) {
			t.Fatal("the warm-start hosts did not stop once the pods served")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if left, _ := filepath.Glob(filepath.Join(os.TempDir(), "octo-warm-*")); len(left) > 0 {
		t.Errorf("retired warm-start hosts left %v", left)
	}
}

// deployedVersion is the version at 100% in `deployments status --json`.
func deployedVersion(t *testing.T, w *wranglerCLI, dir string) string {
	t.Helper()
	for id, pct := range w.deploymentStatus(t, dir).traffic() {
		if pct == 100 {
			return id
		}
	}
	t.Fatal("no version at 100%")
	return ""
}

// waitStable waits until n consecutive requests answer want.
func waitStable(t *testing.T, g *gatewayClient, script, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(serveTimeout)
	streak := 0
	for time.Now().Before(deadline) {
		if code, body, err := g.get(script, "/"); err == nil && code == 200 && body == want {
			streak++
			if streak >= n {
				return
			}
			continue
		}
		streak = 0
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not settle on %q", script, want)
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// poller requests one script through the gateway in the background and
// counts the answers that are not 200 with a body ok accepts.
type poller struct {
	stopped, done chan struct{}
	bad, total    int64
	first         string
}

func startPoller(g *gatewayClient, script string, every time.Duration, ok func(body string) bool) *poller {
	p := &poller{stopped: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stopped:
				return
			default:
			}
			code, body, err := g.get(script, "/")
			p.total++
			if err != nil || code != http.StatusOK || !ok(body) {
				p.bad++
				if p.first == "" {
					p.first = fmt.Sprintf("%d %q %v", code, body, err)
				}
			}
			time.Sleep(every)
		}
	}()
	return p
}

// stop ends the polling and returns the failures, the total and the first
// failure.
func (p *poller) stop() (bad, total int64, first string) {
	close(p.stopped)
	<-p.done
	return p.bad, p.total, p.first
}

// bundleOf returns the bundle of the pods that serve a version.
func bundleOf(t *testing.T, e *env, versionID string) string {
	t.Helper()
	for _, p := range bundlePods(t, e) {
		if strings.Contains(p.Annotations[apiv1.AnnotationSockets], versionID) {
			return p.Labels[apiv1.LabelBundle]
		}
	}
	t.Fatalf("no running pod serves version %s", versionID)
	return ""
}

// bundlePods returns the running pods of every bundle by name.
func bundlePods(t *testing.T, e *env) map[string]corev1.Pod {
	t.Helper()
	pods, err := e.client().CoreV1().Pods("octo").List(context.Background(), metav1.ListOptions{LabelSelector: apiv1.LabelBundle})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]corev1.Pod{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			out[p.Name] = p
		}
	}
	return out
}

func restarts(p corev1.Pod) int32 {
	var n int32
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return n
}

// workerdRestarts sums the restarts of the default account's workerd containers.
func workerdRestarts(t *testing.T, e *env) int32 {
	t.Helper()
	pods, err := e.client().CoreV1().Pods("octo").List(context.Background(), metav1.ListOptions{LabelSelector: apiv1.LabelBundle})
	if err != nil {
		t.Fatal(err)
	}
	var n int32
	for _, p := range pods.Items {
		for _, c := range p.Status.ContainerStatuses {
			n += c.RestartCount
		}
	}
	return n
}

// checkTail runs `wrangler tail script --format json` in dir and requests
// /tailed of script until the tail prints the Worker's console.log line.
func checkTail(t *testing.T, w *wranglerCLI, g *gatewayClient, dir, script string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := w.command(ctx, "tail", script, "--format", "json")
	cmd.Dir = dir
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Stop the whole group: node may run children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() }()
	for ctx.Err() == nil {
		_, _, _ = g.get(script, "/tailed")
		if s := out.String(); strings.Contains(s, "esm handled /tailed") {
			if !strings.Contains(s, `"outcome"`) {
				t.Errorf("tail event lacks an outcome:\n%s", s)
			}
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("wrangler tail printed no event with the console.log line:\n%s", out.String())
}
