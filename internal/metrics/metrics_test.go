package metrics

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestObserveAndRange(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 5, 10, 0, 30, 0, time.UTC)}
	r := New(0, c.now)
	a1 := Key{Account: "a", Script: "s", Version: "v1"}
	a2 := Key{Account: "a", Script: "s", Version: "v2"}
	for range 3 {
		r.Observe(a1, 200, 3*time.Millisecond)
	}
	r.Observe(a2, 503, 40*time.Millisecond)
	r.Observe(Key{Account: "a", Script: "other"}, 200, time.Millisecond)
	c.t = c.t.Add(time.Minute)
	r.Observe(a1, 404, 700*time.Millisecond)

	pts := r.Range("a", "s", c.t.Add(-time.Hour), c.t.Add(time.Minute))
	if len(pts) != 2 || pts[0].Start != time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC).Unix() {
		t.Fatalf("points = %+v, want two minutes", pts)
	}
	p := pts[0]
	if p.Requests != 4 || p.Status[1] != 3 || p.Errors() != 1 || p.ByVersion["v1"].Requests != 3 || p.ByVersion["v2"].Errors() != 1 {
		t.Errorf("first minute = %+v", p)
	}
	if q := p.Quantile(0.5); q != 5 {
		t.Errorf("p50 = %v ms, want 5 (3 ms falls in the ≤5 ms bucket)", q)
	}
	if q := p.Quantile(0.99); q != 50 {
		t.Errorf("p99 = %v ms, want 50", q)
	}
	if tot := Total(pts); tot.Requests != 5 || tot.Status[3] != 1 || tot.DurationMicros != 3*3000+40000+700000 {
		t.Errorf("total = %+v", tot)
	}
	if got := r.Range("a", "s", c.t.Truncate(time.Minute), c.t.Add(time.Minute)); len(got) != 1 || got[0].Requests != 1 {
		t.Errorf("the last minute alone = %+v", got)
	}
}

// A day's minutes are kept; older ones go.
func TestRetention(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)}
	r := New(0, c.now)
	k := Key{Account: "a", Script: "s", Version: "v"}
	r.Observe(k, 200, time.Millisecond)
	c.t = c.t.Add(Retention - time.Minute)
	r.Observe(k, 200, time.Millisecond)
	if got := r.Range("a", "s", time.Time{}, c.t.Add(time.Hour)); len(got) != 2 {
		t.Fatalf("within a day: %d minutes, want 2", len(got))
	}
	c.t = c.t.Add(2 * time.Minute)
	r.Observe(k, 200, time.Millisecond)
	if got := r.Range("a", "s", time.Time{}, c.t.Add(time.Hour)); len(got) != 2 || got[0].Start == time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC).Unix() {
		t.Errorf("after a day: %+v, want the first minute gone", got)
	}
}

// The series of the least recently seen version goes when the Recorder is full.
func TestMaxSeries(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)}
	r := New(2, c.now)
	r.Observe(Key{Account: "a", Script: "old"}, 200, time.Millisecond)
	c.t = c.t.Add(time.Minute)
	r.Observe(Key{Account: "a", Script: "mid"}, 200, time.Millisecond)
	c.t = c.t.Add(time.Minute)
	r.Observe(Key{Account: "a", Script: "new"}, 200, time.Millisecond)
	if old := r.Range("a", "old", time.Time{}, c.t.Add(time.Hour)); len(r.series) != 2 || len(old) != 0 {
		t.Errorf("series = %d, the oldest kept: %v", len(r.series), old)
	}
}

// Save and Load keep the minutes across a restart.
func TestSaveLoad(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
	r := New(0, c.now)
	k := Key{Account: "a", Script: "s", Version: "v"}
	r.Observe(k, 200, 2*time.Millisecond)
	r.Observe(k, 500, 2*time.Millisecond)
	path := filepath.Join(t.TempDir(), "m", "metrics.json")
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(10 * time.Minute)
	r2 := New(0, c.now)
	if err := r2.Load(path); err != nil {
		t.Fatal(err)
	}
	r2.Observe(k, 200, time.Millisecond)
	got := r2.Range("a", "s", time.Time{}, c.t.Add(time.Minute))
	if len(got) != 2 || got[0].Requests != 2 || got[0].Errors() != 1 || got[1].Requests != 1 {
		t.Errorf("after load: %+v", got)
	}
	if err := New(0, c.now).Load(filepath.Join(t.TempDir(), "none.json")); err != nil {
		t.Errorf("a missing file: %v", err)
	}
}

// Load may come after the first requests: the loaded minutes go before
// them, and a minute both hold counts the requests of both.
func TestLoadAfterObserve(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
	r := New(0, c.now)
	k := Key{Account: "a", Script: "s", Version: "v"}
	r.Observe(k, 200, time.Millisecond)
	c.t = c.t.Add(2 * time.Minute)
	r.Observe(k, 200, time.Millisecond)
	path := filepath.Join(t.TempDir(), "metrics.json")
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	r2 := New(0, c.now)
	r2.Observe(k, 500, time.Millisecond) // the saved second minute's
	c.t = c.t.Add(time.Minute)
	r2.Observe(k, 200, time.Millisecond)
	if err := r2.Load(path); err != nil {
		t.Fatal(err)
	}
	got := r2.Range("a", "s", time.Time{}, c.t.Add(time.Minute))
	if len(got) != 3 || got[0].Requests != 1 || got[1].Requests != 2 || got[1].Errors() != 1 || got[2].Requests != 1 {
		t.Fatalf("after a late load: %+v, want minutes of 1, 2 (one error) and 1 requests", got)
	}
	r2.Observe(k, 200, time.Millisecond)
	if got := r2.Range("a", "s", c.t, c.t.Add(time.Minute)); len(got) != 1 || got[0].Requests != 2 {
		t.Fatalf("a request after the load: %+v, want it in the latest minute", got)
	}
}

func TestCollector(t *testing.T) {
	r := New(0, nil)
	k := Key{Account: "a", Script: "s", Version: "v"}
	r.Observe(k, 200, 3*time.Millisecond)
	r.Observe(k, 200, 3*time.Millisecond)
	r.Observe(k, 502, 30*time.Millisecond)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(Collector{R: r})
	want := `
# HELP octo_worker_requests_total Requests answered for a Worker version through the gateway, by status class (2xx, 5xx...).
# TYPE octo_worker_requests_total counter
octo_worker_requests_total{account="a",script="s",status_class="2xx",version="v"} 2
octo_worker_requests_total{account="a",script="s",status_class="5xx",version="v"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "octo_worker_requests_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "octo_worker_request_duration_seconds"); err != nil || n != 1 {
		t.Errorf("histograms = %d, %v", n, err)
	}
}

// BenchmarkObserve is the cost the gateway adds to a request.
func BenchmarkObserve(b *testing.B) {
	r := New(0, nil)
	k := Key{Account: "0123456789abcdef0123456789abcdef", Script: "hello", Version: "11111111-1111-4111-8111-111111111111"}
	b.ReportAllocs()
	for b.Loop() {
		r.Observe(k, 200, 3*time.Millisecond)
	}
}

// Range of no account and no script sums every series.
func TestRangeAll(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
	r := New(0, c.now)
	r.Observe(Key{Account: "a", Script: "s", Version: "v1"}, 200, time.Millisecond)
	r.Observe(Key{Account: "b", Script: "t", Version: "v2"}, 500, time.Millisecond)
	pts := r.Range("", "", c.t.Add(-time.Hour), c.t.Add(time.Hour))
	if len(pts) != 1 || pts[0].Requests != 2 || pts[0].Errors() != 1 || pts[0].ByVersion[""].Requests != 2 || len(pts[0].ByVersion) != 1 {
		t.Errorf("all = %+v", pts)
	}
}
