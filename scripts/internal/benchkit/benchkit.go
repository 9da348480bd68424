// Package benchkit drives a running octo for the benchmarks: uploads through
// its API, requests through its gateway, a closed-loop load generator.
package benchkit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
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
	"github.com/octohq/octo/internal/cfapi"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
)

// Bench drives a running octo: uploads through its API, requests through
// its gateway, objects through its cluster.
type Bench struct {
	Cfg config.Config
	ID  store.Identity
	// Def is the default account.
	Def store.Account
	K8s client.Client
	// Fatalf reports a failure and exits (after stopping octo).
	Fatalf func(format string, args ...any)
	// UpTook is how long the `octo up` of Up took.
	UpTook time.Duration
	http   *http.Client
	octo   func(args ...string) error
}

// New connects to the octo of cfg; fatalf reports failures.
func New(cfg config.Config, fatalf func(format string, args ...any)) *Bench {
	id, err := store.LoadIdentity(cfg)
	if err != nil {
		fatalf("%v", err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.KubeconfigPath())
	if err != nil {
		fatalf("%v", err)
	}
	scheme, err := store.Scheme()
	if err != nil {
		fatalf("%v", err)
	}
	c, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		fatalf("%v", err)
	}
	return &Bench{Cfg: cfg, ID: id, Def: id.DefaultAccount(), K8s: c, Fatalf: fatalf, http: &http.Client{Timeout: 30 * time.Second}}
}

// Host is the gateway Host of an account's script.
func (b *Bench) Host(a store.Account, script string) string {
	return script + "." + a.Subdomain + ".workers.localhost:" + strconv.Itoa(b.Cfg.EdgePort)
}

// PutBody uploads and deploys an ES module answering body.
func (b *Bench) PutBody(a store.Account, script, body string) {
	b.Put(a, script, fmt.Sprintf("export default { fetch() { return new Response(%q); } };\n", body))
}

// Put uploads and deploys the ES module source as script.
func (b *Bench) Put(a store.Account, script, source string) {
	b.PutWith(a, script, `{"main_module":"index.js","bindings":[],"compatibility_date":"2025-01-01","compatibility_flags":[]}`, source)
}

// PutWith uploads and deploys the ES module source as script (module
// index.js) with the upload metadata JSON metadata.
func (b *Bench) PutWith(a store.Account, script, metadata, source string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	meta, _ := mw.CreateFormField("metadata")
	_, _ = io.WriteString(meta, metadata)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="index.js"; filename="index.js"`)
	h.Set("Content-Type", "application/javascript+module")
	part, _ := mw.CreatePart(h)
	_, _ = io.WriteString(part, source)
	_ = mw.Close()
	url := fmt.Sprintf("http://%s%s/accounts/%s/workers/scripts/%s", config.Addr(b.Cfg.EdgePort), cfapi.BasePath, a.ID, script)
	req, _ := http.NewRequest(http.MethodPut, url, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+b.ID.Token)
	resp, err := b.http.Do(req)
	if err != nil {
		b.Fatalf("upload %s: %v", script, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		b.Fatalf("upload %s: %s %s", script, resp.Status, msg)
	}
}

// WaitBody polls the gateway until script answers body.
func (b *Bench) WaitBody(a store.Account, script, body string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: 5 * time.Second}
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+config.Addr(b.Cfg.EdgePort)+"/", nil)
		req.Host = b.Host(a, script)
		if resp, err := c.Do(req); err == nil {
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && string(got) == body {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("%s did not answer %q within %s", b.Host(a, script), body, timeout)
}

// DirectAddr is podIP:port of the socket serving script's active version.
func (b *Bench) DirectAddr(script string) string {
	ctx := context.Background()
	var rel apiv1.WorkerRelease
	if err := b.K8s.Get(ctx, client.ObjectKey{Namespace: b.Def.Namespace, Name: store.ObjectName(script)}, &rel); err != nil {
		b.Fatalf("%v", err)
	}
	version := rel.Spec.Deployments[0].Versions[0].VersionID
	// The gateway may serve a pod before the kubelet reports it Ready: wait
	// for the report.
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var pods corev1.PodList
		if err := b.K8s.List(ctx, &pods, client.InNamespace(b.Def.Namespace), client.HasLabels{apiv1.LabelBundle}); err != nil {
			b.Fatalf("%v", err)
		}
		for _, p := range pods.Items {
			var sockets map[string]int
			_ = json.Unmarshal([]byte(p.Annotations[apiv1.AnnotationSockets]), &sockets)
			if port, ok := sockets[version]; ok && p.Status.PodIP != "" && p.DeletionTimestamp == nil && PodReady(&p) {
				return p.Status.PodIP + ":" + strconv.Itoa(port)
			}
		}
	}
	b.Fatalf("no pod serves %s", version)
	return ""
}

// PodReady reports whether p is Ready.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// WorkerdRSS is the RSS (MiB) of the default account's workerd process; it
// waits until exactly one runs (no rollout in progress).
func (b *Bench) WorkerdRSS() float64 {
	for i := 0; i < 100; i++ {
		var rss []float64
		for _, pid := range WorkerdPIDs() {
			rss = append(rss, ProcKB(pid, "VmRSS:"))
		}
		if len(rss) == 1 {
			return rss[0]
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.Fatalf("%v", "not exactly one workerd process")
	return 0
}

// ProcKB reads a kB field of /proc/<pid>/status, in MiB.
func ProcKB(pid int, field string) float64 {
	return kbField(fmt.Sprintf("/proc/%d/status", pid), field)
}

// kbField reads a "<field> <n> kB" line of a /proc file, in MiB.
func kbField(path, field string) float64 {
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// NewAccount creates a WorkerAccount (and its namespace) named by a new id.
func (b *Bench) NewAccount(i int) store.Account {
	raw := make([]byte, 16)
	_, _ = rand.Read(raw)
	a := store.Account{ID: hex.EncodeToString(raw), Name: fmt.Sprintf("bench-%d", i), Subdomain: fmt.Sprintf("bench%d", i), Namespace: fmt.Sprintf("bench-%d", i)}
	ctx := context.Background()
	if err := b.K8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: a.Namespace}}); err != nil {
		b.Fatalf("%v", err)
	}
	wa := &apiv1.WorkerAccount{
		ObjectMeta: metav1.ObjectMeta{Name: a.ID, Namespace: a.Namespace},
		Spec:       apiv1.WorkerAccountSpec{WorkerBundleName: "bundle", DisplayName: a.Name, Subdomain: a.Subdomain},
	}
	if err := b.K8s.Create(ctx, wa); err != nil {
		b.Fatalf("%v", err)
	}
	return a
}

// LoadResult is the outcome of a load run.
type LoadResult struct {
	RPS      float64
	P50, P99 time.Duration
	// Failed counts errors and non-200 answers.
	Failed int64
	// Requests counts every request sent, failed ones included.
	Requests int64
}

// Load sends GETs on conns keep-alive connections for d.
func Load(d time.Duration, conns int, url, host string) LoadResult {
	stop := time.Now().Add(d)
	lats, failed := run(conns, url, host, func() bool { return time.Now().Before(stop) })
	return LoadResult{RPS: float64(len(lats)) / d.Seconds(), P50: Pct(lats, 50), P99: Pct(lats, 99), Failed: failed, Requests: int64(len(lats)) + failed}
}

// LoadN sends n GETs on conns keep-alive connections and returns how long
// they took.
func LoadN(n int64, conns int, url, host string) (LoadResult, time.Duration) {
	var sent atomic.Int64
	t0 := time.Now()
	lats, failed := run(conns, url, host, func() bool { return sent.Add(1) <= n })
	took := time.Since(t0)
	return LoadResult{RPS: float64(len(lats)) / took.Seconds(), P50: Pct(lats, 50), P99: Pct(lats, 99), Failed: failed, Requests: int64(len(lats)) + failed}, took
}

// LoadUntil is Load until stop is closed.
func LoadUntil(stop <-chan struct{}, conns int, url, host string) LoadResult {
	t0 := time.Now()
	lats, failed := run(conns, url, host, func() bool {
		select {
		case <-stop:
			return false
		default:
			return true
		}
	})
	return LoadResult{RPS: float64(len(lats)) / time.Since(t0).Seconds(), P50: Pct(lats, 50), P99: Pct(lats, 99), Failed: failed, Requests: int64(len(lats)) + failed}
}

// run sends GETs on conns keep-alive connections while more allows one
// more, and returns the latencies of the 200 answers and the number of
// errors and other answers.
func run(conns int, url, host string, more func() bool) ([]time.Duration, int64) {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	var mu sync.Mutex
	var lats []time.Duration
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			var mine []time.Duration
			for more() {
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
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return lats, failed.Load()
}

// Pct is the p-th percentile, rounded for printing.
func Pct(d []time.Duration, p int) time.Duration {
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

// Up starts the octo binary bin on a new data dir and non-default ports (as
// the e2e suite does), with further `octo up` flags, and returns a Bench on
// it and the function that stops octo and removes the data dir (keeps it,
// printing where, when OCTO_BENCH_KEEP is set). Any failure of the Bench
// stops octo first.
func Up(bin string, flags ...string) (*Bench, func()) {
	binPath, err := filepath.Abs(bin)
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "octo-bench")
	if err != nil {
		log.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	octo := func(args ...string) error {
		if out, err := exec.Command(binPath, append(args, "--data-dir", dataDir)...).CombinedOutput(); err != nil {
			return fmt.Errorf("octo %v: %w\n%s", args, err, out)
		}
		return nil
	}
	down := func() {
		if os.Getenv("OCTO_BENCH_KEEP") != "" {
			// Keep the Workers for another look: `octo up --data-dir` it.
			if err := octo("down"); err != nil {
				log.Print(err)
			}
			log.Printf("OCTO_BENCH_KEEP: data dir %s kept", dataDir)
			return
		}
		if err := octo("down", "--purge", "--yes"); err != nil {
			log.Print(err)
		}
		os.RemoveAll(dir)
	}
	t0 := time.Now()
	if err := octo(append([]string{"up", "--no-kubeconfig-merge", "--edge-port=18787", "--registry-port=15050", "--s3-port=19000", "--apiserver-port=16443", "--kubelet-port=11250"}, flags...)...); err != nil {
		down()
		log.Fatal(err)
	}
	took := time.Since(t0)
	// log.Fatal skips deferred calls: stop octo on any failure too.
	fatal := func(format string, args ...any) {
		down()
		log.Fatalf(format, args...)
	}
	cfg, err := config.Load(dataDir)
	if err != nil {
		fatal("%v", err)
	}
	b := New(cfg, fatal)
	b.octo, b.UpTook = octo, took
	return b, down
}

// Existing returns a Bench on the data dir of an earlier run (kept with
// OCTO_BENCH_KEEP), not started: Octo("up") starts it.
func Existing(bin, dataDir string) *Bench {
	binPath, err := filepath.Abs(bin)
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := config.Load(dataDir)
	if err != nil {
		log.Fatal(err)
	}
	b := New(cfg, log.Fatalf)
	b.octo = func(args ...string) error {
		if out, err := exec.Command(binPath, append(args, "--data-dir", dataDir)...).CombinedOutput(); err != nil {
			return fmt.Errorf("octo %v: %w\n%s", args, err, out)
		}
		return nil
	}
	return b
}

// Octo runs an octo command on the Bench's data dir and returns how long
// it took.
func (b *Bench) Octo(args ...string) time.Duration {
	if b.octo == nil {
		b.Fatalf("Octo: the Bench was not started by Up")
	}
	t0 := time.Now()
	if err := b.octo(args...); err != nil {
		b.Fatalf("%v", err)
	}
	return time.Since(t0)
}

// WorkerdPIDs are the processes of the pods' workerd ("/bin/workerd serve").
func WorkerdPIDs() []int {
	var out []int
	for _, p := range processes() {
		if isWorkerd(p.args) {
			out = append(out, p.pid)
		}
	}
	return out
}

// process is a running process and its command line.
type process struct {
	pid  int
	args []string
}

// processes lists the machine's processes from /proc.
func processes() []process {
	var out []process
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		out = append(out, process{pid: pid, args: strings.Split(string(cmdline), "\x00")})
	}
	return out
}

// isWorkerd reports whether a command line is a pod's workerd.
func isWorkerd(args []string) bool {
	return len(args) > 2 && args[0] == "/bin/workerd" && args[1] == "serve"
}

// WriteConfig renders cfg into dir/config.capnp for bare workerd (its
// modules' paths are relative to dir) and returns the file's path.
func WriteConfig(dir string, cfg workerd.Config) string {
	text, err := cfg.Render()
	if err != nil {
		log.Fatal(err)
	}
	conf := filepath.Join(dir, "config.capnp")
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		log.Fatal(err)
	}
	return conf
}
