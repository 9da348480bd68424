// Command bench-load measures serving under load and prints, side by side in
// one run, the figures recorded in docs/benchmarks.md: bare workerd (one
// hello-world Worker, no tail consumer), a minimal Go reverse proxy in front
// of it, the same Worker through octo's gateway, the latency the gateway
// adds at a fixed rate, a long soak's peak memory and pod restarts, and how
// long the other Workers of an account are down while one request spins
// forever. Load generator, proxies and workerd share the machine's cores.
// Run it as root with no other octo running: `make bench-load`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/workerd"
	"github.com/octohq/octo/scripts/internal/benchkit"
)

const helloJS = "export default { fetch() { return new Response(\"hello\"); } };\n"

// spinJS never yields on /spin.
const spinJS = `export default { fetch(req) {
  if (new URL(req.url).pathname === "/spin") { while (true) {} }
  return new Response("spin idle");
} };
`

func main() {
	bin := flag.String("octo", "bin/octo", "octo binary")
	load := flag.Duration("load", 8*time.Second, "duration of each throughput run")
	conns := flag.Int("conns", 16, "concurrent connections of the throughput runs")
	rate := flag.Int("rate", 200, "request rate of the latency runs (req/s)")
	soak := flag.Int("soak", 1_000_000, "requests of the soak through the gateway (0 = skip)")
	runaway := flag.Bool("runaway", true, "measure the victims' downtime while one request spins")
	flag.Parse()
	dir, err := os.MkdirTemp("", "octo-bench-load")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// 1. Bare workerd and a minimal reverse proxy, before octo runs; then
	// bare workerd with octo's tail consumer (what a traced twin runs).
	traced, tracedPID, stopTraced := startBareWorkerd(filepath.Join(dir, "traced"), true)
	tr := benchkit.Load(*load, *conns, "http://"+traced+"/", "")
	tracedRSS := benchkit.ProcKB(tracedPID, "VmRSS:")
	stopTraced()
	bare, barePID, stopBare := startBareWorkerd(filepath.Join(dir, "bare"), false)
	proxy := startMinimalProxy(bare)
	br := benchkit.Load(*load, *conns, "http://"+bare+"/", "")
	bareRSS := benchkit.ProcKB(barePID, "VmRSS:")
	pr := benchkit.Load(*load, *conns, "http://"+proxy+"/", "")
	bareLat := rateLatency(*rate, *load, "http://"+bare+"/", "")
	proxyLat := rateLatency(*rate, *load, "http://"+proxy+"/", "")
	stopBare()

	// 2. octo.
	b, down := benchkit.Up(*bin)
	defer down()
	cfg := b.Cfg
	b.Put(b.Def, "hello", helloJS)
	b.WaitBody(b.Def, "hello", "hello", 3*time.Minute)
	edge := "http://" + config.Addr(cfg.EdgePort) + "/"
	host := b.Host(b.Def, "hello")
	gr := benchkit.Load(*load, *conns, edge, host)
	gwLat := rateLatency(*rate, *load, edge, host)
	// Attribution: the pod path alone (no proxy), and the minimal proxy in
	// front of the pod, so the gap splits into network path and gateway.
	direct := b.DirectAddr("hello")
	dr := benchkit.Load(*load, *conns, "http://"+direct+"/", host)
	pdr := benchkit.Load(*load, *conns, "http://"+startMinimalProxy(direct)+"/", host)

	fmt.Printf("| machine | %s |\n", machine())
	fmt.Printf("| throughput, %d connections, %s each | req/s | p50 | p99 | failed |\n|---|---|---|---|---|\n", *conns, *load)
	for _, r := range []struct {
		name string
		r    benchkit.LoadResult
	}{{"bare workerd (no tail consumer)", br}, {"bare workerd with octo's tail consumer", tr}, {"minimal Go reverse proxy → bare workerd", pr}, {"workerd pod, direct to its pod IP", dr}, {"minimal Go reverse proxy → workerd pod", pdr}, {"octo gateway → workerd pod", gr}} {
		fmt.Printf("| %s | %.0f | %s | %s | %d |\n", r.name, r.r.RPS, r.r.P50, r.r.P99, r.r.Failed)
	}
	fmt.Printf("| workerd RSS after its run: no tail consumer / tail consumer | %.0f / %.0f MiB | | | |\n", bareRSS, tracedRSS)
	fmt.Printf("| gateway / minimal proxy | **%.0f %%** | | | |\n", 100*gr.RPS/pr.RPS)
	fmt.Printf("| gateway / bare workerd | **%.0f %%** | | | |\n", 100*gr.RPS/br.RPS)
	fmt.Printf("| gateway / minimal proxy → the same pod | **%.0f %%** | | | |\n", 100*gr.RPS/pdr.RPS)
	fmt.Printf("| p50 at %d req/s: bare / minimal proxy / gateway | %s / %s / %s; gateway adds **%s** over bare, %s over the proxy | | | |\n",
		*rate, bareLat, proxyLat, gwLat, gwLat-bareLat, gwLat-proxyLat)

	// 3. Soak: memory and restarts of the account's pod.
	if *soak > 0 {
		restarts0 := restarts(b)
		peak, n, failed, took := soakRun(*soak, *conns, edge, host)
		fmt.Printf("| soak: %d requests through the gateway in %s (%.0f req/s), %d failed | peak workerd RSS **%.0f MiB**, pod restarts **%d** | | | |\n",
			n, took.Round(time.Second), float64(n)/took.Seconds(), failed, peak, restarts(b)-restarts0)
	}

	// 4. A request that never yields, and its neighbour.
	if *runaway {
		b.Put(b.Def, "spin", spinJS)
		b.WaitBody(b.Def, "spin", "spin idle", 3*time.Minute)
		b.WaitBody(b.Def, "hello", "hello", time.Minute)
		status, took, down := runawayRun(edge, b.Host(b.Def, "spin"), host)
		fmt.Printf("| `while (true) {}` in one Worker: its request → %s after %s; the other Worker of the account down for **%s** | | | | |\n",
			status, took.Round(100*time.Millisecond), down.Round(100*time.Millisecond))
	}
}

// startBareWorkerd runs the embedded workerd with one hello-world Worker on
// a free loopback port, with octo's V8 flags; traced adds octo's tail
// consumer, posting to a collector that discards the events.
func startBareWorkerd(dir string, traced bool) (addr string, pid int, stop func()) {
	bin, err := workerd.Extract(filepath.Join(dir, "bin"))
	if err != nil {
		log.Fatal(err)
	}
	addr = freeAddr()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.js"), []byte(helloJS), 0o644); err != nil {
		log.Fatal(err)
	}
	cfg := workerd.Config{
		Workers: []workerd.Worker{{Name: "hello", Modules: []workerd.Module{{Name: "hello.js", Type: apiv1.ModuleESModule, Path: "hello.js"}},
			CompatibilityDate: "2025-01-01", Address: addr}},
		V8Flags: workerd.DefaultV8Flags,
	}
	if traced {
		col, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			_ = http.Serve(col, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
		}()
		cfg.Workers[0].Tail, cfg.TailCollector = true, col.Addr().String()
	}
	text, err := cfg.Render()
	if err != nil {
		log.Fatal(err)
	}
	conf := filepath.Join(dir, "config.capnp")
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		log.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", conf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if resp, err := http.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			return addr, cmd.Process.Pid, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	log.Fatal("bare workerd did not answer")
	return "", 0, nil
}

// startMinimalProxy is the reference: httputil.ReverseProxy with a
// keep-alive pool of 256 in front of target.
func startMinimalProxy(target string) string {
	u, _ := url.Parse("http://" + target)
	p := httputil.NewSingleHostReverseProxy(u)
	p.Transport = &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = http.Serve(ln, p) }()
	return ln.Addr().String()
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// rateLatency sends rate requests per second for d (open loop) and returns
// the median latency: what a proxy adds when it is not saturated.
func rateLatency(rate int, d time.Duration, target, host string) time.Duration {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	var mu sync.Mutex
	var lats []time.Duration
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for time.Now().Before(stop) {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, target, nil)
			if host != "" {
				req.Host = host
			}
			t0 := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			lats = append(lats, time.Since(t0))
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	if len(lats) == 0 {
		return 0
	}
	return lats[len(lats)/2].Round(10 * time.Microsecond)
}

// soakRun sends n requests on conns connections and samples the workerd
// RSS every second.
func soakRun(n, conns int, target, host string) (peakMiB float64, done int, failed int64, took time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	var peak atomic.Uint64
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if rss := workerdRSS(); uint64(rss) > peak.Load() {
					peak.Store(uint64(rss))
				}
			}
		}
	}()
	r, took := benchkit.LoadN(int64(n), conns, target, host)
	cancel()
	return float64(peak.Load()), n, r.Failed, took
}

// workerdRSS is the largest RSS (MiB) of the pods' workerd processes.
func workerdRSS() float64 {
	var most float64
	for _, pid := range benchkit.WorkerdPIDs() {
		most = max(most, benchkit.ProcKB(pid, "VmRSS:"))
	}
	return most
}

// restarts sums the restarts of the default account's workerd containers.
func restarts(b *benchkit.Bench) int {
	var pods corev1.PodList
	if err := b.K8s.List(context.Background(), &pods, client.InNamespace(b.Def.Namespace), client.HasLabels{apiv1.LabelBundle}); err != nil {
		b.Fatalf("%v", err)
	}
	n := 0
	for _, p := range pods.Items {
		for _, c := range p.Status.ContainerStatuses {
			n += int(c.RestartCount)
		}
	}
	return n
}

// runawayRun sends one request that spins forever and polls the victim
// every 50 ms: the victim's downtime runs from its first failure to the
// start of the first run of 20 answers in a row (1 s).
func runawayRun(target, spinHost, victimHost string) (status string, took, down time.Duration) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := &http.Client{Timeout: 90 * time.Second}
		req, _ := http.NewRequest(http.MethodGet, target+"spin", nil)
		req.Host = spinHost
		t0 := time.Now()
		resp, err := c.Do(req)
		took = time.Since(t0)
		if err != nil {
			status = "error " + err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		status = fmt.Sprintf("%d %.40q", resp.StatusCode, body)
	}()
	c := &http.Client{Timeout: time.Second}
	var firstFail, recovered time.Time
	streak := 0
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		req.Host = victimHost
		resp, err := c.Do(req)
		good := err == nil && resp.StatusCode == http.StatusOK
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		now := time.Now()
		switch {
		case !good:
			if firstFail.IsZero() {
				firstFail = now
			}
			streak = 0
		case !firstFail.IsZero():
			if streak == 0 {
				recovered = now
			}
			streak++
		}
		if streak >= 20 {
			break
		}
		if firstFail.IsZero() && func() bool {
			select {
			case <-done:
				return true
			default:
				return false
			}
		}() {
			break // the runaway ended without harming the victim
		}
		time.Sleep(50 * time.Millisecond)
	}
	<-done
	if firstFail.IsZero() {
		return status, took, 0
	}
	if recovered.IsZero() {
		log.Print(errors.New("the victim did not recover within 120 s"))
		return status, took, time.Since(firstFail)
	}
	return status, took, recovered.Sub(firstFail)
}

// machine describes the host: CPU model, cores and memory.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range splitLines(string(b)) {
			if v, ok := cutField(line, "model name"); ok {
				cpu = v
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range splitLines(string(b)) {
			if v, ok := cutField(line, "MemTotal"); ok {
				mem = v
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s", cpu, numCPU(), mem)
}

func splitLines(s string) []string { return strings.Split(s, "\n") }

// cutField returns the value of a "name : value" line of /proc.
func cutField(line, name string) (string, bool) {
	k, v, ok := strings.Cut(line, ":")
	if !ok || strings.TrimSpace(k) != name {
		return "", false
	}
	return strings.TrimSpace(v), true
}

func numCPU() int { return runtime.NumCPU() }
