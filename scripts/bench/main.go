// Command bench measures octo on this machine and prints the figures recorded
// in docs/benchmarks.md: binary size, cold and warm `octo up`, idle memory of
// every octo process, and `kubectl apply` → pod serving. Run it as root with
// no other octo running: `make bench`.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/octohq/octo/e2e/workload"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/scripts/internal/benchkit"
)

func main() {
	bin := flag.String("octo", "bin/octo", "octo binary")
	runs := flag.Int("runs", 3, "repetitions of each timed step")
	idle := flag.Duration("idle", 30*time.Second, "settle time before measuring idle memory")
	wranglerRuns := flag.Int("wrangler-runs", 10, "wrangler deploy repetitions (0 = skip; needs npm ci --prefix e2e)")
	flag.Parse()
	b := &bench{bin: mustAbs(*bin)}
	dir, err := os.MkdirTemp("", "octo-bench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	b.dataDir = filepath.Join(dir, "data")
	defer b.octo("down", "--purge", "--yes")

	st, err := os.Stat(b.bin)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("| binary size | %.1f MB |\n", float64(st.Size())/1e6)

	var cold, warm, apply []time.Duration
	for i := 0; i < *runs; i++ {
		t0 := time.Now()
		b.mustOcto("up", "--no-kubeconfig-merge", "--edge-port=18787", "--registry-port=15050",
			"--s3-port=19000", "--apiserver-port=16443", "--kubelet-port=11250")
		cold = append(cold, time.Since(t0))
		if i < *runs-1 {
			b.mustOcto("down", "--purge", "--yes")
		}
	}
	cfg, err := config.Load(b.dataDir)
	if err != nil {
		log.Fatal(err)
	}
	var deploy, dry []time.Duration
	if *wranglerRuns > 0 {
		deploy, dry = benchWrangler(cfg, *wranglerRuns)
	}
	creds, err := config.LoadRegistryCredentials(cfg)
	if err != nil {
		log.Fatal(err)
	}
	image, err := workload.PushHello(cfg.RegistryAddr(), "bench/hello:1", &authn.Basic{Username: creds.Username, Password: creds.Password})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	cs := client(cfg)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}, metav1.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	for i := 0; i < *runs; i++ {
		app := fmt.Sprintf("apply-%d", i)
		t0 := time.Now()
		if err := workload.Deploy(ctx, cs, "bench", app, image, 1); err != nil {
			log.Fatal(err)
		}
		if _, err := waitServing(cs, app, 1); err != nil {
			log.Fatal(err)
		}
		apply = append(apply, time.Since(t0))
	}
	if err := workload.Deploy(ctx, cs, "bench", "hello", image, 2); err != nil {
		log.Fatal(err)
	}
	if _, err := waitServing(cs, "hello", 2); err != nil {
		log.Fatal(err)
	}
	for i := 0; i < *runs; i++ {
		b.mustOcto("down")
		t0 := time.Now()
		b.mustOcto("up")
		if _, err := waitServing(client(cfg), "hello", 2); err != nil {
			log.Fatal(err)
		}
		warm = append(warm, time.Since(t0))
	}
	time.Sleep(*idle)
	mem := benchkit.MemoryOf(cfg)

	fmt.Printf("| cold `octo up` (empty data dir) → ready | %s |\n", summary(cold))
	if len(deploy) > 0 {
		fmt.Printf("| `wrangler deploy` of a hello-world ES module against octo (wall) | %s |\n", summary(deploy))
		fmt.Printf("| the same `wrangler deploy --dry-run` (wrangler's own overhead) | %s |\n", summary(dry))
	}
	fmt.Printf("| warm `octo up` → ready with the previous pods serving | %s |\n", summary(warm))
	fmt.Printf("| Deployment created → pod serving through its Service | %s |\n", summary(apply))
	fmt.Printf("| idle RSS after %s, %d pods: daemon / containerd / %d shims / total | %.0f / %.0f / %.0f / **%.0f MB** |\n",
		*idle, 2+*runs, mem.Shims, mem.DaemonRSS, mem.ContainerdRSS, mem.ShimsRSS, mem.DaemonRSS+mem.ContainerdRSS+mem.ShimsRSS)
	fmt.Printf("| idle PSS of octo's processes and the pods' (shared binary pages counted once) | **%.0f MB** |\n", mem.PSS)
}

type bench struct{ bin, dataDir string }

// benchWrangler times the real wrangler deploying the e2e esm project, and
// the same command with --dry-run (no API calls).
func benchWrangler(cfg config.Config, runs int) (deploy, dry []time.Duration) {
	w, err := workload.NewWrangler(cfg, "esm")
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	run := func(args ...string) time.Duration {
		d, err := w.Run(args...)
		if err != nil {
			log.Fatal(err)
		}
		return d
	}
	for i := 0; i < runs; i++ {
		deploy = append(deploy, run("deploy"))
		dry = append(dry, run("deploy", "--dry-run", "--outdir", filepath.Join(w.Dir, "dist")))
	}
	return deploy, dry
}

func (b *bench) octo(args ...string) ([]byte, error) {
	cmd := exec.Command(b.bin, append(args, "--data-dir", b.dataDir)...)
	return cmd.CombinedOutput()
}

func (b *bench) mustOcto(args ...string) {
	if out, err := b.octo(args...); err != nil {
		log.Fatalf("octo %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func client(cfg config.Config) kubernetes.Interface {
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.KubeconfigPath())
	if err != nil {
		log.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(rc)
}

func waitServing(cs kubernetes.Interface, app string, n int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return workload.WaitServing(ctx, cs, "bench", app, n)
}

// summary prints the median and the range.
func summary(d []time.Duration) string {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	r := func(x time.Duration) string { return x.Round(10 * time.Millisecond).String() }
	return fmt.Sprintf("median **%s** (min %s, max %s, n=%d)", r(s[len(s)/2]), r(s[0]), r(s[len(s)-1]), len(s))
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		log.Fatal(err)
	}
	return a
}
