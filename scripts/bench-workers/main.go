// Command bench-workers measures the Workers path of octo and prints the
// figures recorded in docs/benchmarks.md: upload → new version answering,
// gateway throughput against direct workerd, memory per additional worker in
// a bundle, and the time to serve 100 workers in 10 accounts. Run it as root
// with no other octo running: `make bench-workers`.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/octohq/octo/e2e/workload"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/scripts/internal/benchkit"
)

func main() {
	bin := flag.String("octo", "bin/octo", "octo binary")
	redeploys := flag.Int("redeploys", 20, "redeploys timed for upload → serving")
	load := flag.Duration("load", 10*time.Second, "duration of each throughput run")
	conns := flag.Int("conns", 16, "concurrent connections of the throughput runs")
	wranglerRuns := flag.Int("wrangler-redeploys", 20, "redeploys with the real wrangler (0 = skip; needs npm ci --prefix e2e)")
	only := flag.String("only", "", "run only this step: latency")
	flag.Parse()
	b, down := benchkit.Up(*bin)
	defer down()
	cfg, fatal := b.Cfg, b.Fatalf

	// 1. upload → serving, over redeploys of one script.
	b.PutBody(b.Def, "latency", "v0")
	b.WaitBody(b.Def, "latency", "v0", 3*time.Minute)
	var lat []time.Duration
	for i := 1; i <= *redeploys; i++ {
		body := "v" + strconv.Itoa(i)
		b.PutBody(b.Def, "latency", body)
		t0 := time.Now()
		b.WaitBody(b.Def, "latency", body, time.Minute)
		lat = append(lat, time.Since(t0))
	}
	fmt.Printf("| upload returned → new version answering, %d redeploys | p50 **%s**, p95 %s, max %s |\n",
		len(lat), benchkit.Pct(lat, 50), benchkit.Pct(lat, 95), benchkit.Pct(lat, 100))

	// 1b. the same with the real wrangler: its return → new version answering.
	if *wranglerRuns > 0 {
		w, err := workload.NewWrangler(cfg, "esm")
		if err != nil {
			fatal("%v", err)
		}
		src := filepath.Join(w.Dir, "src", "index.js")
		orig, _ := os.ReadFile(src)
		var wl []time.Duration
		for i := 0; i <= *wranglerRuns; i++ {
			body := fmt.Sprintf("hello from esm %d", i)
			if err := os.WriteFile(src, bytes.ReplaceAll(orig, []byte(`"hello from esm"`), []byte(strconv.Quote(body))), 0o644); err != nil {
				fatal("%v", err)
			}
			if _, err := w.Run("deploy"); err != nil {
				fatal("%v", err)
			}
			t0 := time.Now()
			b.WaitBody(b.Def, "e2e-esm", body, 3*time.Minute)
			if i > 0 { // the first deploy creates the script
				wl = append(wl, time.Since(t0))
			}
		}
		w.Close()
		fmt.Printf("| `wrangler deploy` returned → new version answering, %d redeploys | p50 **%s**, p95 %s, max %s |\n",
			len(wl), benchkit.Pct(wl, 50), benchkit.Pct(wl, 95), benchkit.Pct(wl, 100))
	}

	if *only == "latency" {
		return
	}

	// 2. memory per additional worker in one bundle (one workerd process).
	time.Sleep(5 * time.Second) // the last redeploy's old pod terminates
	one := b.WorkerdRSS()
	for i := 0; i < 10; i++ {
		b.PutBody(b.Def, fmt.Sprintf("mem-%d", i), "mem")
	}
	for i := 0; i < 10; i++ {
		b.WaitBody(b.Def, fmt.Sprintf("mem-%d", i), "mem", 3*time.Minute)
	}
	time.Sleep(5 * time.Second) // the previous pod terminates
	eleven := b.WorkerdRSS()
	fmt.Printf("| workerd RSS with 1 worker / with 11 workers / per additional worker | %.1f / %.1f / **%.2f MiB** |\n",
		one, eleven, (eleven-one)/10)

	// 3. gateway against direct workerd on the same pod.
	time.Sleep(5 * time.Second)
	direct := b.DirectAddr("latency")
	gw := benchkit.Load(*load, *conns, "http://"+config.Addr(cfg.EdgePort)+"/", b.Host(b.Def, "latency"))
	dr := benchkit.Load(*load, *conns, "http://"+direct+"/", "")
	fmt.Printf("| gateway: req/s, p50, p99 (%d conns, %s) | %.0f req/s, %s, %s |\n", *conns, *load, gw.RPS, gw.P50, gw.P99)
	fmt.Printf("| direct workerd on the pod IP: req/s, p50, p99 | %.0f req/s, %s, %s |\n", dr.RPS, dr.P50, dr.P99)
	fmt.Printf("| gateway / direct throughput | **%.0f %%** |\n", 100*gw.RPS/dr.RPS)

	// 4. 100 workers in 10 accounts.
	accounts := []store.Account{b.Def}
	for i := 1; i < 10; i++ {
		accounts = append(accounts, b.NewAccount(i))
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	for _, a := range accounts {
		for j := 0; j < 10; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b.PutBody(a, fmt.Sprintf("w%d", j), a.Subdomain+"-"+strconv.Itoa(j))
			}()
		}
	}
	wg.Wait()
	uploaded := time.Since(t0)
	for _, a := range accounts {
		for j := 0; j < 10; j++ {
			b.WaitBody(a, fmt.Sprintf("w%d", j), a.Subdomain+"-"+strconv.Itoa(j), 10*time.Minute)
		}
	}
	fmt.Printf("| 100 workers in 10 accounts: all uploaded / all answering | %s / **%s** |\n",
		uploaded.Round(10*time.Millisecond), time.Since(t0).Round(10*time.Millisecond))
}
