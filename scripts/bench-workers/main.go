// Command bench-workers measures the Workers path of octo and prints the
// figures recorded in docs/benchmarks.md: upload → new version answering,
// gateway throughput against direct workerd, memory per additional worker in
// a bundle, and the time to serve 100 workers in 10 accounts. Run it as root
// with no other octo running: `make bench-workers`.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/e2e/workload"
	"github.com/octohq/octo/internal/cfapi"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/store"
)

// fatal reports a failure and exits; main makes it stop octo first.
var fatal = log.Fatalf

func main() {
	bin := flag.String("octo", "bin/octo", "octo binary")
	redeploys := flag.Int("redeploys", 20, "redeploys timed for upload → serving")
	load := flag.Duration("load", 10*time.Second, "duration of each throughput run")
	conns := flag.Int("conns", 16, "concurrent connections of the throughput runs")
	wranglerRuns := flag.Int("wrangler-redeploys", 20, "redeploys with the real wrangler (0 = skip; needs npm ci --prefix e2e)")
	only := flag.String("only", "", "run only this step: latency")
	flag.Parse()
	binPath, err := filepath.Abs(*bin)
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "octo-bench-workers")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	dataDir := filepath.Join(dir, "data")
	octo := func(args ...string) {
		if out, err := exec.Command(binPath, append(args, "--data-dir", dataDir)...).CombinedOutput(); err != nil {
			log.Fatalf("octo %v: %v\n%s", args, err, out)
		}
	}
	octo("up", "--no-kubeconfig-merge", "--edge-port=18787", "--registry-port=15050", "--s3-port=19000", "--apiserver-port=16443", "--kubelet-port=11250")
	defer octo("down", "--purge", "--yes")
	// log.Fatal skips deferred calls: stop octo on any failure too.
	fatal = func(format string, args ...any) {
		octo("down", "--purge", "--yes")
		log.Fatalf(format, args...)
	}
	cfg, err := config.Load(dataDir)
	if err != nil {
		fatal("%v", err)
	}
	b := newBench(cfg)

	// 1. upload → serving, over redeploys of one script.
	b.mustPut(b.def, "latency", "v0")
	b.waitBody(b.def, "latency", "v0", 3*time.Minute)
	var lat []time.Duration
	for i := 1; i <= *redeploys; i++ {
		body := "v" + strconv.Itoa(i)
		b.mustPut(b.def, "latency", body)
		t0 := time.Now()
		b.waitBody(b.def, "latency", body, time.Minute)
		lat = append(lat, time.Since(t0))
	}
	fmt.Printf("| upload returned → new version answering, %d redeploys | p50 **%s**, p95 %s, max %s |\n",
		len(lat), pct(lat, 50), pct(lat, 95), pct(lat, 100))

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
			b.waitBody(b.def, "e2e-esm", body, 3*time.Minute)
			if i > 0 { // the first deploy creates the script
				wl = append(wl, time.Since(t0))
			}
		}
		w.Close()
		fmt.Printf("| `wrangler deploy` returned → new version answering, %d redeploys | p50 **%s**, p95 %s, max %s |\n",
			len(wl), pct(wl, 50), pct(wl, 95), pct(wl, 100))
	}

	if *only == "latency" {
		return
	}

	// 2. memory per additional worker in one bundle (one workerd process).
	time.Sleep(5 * time.Second) // the last redeploy's old pod terminates
	one := b.workerdRSS()
	for i := 0; i < 10; i++ {
		b.mustPut(b.def, fmt.Sprintf("mem-%d", i), "mem")
	}
	for i := 0; i < 10; i++ {
		b.waitBody(b.def, fmt.Sprintf("mem-%d", i), "mem", 3*time.Minute)
	}
	time.Sleep(5 * time.Second) // the previous pod terminates
	eleven := b.workerdRSS()
	fmt.Printf("| workerd RSS with 1 worker / with 11 workers / per additional worker | %.1f / %.1f / **%.2f MiB** |\n",
		one, eleven, (eleven-one)/10)

	// 3. gateway against direct workerd on the same pod.
	time.Sleep(5 * time.Second)
	direct := b.directAddr("latency")
	gw := runLoad(*load, *conns, "http://"+config.Addr(cfg.EdgePort)+"/", b.host(b.def, "latency"))
	dr := runLoad(*load, *conns, "http://"+direct+"/", "")
	fmt.Printf("| gateway: req/s, p50, p99 (%d conns, %s) | %.0f req/s, %s, %s |\n", *conns, *load, gw.rps, gw.p50, gw.p99)
	fmt.Printf("| direct workerd on the pod IP: req/s, p50, p99 | %.0f req/s, %s, %s |\n", dr.rps, dr.p50, dr.p99)
	fmt.Printf("| gateway / direct throughput | **%.0f %%** |\n", 100*gw.rps/dr.rps)

	// 4. 100 workers in 10 accounts.
	accounts := []store.Account{b.def}
	for i := 1; i < 10; i++ {
		accounts = append(accounts, b.newAccount(i))
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	for _, a := range accounts {
		for j := 0; j < 10; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b.mustPut(a, fmt.Sprintf("w%d", j), a.Subdomain+"-"+strconv.Itoa(j))
			}()
		}
	}
	wg.Wait()
	uploaded := time.Since(t0)
	for _, a := range accounts {
		for j := 0; j < 10; j++ {
			b.waitBody(a, fmt.Sprintf("w%d", j), a.Subdomain+"-"+strconv.Itoa(j), 10*time.Minute)
		}
	}
	fmt.Printf("| 100 workers in 10 accounts: all uploaded / all answering | %s / **%s** |\n",
		uploaded.Round(10*time.Millisecond), time.Since(t0).Round(10*time.Millisecond))
}

type bench struct {
	cfg  config.Config
	id   store.Identity
	def  store.Account
	k8s  client.Client
	http *http.Client
}

func newBench(cfg config.Config) *bench {
	id, err := store.LoadIdentity(cfg)
	if err != nil {
		fatal("%v", err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.KubeconfigPath())
	if err != nil {
		fatal("%v", err)
	}
	scheme, err := store.Scheme()
	if err != nil {
		fatal("%v", err)
	}
	c, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		fatal("%v", err)
	}
	return &bench{cfg: cfg, id: id, def: id.DefaultAccount(), k8s: c, http: &http.Client{Timeout: 30 * time.Second}}
}

func (b *bench) host(a store.Account, script string) string {
	return script + "." + a.Subdomain + ".workers.localhost:" + strconv.Itoa(b.cfg.EdgePort)
}

// mustPut uploads and deploys an ES module answering body.
func (b *bench) mustPut(a store.Account, script, body string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	meta, _ := mw.CreateFormField("metadata")
	_, _ = io.WriteString(meta, `{"main_module":"index.js","bindings":[],"compatibility_date":"2025-01-01","compatibility_flags":[]}`)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="index.js"; filename="index.js"`)
	h.Set("Content-Type", "application/javascript+module")
	part, _ := mw.CreatePart(h)
	fmt.Fprintf(part, "export default { fetch() { return new Response(%q); } };\n", body)
	_ = mw.Close()
	url := fmt.Sprintf("http://%s%s/accounts/%s/workers/scripts/%s", config.Addr(b.cfg.EdgePort), cfapi.BasePath, a.ID, script)
	req, _ := http.NewRequest(http.MethodPut, url, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+b.id.Token)
	resp, err := b.http.Do(req)
	if err != nil {
		fatal("upload %s: %v", script, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		fatal("upload %s: %s %s", script, resp.Status, msg)
	}
}

// waitBody polls the gateway until script answers body.
func (b *bench) waitBody(a store.Account, script, body string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: 5 * time.Second}
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+config.Addr(b.cfg.EdgePort)+"/", nil)
		req.Host = b.host(a, script)
		if resp, err := c.Do(req); err == nil {
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && string(got) == body {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	fatal("%s did not answer %q within %s", b.host(a, script), body, timeout)
}

// directAddr is podIP:port of the socket serving script's active version.
func (b *bench) directAddr(script string) string {
	ctx := context.Background()
	var rel apiv1.WorkerRelease
	if err := b.k8s.Get(ctx, client.ObjectKey{Namespace: b.def.Namespace, Name: store.ObjectName(script)}, &rel); err != nil {
		fatal("%v", err)
	}
	version := rel.Spec.Deployments[0].Versions[0].VersionID
	var pods corev1.PodList
	if err := b.k8s.List(ctx, &pods, client.InNamespace(b.def.Namespace), client.HasLabels{"api.cf-worker/bundle"}); err != nil {
		fatal("%v", err)
	}
	for _, p := range pods.Items {
		var sockets map[string]int
		_ = json.Unmarshal([]byte(p.Annotations["api.cf-worker/sockets"]), &sockets)
		if port, ok := sockets[version]; ok && p.Status.PodIP != "" && p.DeletionTimestamp == nil && podReady(&p) {
			return p.Status.PodIP + ":" + strconv.Itoa(port)
		}
	}
	fatal("no pod serves %s", version)
	return ""
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// workerdRSS is the RSS (MiB) of the default account's workerd process; it
// waits until exactly one runs (no rollout in progress).
func (b *bench) workerdRSS() float64 {
	for i := 0; i < 100; i++ {
		var rss []float64
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			args := strings.Split(string(cmdline), "\x00")
			if len(args) > 2 && args[0] == "/bin/workerd" && args[1] == "serve" {
				rss = append(rss, procKB(pid, "VmRSS:"))
			}
		}
		if len(rss) == 1 {
			return rss[0]
		}
		time.Sleep(200 * time.Millisecond)
	}
	fatal("%v", "not exactly one workerd process")
	return 0
}

func procKB(pid int, field string) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// newAccount creates a WorkerAccount (and its namespace) named by a new id.
func (b *bench) newAccount(i int) store.Account {
	raw := make([]byte, 16)
	_, _ = rand.Read(raw)
	a := store.Account{ID: hex.EncodeToString(raw), Name: fmt.Sprintf("bench-%d", i), Subdomain: fmt.Sprintf("bench%d", i), Namespace: fmt.Sprintf("bench-%d", i)}
	ctx := context.Background()
	if err := b.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: a.Namespace}}); err != nil {
		fatal("%v", err)
	}
	wa := &apiv1.WorkerAccount{
		ObjectMeta: metav1.ObjectMeta{Name: a.ID, Namespace: a.Namespace},
		Spec:       apiv1.WorkerAccountSpec{WorkerBundleName: "bundle", DisplayName: a.Name, Subdomain: a.Subdomain},
	}
	if err := b.k8s.Create(ctx, wa); err != nil {
		fatal("%v", err)
	}
	return a
}

type loadResult struct {
	rps      float64
	p50, p99 time.Duration
}

// runLoad sends GETs on conns keep-alive connections for d.
func runLoad(d time.Duration, conns int, url, host string) loadResult {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	var mu sync.Mutex
	var lats []time.Duration
	var failed atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(stop) {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				if host != "" {
					req.Host = host
				}
				t0 := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		log.Printf("%s: %d failed requests", url, failed.Load())
	}
	return loadResult{rps: float64(len(lats)) / d.Seconds(), p50: pct(lats, 50), p99: pct(lats, 99)}
}

// pct is the p-th percentile, rounded for printing.
func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s) - 1) * p / 100
	r := time.Millisecond
	if s[i] < 10*time.Millisecond {
		r = 10 * time.Microsecond
	}
	return s[i].Round(r)
}
