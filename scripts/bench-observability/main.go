// Command bench-observability measures what Workers Logs cost: the same
// hello-world Worker through octo's gateway with its logs kept for every
// invocation ([observability] enabled, head_sampling_rate 1: each request
// runs traced and its events are written to the data dir) and without. The
// request metrics are always on in both (their cost is in the gateway's Go
// benchmark). Run it as root with no other octo running:
// `go run ./scripts/bench-observability`.
package main

import (
	"flag"
	"fmt"
	"runtime"
	"time"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/scripts/internal/benchkit"
)

const helloJS = `export default { fetch() { console.log("hello"); return new Response("hello"); } };`

func main() {
	bin := flag.String("octo", "bin/octo", "octo binary")
	load := flag.Duration("load", 8*time.Second, "duration of each throughput run")
	conns := flag.Int("conns", 16, "concurrent connections")
	flag.Parse()

	b, down := benchkit.Up(*bin)
	defer down()
	a := b.Def
	meta := `{"main_module":"index.js","bindings":[],"compatibility_date":"2025-01-01"%s}`
	b.PutWith(a, "plain", fmt.Sprintf(meta, ""), helloJS)
	b.PutWith(a, "logged", fmt.Sprintf(meta, `,"observability":{"enabled":true,"head_sampling_rate":1}`), helloJS)
	b.WaitBody(a, "plain", "hello", 2*time.Minute)
	b.WaitBody(a, "logged", "hello", 2*time.Minute)

	url := "http://" + config.Addr(b.Cfg.EdgePort) + "/"
	fmt.Printf("machine: %d cores; %d connections, %s per run\n", runtime.NumCPU(), *conns, *load)
	fmt.Printf("%-40s %10s %9s %9s %7s\n", "Worker", "req/s", "p50", "p99", "failed")
	for _, run := range []struct{ name, script string }{
		{"hello, logs off", "plain"},
		{"hello, logs kept for every invocation", "logged"},
		{"hello, logs off (again)", "plain"},
	} {
		r := benchkit.Load(*load, *conns, url, b.Host(a, run.script))
		fmt.Printf("%-40s %10.0f %9s %9s %7d\n", run.name, r.RPS, r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Failed)
	}
}
