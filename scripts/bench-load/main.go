// Command bench-load measures serving under load and prints, side by side in
// one run, the figures recorded in docs/benchmarks.md: bare workerd (one
// hello-world Worker, no tail consumer), a minimal Go reverse proxy in front
// of it, the same Worker through octo's gateway, the latency the gateway
// adds at a fixed rate, a long soak's peak memory and pod restarts, and how
// long the other Workers of an account are down while one request spins
// forever. Load generator, proxies and workerd share the machine's cores.
// Every throughput path is measured while octo runs, interleaved over
// -rounds rounds, and the medians are printed.
// Run it as root with no other octo running: `make bench-load`.
package main

import (
	"bufio"
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
	rounds := flag.Int("rounds", 3, "interleaved rounds of the throughput runs (medians printed)")
	proxyTarget := flag.String("serve-proxy", "", "internal: run the minimal proxy in front of this host:port")
	flag.Parse()
	if *proxyTarget != "" {
		serveProxy(*proxyTarget)
		return
	}
	var ps proxies
	defer ps.stop()
	dir, err := os.MkdirTemp("", "octo-bench-load")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// 1. Bare workerd with octo's tail consumer (what a traced twin runs),
	// alone; then bare workerd without it, which keeps running.
	traced, tracedPID, stopTraced := startBareWorkerd(filepath.Join(dir, "traced"), true)
	tr := benchkit.Load(*load, *conns, "http://"+traced+"/", "")
	tracedRSS := benchkit.ProcKB(tracedPID, "VmRSS:")
	stopTraced()
	bare, barePID, stopBare := startBareWorkerd(filepath.Join(dir, "bare"), false)
	defer stopBare()
	proxy := ps.start(bare)

	// 2. octo, and every path measured while it runs (its control plane's
	// idle work is part of the machine for all of them), interleaved over
	// -rounds rounds; the medians are printed.
	b, down := benchkit.Up(*bin)
	defer down()
	cfg := b.Cfg
	b.Put(b.Def, "hello", helloJS)
	b.WaitBody(b.Def, "hello", "hello", 3*time.Minute)
	edge := "http://" + config.Addr(cfg.EdgePort) + "/"
	host := b.Host(b.Def, "hello")
	// Attribution: the pod alone (no proxy), and the minimal proxy in front
	// of the pod, so the gap splits into network path and gateway.
	direct := b.DirectAddr("hello")
	podProxy := ps.start(direct)
	paths := []struct {
		name, url, host string
	}{
		{"bare workerd (no tail consumer, loopback)", "http://" + bare + "/", ""},
		{"minimal Go reverse proxy → bare workerd", "http://" + proxy + "/", ""},
		{"octo gateway → workerd pod", edge, host},
		{"workerd pod, direct to its pod IP", "http://" + direct + "/", host},
		{"minimal Go reverse proxy → workerd pod IP", "http://" + podProxy + "/", host},
	}
	runs := make([][]benchkit.LoadResult, len(paths))
	for range *rounds {
		for i, pth := range paths {
			runs[i] = append(runs[i], benchkit.Load(*load, *conns, pth.url, pth.host))
		}
	}
	med := make([]benchkit.LoadResult, len(paths))
	for i := range paths {
		med[i] = medianRun(runs[i])
	}
	bareRSS := benchkit.ProcKB(barePID, "VmRSS:")
	bareLat := rateLatency(*rate, *load, "http://"+bare+"/", "")
	proxyLat := rateLatency(*rate, *load, "http://"+proxy+"/", "")
	gwLat := rateLatency(*rate, *load, edge, host)

	fmt.Printf("| machine | %s |\n", machine())
	fmt.Printf("| throughput, %d connections, %s each, median of %d interleaved rounds | req/s | p50 | p99 | failed | all rounds (req/s) |\n|---|---|---|---|---|---|\n", *conns, *load, *rounds)
	for i, pth := range paths {
		var all []string
		for _, r := range runs[i] {
			all = append(all, fmt.Sprintf("%.0f", r.RPS))
		}
		fmt.Printf("| %s | %.0f | %s | %s | %d | %s |\n", pth.name, med[i].RPS, med[i].P50, med[i].P99, med[i].Failed, strings.Join(all, ", "))
	}
	fmt.Printf("| bare workerd with octo's tail consumer (alone, before octo) | %.0f | %s | %s | %d | |\n", tr.RPS, tr.P50, tr.P99, tr.Failed)
	fmt.Printf("| workerd RSS after its runs: no tail consumer / tail consumer | %.0f / %.0f MiB | | | | |\n", bareRSS, tracedRSS)
	gw := med[2].RPS
	fmt.Printf("| gateway / minimal proxy → bare workerd | **%.0f %%** | | | | |\n", 100*gw/med[1].RPS)
	fmt.Printf("| gateway / bare workerd | **%.0f %%** | | | | |\n", 100*gw/med[0].RPS)
	fmt.Printf("| gateway / minimal proxy → the same pod | **%.0f %%** | | | | |\n", 100*gw/med[4].RPS)
	fmt.Printf("| p50 at %d req/s: bare / minimal proxy / gateway | %s / %s / %s; gateway adds **%s** over bare, %s over the proxy | | | | |\n",
		*rate, bareLat, proxyLat, gwLat, gwLat-bareLat, gwLat-proxyLat)

	stopBare() // the soak reads every workerd's memory: only the pods' from here

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
	conf := benchkit.WriteConfig(dir, cfg)
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

// medianRun is the run with the median throughput.
func medianRun(rs []benchkit.LoadResult) benchkit.LoadResult {
	s := append([]benchkit.LoadResult(nil), rs...)
	sort.Slice(s, func(i, j int) bool { return s[i].RPS < s[j].RPS })
	return s[len(s)/2]
}

// proxies are the minimal proxies' processes.
type proxies struct {
	cmds  []*exec.Cmd
	pipes []io.WriteCloser // their stdin, referenced: a collected pipe would close
}

// start runs the reference: httputil.ReverseProxy with a keep-alive pool of
// 256 in front of target, in a process of its own (this program again, with
// -serve-proxy), as the gateway is: a proxy inside the load generator's
// process would share its scheduler and look faster than any real one. It
// stops with stop, or when this program exits.
func (ps *proxies) start(target string) string {
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	cmd := exec.Command(self, "-serve-proxy", target)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // closed when we exit, however we exit
	if err != nil {
		log.Fatal(err)
	}
	ps.pipes = append(ps.pipes, stdin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	ps.cmds = append(ps.cmds, cmd)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		log.Fatalf("minimal proxy: %v", err)
	}
	return strings.TrimSpace(line)
}

// stop ends the proxy processes.
func (ps *proxies) stop() {
	for _, c := range ps.cmds {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
}

// serveProxy is the minimal proxy's process: it prints its address, then
// serves until its stdin closes (the benchmark ended).
func serveProxy(target string) {
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	u, _ := url.Parse("http://" + target)
	p := httputil.NewSingleHostReverseProxy(u)
	p.Transport = &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr().String())
	log.Fatal(http.Serve(ln, p))
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
