// Command bench-scale measures how octo scales with the number of Workers
// (docs/adr/0004-sharded-bundles.md) and prints the rows recorded in
// docs/benchmarks.md: for each step of the curve (10, 100, 1,000 Workers in
// one account) the burst of uploads (20 at a time) until all answer, the
// failures of an existing Worker during the burst, one redeploy → new
// version answering (p50/p95), the pods and the memory; then a warm
// `octo down`/`octo up` with every Worker deployed, and the same number of
// Workers spread over many accounts. Run it as root with no other octo
// running: `make bench-scale`.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/procstat"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
	"github.com/octohq/octo/scripts/internal/benchkit"
)

func main() {
	bin := flag.String("octo", "bin/octo", "octo binary")
	stepsFlag := flag.String("steps", "10,100,1000", "Worker counts of the curve, in one account")
	redeploys := flag.Int("redeploys", 10, "redeploys timed at each step")
	conc := flag.Int("concurrency", 20, "uploads at a time")
	accounts := flag.Int("accounts", 50, "accounts that share the last step's Workers in the multi-account run (0 skips it)")
	perBundle := flag.Int("workers-per-bundle", 0, "octo up --workers-per-bundle (0: octo's default)")
	settle := flag.Duration("settle", 20*time.Second, "wait after each burst before the redeploys, and before each memory reading")
	warmDir := flag.String("warm-only", "", "data dir of an earlier run (OCTO_BENCH_KEEP) with -warm-workers Workers w0000… in the default account: only time warm starts on it")
	warmWorkers := flag.Int("warm-workers", 1000, "Workers of the -warm-only data dir")
	warmRuns := flag.Int("warm-runs", 3, "warm starts timed with -warm-only")
	warmBaseline := flag.Bool("warm-baseline", true, "with -warm-only, time a start without the snapshot first (its `octo down` saves one)")
	bareRuns := flag.Int("bare-runs", 3, "with -warm-only, time bare workerd starting the same Workers this many times first: the real limit")
	flag.Parse()
	if *warmDir != "" {
		bareStarts(*warmWorkers, *bareRuns)
		warmOnly(*bin, *warmDir, *warmWorkers, *warmRuns, *warmBaseline)
		return
	}
	var steps []int
	for _, s := range strings.Split(*stepsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			panic(fmt.Sprintf("bad -steps %q", *stepsFlag))
		}
		steps = append(steps, n)
	}

	var flags []string
	if *perBundle > 0 {
		flags = append(flags, "--workers-per-bundle="+strconv.Itoa(*perBundle))
	}
	b, down := benchkit.Up(*bin, flags...)
	defer down()
	fmt.Printf("| cold `octo up` (empty data dir) → every part ready | %s |\n", b.UpTook.Round(10*time.Millisecond))
	time.Sleep(*settle)
	idle := benchkit.MemoryOf(b.Cfg)
	fmt.Printf("| idle, 0 Workers: PSS of every process (daemon, containerd, shims, pods) | **%.0f MB** |\n", idle.PSS)

	b.PutBody(b.Def, "probe", "probe")
	b.WaitBody(b.Def, "probe", "probe", 3*time.Minute)
	var names []string
	fmt.Println()
	fmt.Println("| Workers (one account) | burst: uploads took / all answering after the last upload | failed requests to an existing Worker during the burst | one redeploy → answering: p50 / p95 / max | workerd pods | PSS total / per pod (workerd) / per Worker |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, n := range steps {
		var added []string
		for i := len(names); i < n; i++ {
			added = append(added, fmt.Sprintf("w%04d", i))
		}
		names = append(names, added...)
		probe := startProber(b, b.Def, "probe", "probe")
		took, after := burst(b, b.Def, added, *conc)
		failed, total := probe.stop()
		// Redeploys are timed in a steady state: the burst's last builds and
		// rollouts (superseded by the final ones) finish first.
		time.Sleep(*settle)
		lat := redeploy(b, b.Def, names[len(names)/2], *redeploys)
		time.Sleep(*settle)
		m := benchkit.MemoryOf(b.Cfg)
		fmt.Printf("| %d | %s / **%s** | %d of %d | **%s** / %s / %s | %d | %.0f MB / %.0f MB / %.2f MB |\n",
			n, took.Round(10*time.Millisecond), after.Round(10*time.Millisecond), failed, total,
			benchkit.Pct(lat, 50), benchkit.Pct(lat, 95), benchkit.Pct(lat, 100),
			m.Workerds, m.PSS, m.WorkerdPSS/float64(max(m.Workerds, 1)), (m.PSS-idle.PSS)/float64(n))
	}

	// Warm restart with every Worker deployed.
	b.Octo("down")
	upTook := b.Octo("up")
	t0 := time.Now()
	waitAll(b, b.Def, names, 10*time.Minute)
	fmt.Printf("\n| warm `octo up` with %d Workers: up / all answering after up | **%s** / %s |\n",
		len(names), upTook.Round(10*time.Millisecond), time.Since(t0).Round(10*time.Millisecond))

	if *accounts > 0 {
		n := steps[len(steps)-1]
		per := max(n / *accounts, 1)
		var accts []store.Account
		for i := range *accounts {
			accts = append(accts, b.NewAccount(i))
		}
		t0 := time.Now()
		var wg sync.WaitGroup
		sem := make(chan struct{}, *conc)
		for _, a := range accts {
			for i := range per {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer func() { <-sem; wg.Done() }()
					name := fmt.Sprintf("w%04d", i)
					b.PutBody(a, name, name)
				}()
			}
		}
		wg.Wait()
		took := time.Since(t0)
		last := time.Now()
		for _, a := range accts {
			var ns []string
			for i := range per {
				ns = append(ns, fmt.Sprintf("w%04d", i))
			}
			waitAll(b, a, ns, 10*time.Minute)
		}
		after := time.Since(last)
		time.Sleep(*settle)
		lat := redeploy(b, accts[len(accts)/2], fmt.Sprintf("w%04d", per/2), *redeploys)
		time.Sleep(*settle)
		m := benchkit.MemoryOf(b.Cfg)
		fmt.Printf("| %d more Workers over %d accounts (%d each) | uploads %s / all answering %s after | redeploy p50 **%s** / p95 %s / max %s | %d workerd pods, PSS %.0f MB |\n",
			per**accounts, *accounts, per, took.Round(10*time.Millisecond), after.Round(10*time.Millisecond),
			benchkit.Pct(lat, 50), benchkit.Pct(lat, 95), benchkit.Pct(lat, 100), m.Workerds, m.PSS)
	}
}

// warmOnly times runs warm starts of the data dir of an earlier run: `octo
// down`, then `octo up` until every one of its n Workers answers its name;
// with baseline, a start without the snapshot first.
func warmOnly(bin, dataDir string, n, runs int, baseline bool) {
	b := benchkit.Existing(bin, dataDir)
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("w%04d", i))
	}
	fmt.Println("| warm `octo up` | command returned | all answering, from the start of `octo up` | rounds of requests after it returned |")
	fmt.Println("|---|---|---|---|")
	first := 1
	if baseline {
		first = 0
	}
	for r := first; r <= runs; r++ {
		if r == 0 {
			// A data dir without a snapshot (kept by an earlier octo, or
			// its `octo down` failed): the pods serve; its `octo down`
			// saves one for the timed runs.
			if err := os.RemoveAll(filepath.Join(dataDir, "warm-start")); err != nil {
				b.Fatalf("%v", err)
			}
		}
		t0 := time.Now()
		upTook := b.Octo("up")
		rounds := waitAll(b, b.Def, names, 10*time.Minute)
		what := fmt.Sprintf("run %d, %d Workers", r, n)
		if r == 0 {
			what = fmt.Sprintf("%d Workers, no snapshot", n)
		}
		fmt.Printf("| %s | %s | **%s** | %d |\n", what, upTook.Round(10*time.Millisecond), time.Since(t0).Round(10*time.Millisecond), rounds)
		time.Sleep(5 * time.Second)
		b.Octo("down")
	}
}

// bareStarts times the real limit of a warm start runs times: bare workerd
// (the binary octo carries, one process, no octo, octo's V8 flags) starting
// n Workers like the benchmark's (each answers its name) from one config,
// each on a unix socket, from its start until every one answered, and the
// CPU it used by then.
func bareStarts(n, runs int) {
	if runs == 0 {
		return
	}
	dir, err := os.MkdirTemp("", "octo-bare-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin, err := workerd.Extract(filepath.Join(dir, "bin"))
	if err != nil {
		log.Fatal(err)
	}
	cfg := workerd.Config{V8Flags: workerd.DefaultV8Flags}
	sockets := map[string]string{}
	for i := range n {
		name := fmt.Sprintf("w%04d", i)
		src := fmt.Sprintf("export default { fetch() { return new Response(%q); } };\n", name)
		if err := os.WriteFile(filepath.Join(dir, name+".js"), []byte(src), 0o644); err != nil {
			log.Fatal(err)
		}
		sockets[name] = filepath.Join(dir, name+".sock")
		cfg.Workers = append(cfg.Workers, workerd.Worker{Name: name, CompatibilityDate: "2025-01-01", Address: "unix:" + sockets[name],
			Modules: []workerd.Module{{Name: "index.js", Type: apiv1.ModuleESModule, Path: name + ".js"}}})
	}
	conf := benchkit.WriteConfig(dir, cfg)
	fmt.Println("| bare workerd, same Workers (the real limit) | all answering, from its start | CPU by then |")
	fmt.Println("|---|---|---|")
	for r := 1; r <= runs; r++ {
		for _, s := range sockets {
			_ = os.Remove(s)
		}
		t0 := time.Now()
		cmd := exec.Command(bin, "serve", conf)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		pending := slices.Sorted(maps.Keys(sockets))
		for len(pending) > 0 && time.Since(t0) < 2*time.Minute {
			var still []string
			for _, name := range pending {
				if !answersOn(sockets[name], name) {
					still = append(still, name)
				}
			}
			if pending = still; len(pending) > 0 {
				time.Sleep(20 * time.Millisecond)
			}
		}
		took := time.Since(t0)
		st, err := procstat.Read(cmd.Process.Pid)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if len(pending) > 0 || err != nil {
			log.Fatalf("bare workerd: %d Workers do not answer after %s (%v)", len(pending), took.Round(time.Second), err)
		}
		fmt.Printf("| run %d, %d Workers | **%s** | %s |\n", r, n, took.Round(10*time.Millisecond), st.CPU.Round(10*time.Millisecond))
	}
}

// answersOn reports whether the Worker on the unix socket answers body.
func answersOn(socket, body string) bool {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://worker/")
	if err != nil {
		return false
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK && string(got) == body
}

// burst uploads names, conc at a time, each answering its own name, and
// returns how long the uploads took and how long after the last one every
// name answered.
func burst(b *benchkit.Bench, a store.Account, names []string, conc int) (took, after time.Duration) {
	t0 := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, conc)
	for _, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			b.PutBody(a, n, n)
		}()
	}
	wg.Wait()
	took = time.Since(t0)
	last := time.Now()
	waitAll(b, a, names, 10*time.Minute)
	return took, time.Since(last)
}

// redeploy times n redeploys of script: the API's PUT returned → the new
// body answers. The script answers its own name again afterwards.
func redeploy(b *benchkit.Bench, a store.Account, script string, n int) []time.Duration {
	var lat []time.Duration
	for i := 1; i <= n+1; i++ {
		body := fmt.Sprintf("%s r%d", script, i)
		if i > n {
			body = script
		}
		b.PutBody(a, script, body)
		t0 := time.Now()
		b.WaitBody(a, script, body, 3*time.Minute)
		if i <= n {
			lat = append(lat, time.Since(t0))
		}
		time.Sleep(time.Second) // the previous pod's termination
	}
	return lat
}

// waitAll polls every name until it answers its own name, and returns how
// many rounds over the names that took.
func waitAll(b *benchkit.Bench, a store.Account, names []string, timeout time.Duration) int {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	deadline := time.Now().Add(timeout)
	pending := slices.Clone(names)
	rounds := 0
	for len(pending) > 0 {
		rounds++
		if time.Now().After(deadline) {
			b.Fatalf("%d Workers do not answer after %s, e.g. %s", len(pending), timeout, pending[0])
		}
		var mu sync.Mutex
		var still []string
		var wg sync.WaitGroup
		work := make(chan string)
		for range 16 {
			wg.Go(func() {
				for n := range work {
					if !answers(c, b.Cfg, b.Host(a, n), n) {
						mu.Lock()
						still = append(still, n)
						mu.Unlock()
					}
				}
			})
		}
		for _, n := range pending {
			work <- n
		}
		close(work)
		wg.Wait()
		pending = still
		if len(pending) > 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	return rounds
}

func answers(c *http.Client, cfg config.Config, host, body string) bool {
	req, _ := http.NewRequest(http.MethodGet, "http://"+config.Addr(cfg.EdgePort)+"/", nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK && string(got) == body
}

// prober requests one Worker every 20 ms and counts what fails.
type prober struct {
	stopped       atomic.Bool
	failed, total atomic.Int64
	done          chan struct{}
}

func startProber(b *benchkit.Bench, a store.Account, script, body string) *prober {
	p := &prober{done: make(chan struct{})}
	c := &http.Client{Timeout: 10 * time.Second}
	go func() {
		defer close(p.done)
		for !p.stopped.Load() {
			p.total.Add(1)
			if !answers(c, b.Cfg, b.Host(a, script), body) {
				p.failed.Add(1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return p
}

func (p *prober) stop() (failed, total int64) {
	p.stopped.Store(true)
	<-p.done
	return p.failed.Load(), p.total.Load()
}
