package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestUsageObserveRangeAndSave(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 5, 10, 0, 5, 0, time.UTC)}
	u := NewUsage(0, c.now)
	b0 := UsageKey{Account: "a", Bundle: "a-0"}
	b1 := UsageKey{Account: "a", Bundle: "a-1"}
	u.Observe(b0, 0.25, 40<<20)
	u.Observe(b0, 0.5, 60<<20) // same minute: CPU adds up, memory keeps the largest
	u.Observe(b0, -1, 10<<20)  // a restarted pod's counter: no negative CPU
	u.Observe(b1, 1, 30<<20)
	c.t = c.t.Add(time.Minute)
	u.Observe(b0, 2, 50<<20)

	got := u.Range("a", "a-0", c.t.Add(-time.Hour), c.t.Add(time.Minute))
	if len(got) != 2 || got[0].CPUSeconds != 0.75 || got[0].MemoryBytes != 60<<20 || got[1].CPUSeconds != 2 {
		t.Fatalf("a-0 = %+v, want 0.75 s / 60 MiB then 2 s", got)
	}
	all := u.Range("", "", c.t.Add(-time.Hour), c.t.Add(time.Minute))
	if len(all) != 2 || all[0].CPUSeconds != 1.75 || all[0].MemoryBytes != 90<<20 {
		t.Fatalf("all = %+v, want both bundles summed", all)
	}

	path := filepath.Join(t.TempDir(), "m", "usage.json")
	if err := u.Save(path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved file: %v %v, want mode 0600", fi, err)
	}
	c.t = c.t.Add(Retention - time.Minute) // the first minute is now out
	back := NewUsage(0, c.now)
	if err := back.Load(path); err != nil {
		t.Fatal(err)
	}
	if got := back.Range("a", "a-0", c.t.Add(-48*time.Hour), c.t); len(got) != 1 || got[0].CPUSeconds != 2 {
		t.Fatalf("loaded = %+v, want the minute within Retention", got)
	}
	if err := NewUsage(0, nil).Load(filepath.Join(t.TempDir(), "missing.json")); err != nil {
		t.Errorf("a missing file: %v", err)
	}
}

func TestUsageMaxSeriesAndCollector(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
	u := NewUsage(2, c.now)
	u.Observe(UsageKey{"a", "old"}, 1, 1)
	c.t = c.t.Add(time.Minute)
	u.Observe(UsageKey{"a", "b"}, 1.5, 2048)
	u.Observe(UsageKey{"a", "c"}, 1, 1) // evicts "old"
	if n := len(u.Range("a", "old", c.t.Add(-time.Hour), c.t.Add(time.Hour))); n != 0 {
		t.Errorf("the least recently seen bundle kept %d minutes", n)
	}
	want := `
# HELP octo_bundle_cpu_seconds_total CPU time spent by the pods of a WorkerBundle (the Workers it runs share it), from the kubelet's stats.
# TYPE octo_bundle_cpu_seconds_total counter
octo_bundle_cpu_seconds_total{account="a",bundle="b"} 1.5
octo_bundle_cpu_seconds_total{account="a",bundle="c"} 1
`
	if err := testutil.CollectAndCompare(UsageCollector{u}, strings.NewReader(want), "octo_bundle_cpu_seconds_total"); err != nil {
		t.Error(err)
	}
}
