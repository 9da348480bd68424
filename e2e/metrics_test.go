//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// requestCounts are a script's requests by status class ("2xx"...).
type requestCounts map[string]float64

// scrape reads octo_worker_requests_total of script from the edge's
// /metrics, as Prometheus does (with the API token).
func scrape(t *testing.T, vars map[string]string, script string) requestCounts {
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
	for _, name := range []string{"controller_runtime_reconcile_total", "octo_bundle_build_duration_seconds"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("/metrics lacks the operators' %s", name)
		}
	}
	return out
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
	u, _ := url.Parse(vars["CLOUDFLARE_API_BASE_URL"])
	resp, err := c.Get(fmt.Sprintf("http://%s/dashboard/api/workers/%s/%s?window=1h", u.Host, vars["CLOUDFLARE_ACCOUNT_ID"], script))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Metrics *dashboardMetrics `json:"metrics"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || resp.StatusCode != http.StatusOK || page.Metrics == nil {
		t.Fatalf("dashboard worker page: %s, %v, metrics %v", resp.Status, err, page.Metrics)
	}
	return *page.Metrics
}

// metricsCounted is TestWorkers' metrics step: requests with known statuses
// through the gateway are counted exactly, in Prometheus' /metrics and in
// the dashboard's per-minute chart data alike. It returns the dashboard's
// total, which must survive `octo down`/`octo up` (metricsSurvived).
func metricsCounted(t *testing.T, w *wranglerCLI, g *gatewayClient, e *env, vars map[string]string, dir string) uint64 {
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
	return m.Total.Requests
}

// metricsSurvived is the down-up check: the dashboard still has the
// requests counted before `octo down`.
func metricsSurvived(t *testing.T, e *env, vars map[string]string, want uint64) {
	m := workerMetrics(t, dashboardClient(t, e, vars), vars, "e2e-status")
	if m.Total.Requests != want {
		t.Errorf("after octo down/up the dashboard counts %d requests of e2e-status, want the %d counted before", m.Total.Requests, want)
	}
}
