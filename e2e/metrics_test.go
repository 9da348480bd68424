//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// requestCounts are a script's requests by status class ("2xx"...).
type requestCounts map[string]float64

// scrape reads octo_worker_requests_total of script from the edge's
// /metrics, as Prometheus does (with the API token).
func scrape(t *testing.T, vars map[string]string, script string) requestCounts {
	t.Helper()
	fams := scrapeFamilies(t, vars)
	out := requestCounts{}
	if f := fams["octo_worker_requests_total"]; f != nil {
		for _, m := range f.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["script"] == script {
				out[labels["status_class"]] += m.GetCounter().GetValue()
			}
		}
	}
	for _, name := range []string{"controller_runtime_reconcile_total", "octo_bundle_build_duration_seconds",
		"octo_bundle_rollout_duration_seconds", "octo_bundle_container_restarts", "workqueue_depth"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("/metrics lacks the operators' %s", name)
		}
	}
	return out
}

// scrapeFamilies reads the edge's /metrics, as Prometheus does (with the
// API token).
func scrapeFamilies(t *testing.T, vars map[string]string) map[string]*dto.MetricFamily {
	t.Helper()
	u, _ := url.Parse(vars["CLOUDFLARE_API_BASE_URL"])
	req, _ := http.NewRequest(http.MethodGet, "http://"+u.Host+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+vars["CLOUDFLARE_API_TOKEN"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	return fams
}

// dashboardClient is logged in to the dashboard with the link `octo
// dashboard` prints.
func dashboardClient(t *testing.T, e *env, vars map[string]string) *http.Client {
	t.Helper()
	u, _ := url.Parse(vars["CLOUDFLARE_API_BASE_URL"])
	base := "http://" + u.Host + "/"
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	for _, line := range strings.Split(e.mustOcto("dashboard"), "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, base+"login?token=") {
			resp, err := c.Get(l)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return c
		}
	}
	t.Fatal("octo dashboard printed no login link")
	return nil
}

// dashboardMetrics is the metrics of the dashboard's worker page, last hour.
type dashboardMetrics struct {
	Total struct {
		Requests uint64    `json:"requests"`
		Status   [5]uint64 `json:"status"`
	} `json:"total"`
	Points []struct {
		Requests uint64 `json:"requests"`
	} `json:"points"`
}

func workerMetrics(t *testing.T, c *http.Client, vars map[string]string, script string) dashboardMetrics {
	t.Helper()
	var page struct {
		Metrics *dashboardMetrics `json:"metrics"`
	}
	workerPage(t, c, vars, script, &page)
	if page.Metrics == nil {
		t.Fatalf("the dashboard's page of %s has no metrics", script)
	}
	return *page.Metrics
}

// workerPage reads the dashboard's page of script (last hour) into page.
func workerPage(t *testing.T, c *http.Client, vars map[string]string, script string, page any) {
	t.Helper()
	u, _ := url.Parse(vars["CLOUDFLARE_API_BASE_URL"])
	resp, err := c.Get(fmt.Sprintf("http://%s/dashboard/api/workers/%s/%s?window=1h", u.Host, vars["CLOUDFLARE_ACCOUNT_ID"], script))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(page); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("dashboard page of %s: %s, %v", script, resp.Status, err)
	}
}

// metricsSeen is what the dashboard showed of e2e-status: its requests,
// and the CPU seconds of its pods by minute just before `octo down`.
type metricsSeen struct {
	requests uint64
	usage    minutesSeen
}

// minutesSeen is a Worker's pods' CPU seconds by minute, and when they
// were read.
type minutesSeen struct {
	at  time.Time
	cpu map[time.Time]float64
}

// metricsCounted is TestWorkers' metrics step: requests with known statuses
// through the gateway are counted exactly, in Prometheus' /metrics and in
// the dashboard's per-minute chart data alike; the CPU time of the Worker's
// pods is sampled. It returns what the dashboard showed, which must survive
// `octo down`/`octo up` (metricsSurvived).
func metricsCounted(t *testing.T, w *wranglerCLI, g *gatewayClient, e *env, vars map[string]string, dir string) metricsSeen {
	w.must(t, dir, "", "deploy")
	g.waitBody(t, "e2e-status", "/200", "200")
	before := scrape(t, vars, "e2e-status")
	sent := map[int]int{200: 4, 404: 3, 500: 2}
	for code, n := range sent {
		for range n {
			if got, _, err := g.get("e2e-status", "/"+fmt.Sprint(code)); err != nil || got != code {
				t.Fatalf("GET /%d = %d, %v", code, got, err)
			}
		}
	}
	after := scrape(t, vars, "e2e-status")
	for class, want := range map[string]float64{"2xx": 4, "4xx": 3, "5xx": 2} {
		if d := after[class] - before[class]; d != want {
			t.Errorf("octo_worker_requests_total{status_class=%q} grew by %v, want %v (before %v, after %v)", class, d, want, before, after)
		}
	}
	// The dashboard counts the same requests, minute by minute.
	c := dashboardClient(t, e, vars)
	m := workerMetrics(t, c, vars, "e2e-status")
	var sum uint64
	for _, p := range m.Points {
		sum += p.Requests
	}
	total := after["1xx"] + after["2xx"] + after["3xx"] + after["4xx"] + after["5xx"]
	if float64(m.Total.Requests) != total || sum != m.Total.Requests || float64(m.Total.Status[3]) != after["4xx"] || float64(m.Total.Status[4]) != after["5xx"] {
		t.Errorf("dashboard: %d requests (%d in the points), status %v; /metrics: %v", m.Total.Requests, sum, m.Total.Status, after)
	}
	usageSampled(t, c, vars, "e2e-status")
	return metricsSeen{requests: m.Total.Requests}
}

// usageSampled waits until the dashboard shows CPU time of the pods that
// run script (sampled from the kubelet every 10 s) and checks that /metrics
// has the same bundle's octo_bundle_cpu_seconds_total.
func usageSampled(t *testing.T, c *http.Client, vars map[string]string, script string) {
	t.Helper()
	type usage struct {
		Bundles []struct {
			Name    string `json:"name"`
			Workers int    `json:"workers"`
		} `json:"bundles"`
		CPUSeconds float64 `json:"cpuSeconds"`
		Points     []struct {
			MemoryBytes uint64 `json:"memoryBytes"`
		} `json:"points"`
	}
	var got usage
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(2 * time.Second) {
		var page struct {
			Usage *usage `json:"usage"`
		}
		if workerPage(t, c, vars, script, &page); page.Usage == nil {
			t.Fatalf("the dashboard's page of %s has no usage", script)
		}
		got = *page.Usage
		if got.CPUSeconds > 0 && len(got.Bundles) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard shows no CPU time of %s's pods after 60 s: %+v", script, got)
		}
	}
	var memory uint64
	for _, p := range got.Points {
		memory = max(memory, p.MemoryBytes)
	}
	if memory < 1<<20 || got.Bundles[0].Workers < 1 {
		t.Errorf("usage of %s = %+v: want the pods' working set (≥ 1 MiB) and the bundle's Workers", script, got)
	}
	bundle := got.Bundles[0].Name
	if cpu := bundleCPU(t, vars, bundle); cpu <= 0 {
		t.Errorf("octo_bundle_cpu_seconds_total{bundle=%q} = %v, want > 0 (the dashboard shows %.3f s)", bundle, cpu, got.CPUSeconds)
	}
}

// usageMinutes reads the CPU seconds of script's pods by minute, last hour.
func usageMinutes(t *testing.T, c *http.Client, vars map[string]string, script string) minutesSeen {
	t.Helper()
	var page struct {
		Usage *struct {
			Points []struct {
				Start      time.Time `json:"start"`
				CPUSeconds float64   `json:"cpuSeconds"`
			} `json:"points"`
		} `json:"usage"`
	}
	out := minutesSeen{at: time.Now(), cpu: map[time.Time]float64{}}
	if workerPage(t, c, vars, script, &page); page.Usage == nil {
		t.Fatalf("the dashboard's page of %s has no usage", script)
	}
	for _, p := range page.Usage.Points {
		out.cpu[p.Start.UTC()] = p.CPUSeconds
	}
	return out
}

// bundleCPU reads octo_bundle_cpu_seconds_total of a bundle from /metrics.
func bundleCPU(t *testing.T, vars map[string]string, bundle string) float64 {
	t.Helper()
	fams := scrapeFamilies(t, vars)
	if f := fams["octo_bundle_cpu_seconds_total"]; f != nil {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "bundle" && l.GetValue() == bundle {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// loggedEntries searches the dashboard's kept logs of script for text.
func loggedEntries(t *testing.T, c *http.Client, vars map[string]string, script, text string) (enabled bool, entries []map[string]any) {
	t.Helper()
	u, _ := url.Parse(vars["CLOUDFLARE_API_BASE_URL"])
	resp, err := c.Get(fmt.Sprintf("http://%s/dashboard/api/workers/%s/%s/logs?window=24h&q=%s", u.Host, vars["CLOUDFLARE_ACCOUNT_ID"], script, url.QueryEscape(text)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Enabled bool             `json:"enabled"`
		Entries []map[string]any `json:"entries"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("dashboard logs of %s: %s, %v", script, resp.Status, err)
	}
	return out.Enabled, out.Entries
}

// workersLogs is TestWorkers' Workers Logs step: a Worker deployed with
// [observability] enabled keeps the console output of its invocations,
// found by text in the dashboard; e2e-status, without it, keeps nothing
// (no file either). It returns the marker that must survive down/up.
func workersLogs(t *testing.T, w *wranglerCLI, g *gatewayClient, e *env, vars map[string]string, dir string) string {
	w.must(t, dir, "", "deploy")
	g.waitBody(t, "e2e-logged", "/?m=ready", "logged ready")
	marker := fmt.Sprintf("marker-%d", time.Now().UnixNano())
	for _, m := range []string{marker, "warn-" + marker} {
		if code, body, err := g.get("e2e-logged", "/?m="+m); err != nil || code != 200 || body != "logged "+m {
			t.Fatalf("GET ?m=%s = %d %q %v", m, code, body, err)
		}
	}
	c := dashboardClient(t, e, vars)
	var entries []map[string]any
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		enabled, got := loggedEntries(t, c, vars, "e2e-logged", marker)
		if !enabled {
			t.Fatal("the dashboard says e2e-logged keeps no logs; wrangler deploy sent [observability] enabled = true")
		}
		if len(got) == 2 {
			entries = got
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard found %d invocations with %s within 30 s, want 2: %v", len(got), marker, got)
		}
	}
	if entries[0]["level"] != "warn" || entries[1]["level"] != "info" || !strings.Contains(fmt.Sprint(entries[1]["logs"]), "e2e-logged saw "+marker) {
		t.Errorf("entries = %v, want the warn invocation first, then the info one with its console.log", entries)
	}
	if enabled, got := loggedEntries(t, c, vars, "e2e-status", ""); enabled || len(got) != 0 {
		t.Errorf("e2e-status keeps no logs, but the dashboard shows enabled=%v and %d entries", enabled, len(got))
	}
	if files, _ := filepath.Glob(filepath.Join(e.cfg.Path("worker-logs"), "*", "e2e-status", "*")); len(files) != 0 {
		t.Errorf("files of e2e-status's logs: %v", files)
	}
	return marker
}

// logsSurvived is the down-up check: the kept invocations are found again.
func logsSurvived(t *testing.T, e *env, vars map[string]string, marker string) {
	if _, got := loggedEntries(t, dashboardClient(t, e, vars), vars, "e2e-logged", marker); len(got) != 2 {
		t.Errorf("after octo down/up the dashboard finds %d invocations with %s, want 2", len(got), marker)
	}
}

// metricsSurvived is the down-up check: the dashboard still has the
// requests counted before `octo down`.
func metricsSurvived(t *testing.T, e *env, vars map[string]string, want metricsSeen) {
	c := dashboardClient(t, e, vars)
	m := workerMetrics(t, c, vars, "e2e-status")
	if m.Total.Requests != want.requests {
		t.Errorf("after octo down/up the dashboard counts %d requests of e2e-status, want the %d counted before", m.Total.Requests, want.requests)
	}
	// The minutes that had ended before down, read just before it, are
	// back as they were (saved at down, loaded at up).
	after := usageMinutes(t, c, vars, "e2e-status")
	ended := want.usage.at.Truncate(time.Minute)
	compared := 0
	for m, cpu := range want.usage.cpu {
		if !m.Before(ended) || cpu == 0 {
			continue
		}
		compared++
		if d := after.cpu[m] - cpu; d > 1e-6 || d < -1e-6 {
			t.Errorf("after octo down/up the minute %s shows %.4f s of CPU of e2e-status's pods, before %.4f s", m.Format(time.TimeOnly), after.cpu[m], cpu)
		}
	}
	if compared == 0 {
		t.Errorf("no ended minute with CPU of e2e-status's pods before down: %v", want.usage.cpu)
	}
}
