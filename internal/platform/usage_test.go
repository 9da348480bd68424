package platform

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/metrics"
)

// TestUsageSamples: each bundle gets its pods' CPU time since the previous
// sample; a pod older than the sampler only sets its baseline, a pod created
// later counts its CPU since it started, a restarted counter counts from
// zero, a pod missing from one sample keeps its baseline, and pods that are
// not a bundle's are left out. The samples outlive Stop.
func TestUsageSamples(t *testing.T) {
	workerPod := func(name, uid, bundle string, created time.Time) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(uid),
			CreationTimestamp: metav1.NewTime(created), Labels: map[string]string{apiv1.LabelAccount: "acct"}}}
		if bundle != "" {
			p.Labels[apiv1.LabelBundle] = bundle
		}
		return p
	}
	before := time.Now().Add(-time.Hour)
	c := fake.NewClientBuilder().WithObjects(workerPod("a", "ua", "b0", before), workerPod("other", "uo", "", before)).Build()
	stats := map[string]PodStat{
		"ns/a":     {UID: "ua", CPUNanos: 5e9, HasCPU: true, MemoryBytes: 100 << 20},
		"ns/other": {UID: "uo", CPUNanos: 9e9, HasCPU: true, MemoryBytes: 1 << 30},
	}
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	u := metrics.NewUsage(0, func() time.Time { return now })
	path := filepath.Join(t.TempDir(), "usage.json")
	s := newUsageSampler(func(context.Context) (map[string]PodStat, error) { return stats, nil }, c, u, path, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	cpu := func(bundle string) (float64, uint64) {
		ms := u.Range("acct", bundle, now.Add(-time.Hour), now.Add(time.Hour))
		var sum float64
		var mem uint64
		for _, m := range ms {
			sum += m.CPUSeconds
			mem = max(mem, m.MemoryBytes)
		}
		return sum, mem
	}

	if err := s.sample(ctx); err != nil {
		t.Fatal(err)
	}
	if got, mem := cpu("b0"); got != 0 || mem != 100<<20 {
		t.Fatalf("after the first sample b0 = %v s, %d bytes; want the baseline only (0 s) and the working set", got, mem)
	}
	stats["ns/a"] = PodStat{UID: "ua", CPUNanos: 7.5e9, HasCPU: true, MemoryBytes: 120 << 20}
	if err := c.Create(ctx, workerPod("b", "ub", "b1", time.Now().Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	stats["ns/b"] = PodStat{UID: "ub", CPUNanos: 1e9, HasCPU: true, MemoryBytes: 50 << 20}
	if err := s.sample(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := cpu("b0"); got != 2.5 {
		t.Errorf("b0 = %v s, want the 2.5 s since the first sample", got)
	}
	if got, _ := cpu("b1"); got != 1 {
		t.Errorf("b1 = %v s, want the new pod's 1 s since it started", got)
	}
	if got, _ := cpu(""); got != 0 {
		t.Errorf("a pod of no bundle counted %v s", got)
	}
	stats["ns/a"] = PodStat{UID: "ua", CPUNanos: 1e9, HasCPU: true} // its cgroup started again
	stats["ns/b"] = PodStat{UID: "other-uid", CPUNanos: 99e9, HasCPU: true}
	if err := s.sample(ctx); err != nil {
		t.Fatal(err)
	}
	if a, _ := cpu("b0"); a != 3.5 {
		t.Errorf("after a counter reset b0 = %v s, want 2.5 s and the 1 s since the reset", a)
	}
	if b, _ := cpu("b1"); b != 1 {
		t.Errorf("stats of another pod of the same name counted: b1 = %v s", b)
	}
	// b is back, and a reports no CPU once: both keep their baselines.
	stats["ns/b"] = PodStat{UID: "ub", CPUNanos: 1.5e9, HasCPU: true}
	stats["ns/a"] = PodStat{UID: "ua", MemoryBytes: 10 << 20}
	if err := s.sample(ctx); err != nil {
		t.Fatal(err)
	}
	stats["ns/a"] = PodStat{UID: "ua", CPUNanos: 1.25e9, HasCPU: true}
	if err := s.sample(ctx); err != nil {
		t.Fatal(err)
	}
	if a, _ := cpu("b0"); a != 3.75 {
		t.Errorf("b0 = %v s, want 3.75 s: a missing CPU reading keeps the baseline", a)
	}
	if b, _ := cpu("b1"); b != 1.5 {
		t.Errorf("b1 = %v s, want 1.5 s: a pod missing from a sample keeps its baseline", b)
	}

	s.start(ctx)
	s.Stop()
	back := metrics.NewUsage(0, func() time.Time { return now })
	if err := back.Load(path); err != nil {
		t.Fatal(err)
	}
	if got := back.Range("acct", "b0", now.Add(-time.Hour), now.Add(time.Hour)); len(got) != 1 || got[0].CPUSeconds < 2.5 {
		t.Errorf("saved at Stop: %+v", got)
	}
}
