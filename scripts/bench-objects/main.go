// Command bench-objects measures Durable Objects through octo's gateway and
// prints the figures recorded in docs/benchmarks.md: requests per second
// and latency of a Worker that calls one object over RPC (every request to
// the same object: its writes are serial), reads it over fetch, and spreads
// increments over 1,000 objects, beside the same Worker answering without
// an object; then the time a redeploy of a script with classes takes to
// answer (its pod is replaced, not rolled: one live instance per object).
// Run it as root with no other octo running: `go run ./scripts/bench-objects`.
package main

import (
	"flag"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/scripts/internal/benchkit"
)

// counterJS is the benchmark's Worker: / answers its RELEASE var, /hello
// answers without an object, /inc increments object "a" over RPC (SQL
// storage), /read reads it over fetch, /spread increments one of 1,000.
const counterJS = `import { DurableObject } from "cloudflare:workers";
export class Counter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS c (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)");
  }
  increment() {
    this.ctx.storage.sql.exec("INSERT INTO c VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1");
    return this.ctx.storage.sql.exec("SELECT n FROM c").one().n;
  }
  fetch() {
    const row = this.ctx.storage.sql.exec("SELECT n FROM c").toArray()[0];
    return new Response(String(row ? row.n : 0));
  }
}
export default {
  async fetch(req, env) {
    const path = new URL(req.url).pathname;
    if (path === "/") return new Response(env.RELEASE);
    if (path === "/hello") return new Response("hello");
    if (path === "/read") return env.COUNTER.get(env.COUNTER.idFromName("a")).fetch(req);
    const name = path === "/spread" ? String(Math.floor(Math.random() * 1000)) : "a";
    return new Response(String(await env.COUNTER.get(env.COUNTER.idFromName(name)).increment()));
  },
};
`

// metadata is the upload's metadata: the first upload creates the class.
func metadata(release string, migrate bool) string {
	m := ""
	if migrate {
		m = `,"migrations":{"new_tag":"v1","new_sqlite_classes":["Counter"]}`
	}
	return fmt.Sprintf(`{"main_module":"index.js","compatibility_date":"2025-04-01","bindings":[`+
		`{"name":"COUNTER","type":"durable_object_namespace","class_name":"Counter"},`+
		`{"name":"RELEASE","type":"plain_text","text":%q}]%s}`, release, m)
}

func main() {
	bin := flag.String("octo", "bin/octo", "octo binary")
	load := flag.Duration("load", 8*time.Second, "duration of each throughput run")
	conns := flag.Int("conns", 16, "concurrent connections")
	redeploys := flag.Int("redeploys", 5, "redeploys to time")
	flag.Parse()

	b, down := benchkit.Up(*bin)
	defer down()
	a := b.Def
	t0 := time.Now()
	b.PutWith(a, "counter", metadata("r0", true), counterJS)
	b.WaitBody(a, "counter", "r0", 2*time.Minute)
	fmt.Printf("machine: %d cores; %d connections, %s per run\n", runtime.NumCPU(), *conns, *load)
	fmt.Printf("first deploy answering: %s\n", time.Since(t0).Round(10*time.Millisecond))

	url := "http://" + config.Addr(b.Cfg.EdgePort)
	host := b.Host(a, "counter")
	fmt.Printf("%-44s %10s %9s %9s %7s\n", "path", "req/s", "p50", "p99", "failed")
	for _, run := range []struct{ name, path string }{
		{"Worker without an object (/hello)", "/hello"},
		{"RPC increment, one object (/inc)", "/inc"},
		{"fetch read, one object (/read)", "/read"},
		{"RPC increment, 1,000 objects (/spread)", "/spread"},
	} {
		r := benchkit.Load(*load, *conns, url+run.path, host)
		fmt.Printf("%-44s %10.0f %9s %9s %7d\n", run.name, r.RPS, r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Failed)
	}

	// Redeploys: the PUT's return to the new version answering, while a
	// client keeps reading the object (the gateway holds its requests
	// while the pod is replaced: they must not fail).
	stop := make(chan struct{})
	reads := make(chan benchkit.LoadResult, 1)
	go func() { reads <- benchkit.LoadUntil(stop, 1, url+"/read", host) }()
	var times []time.Duration
	for i := 1; i <= *redeploys; i++ {
		release := fmt.Sprintf("r%d", i)
		b.PutWith(a, "counter", metadata(release, false), counterJS)
		start := time.Now()
		b.WaitBody(a, "counter", release, 2*time.Minute)
		times = append(times, time.Since(start))
	}
	close(stop)
	r := <-reads
	fmt.Printf("reads during the redeploys: %d sent, %d failed (p99 %s)\n", r.Requests, r.Failed, r.P99.Round(time.Millisecond))
	slices.Sort(times)
	if len(times) > 0 {
		fmt.Printf("redeploy → answering (%d): min %s, median %s, max %s\n", len(times),
			times[0].Round(10*time.Millisecond), times[len(times)/2].Round(10*time.Millisecond), times[len(times)-1].Round(10*time.Millisecond))
	}
}
