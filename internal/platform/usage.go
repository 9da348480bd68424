package platform

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/metrics"
)

// UsageEvery is how often the pods' CPU time and memory are sampled.
const UsageEvery = 10 * time.Second

// usageSaveEvery is how often the samples are saved besides at Stop.
const usageSaveEvery = time.Minute

// usageSampler reads the kubelet's stats of the Workers' pods every
// UsageEvery into a metrics.Usage, by bundle: the CPU time each pod spent
// since the previous sample and its working set. It saves them to a file
// every minute and when it stops, and loads them when it starts.
type usageSampler struct {
	stats func(ctx context.Context) (map[string]PodStat, error)
	pods  client.Reader
	usage *metrics.Usage
	path  string
	log   *slog.Logger

	// cpu is each pod's CPU time at the previous sample, by UID.
	cpu map[string]uint64
	// bundles are the bundles that had pods at the previous sample.
	bundles map[metrics.UsageKey]bool
	// started is when the sampler was made: pods created before it count
	// only the CPU they spend after their first sample.
	started time.Time

	stop func()
	done chan struct{}
}

// newUsageSampler returns a sampler over usage that saves to path (empty:
// never saved), with its earlier samples loaded.
func newUsageSampler(stats func(ctx context.Context) (map[string]PodStat, error), pods client.Reader, usage *metrics.Usage, path string, log *slog.Logger) *usageSampler {
	s := &usageSampler{stats: stats, pods: pods, usage: usage, path: path, log: log, started: time.Now()}
	if path != "" {
		if err := usage.Load(path); err != nil {
			log.Warn("earlier pod usage not loaded", "err", err)
		}
	}
	return s
}

// start samples until ctx ends or Stop is called.
func (s *usageSampler) start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	s.stop, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(UsageEvery)
		defer t.Stop()
		saved := time.Now()
		for {
			if err := s.sample(ctx); err != nil && ctx.Err() == nil {
				s.log.Debug("pod usage sample", "err", err)
			}
			if s.path != "" && time.Since(saved) >= usageSaveEvery {
				saved = time.Now()
				s.save()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Stop ends the sampling and saves the samples.
func (s *usageSampler) Stop() {
	if s.stop == nil {
		return
	}
	s.stop()
	<-s.done
	if s.path != "" {
		s.save()
	}
}

func (s *usageSampler) save() {
	if err := s.usage.Save(s.path); err != nil {
		s.log.Warn("pod usage not saved", "err", err)
	}
}

// sample records one sample of every Workers' pod: the CPU time it spent
// since the previous sample. A pod seen for the first time counts its CPU
// time since it started if it was created after the sampler, else that
// time is only its baseline (it may be older than the interval). A pod
// whose stats are missing from one sample keeps its baseline.
func (s *usageSampler) sample(ctx context.Context) error {
	var pods metav1.PartialObjectMetadataList
	pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := s.pods.List(ctx, &pods, client.HasLabels{apiv1.LabelBundle}); err != nil {
		return fmt.Errorf("list the Workers' pods: %w", err)
	}
	stats, err := s.stats(ctx)
	if err != nil {
		return err
	}
	cpu := make(map[string]uint64, len(pods.Items))
	type used struct {
		cpu    float64
		memory uint64
	}
	byBundle := map[metrics.UsageKey]*used{}
	for _, p := range pods.Items {
		uid := string(p.UID)
		k := metrics.UsageKey{Account: p.Labels[apiv1.LabelAccount], Bundle: p.Labels[apiv1.LabelBundle]}
		u := byBundle[k]
		if u == nil {
			u = &used{}
			byBundle[k] = u
		}
		prev, seen := s.cpu[uid]
		st, ok := stats[p.Namespace+"/"+p.Name]
		if !ok || st.UID != uid {
			if seen {
				cpu[uid] = prev
			}
			continue
		}
		u.memory += st.MemoryBytes
		if !st.HasCPU {
			if seen {
				cpu[uid] = prev
			}
			continue
		}
		cpu[uid] = st.CPUNanos
		switch {
		case seen && st.CPUNanos >= prev:
			u.cpu += float64(st.CPUNanos-prev) / 1e9
		case seen: // its cgroup started again: the CPU since then
			u.cpu += float64(st.CPUNanos) / 1e9
		case p.CreationTimestamp.After(s.started):
			u.cpu += float64(st.CPUNanos) / 1e9
		}
	}
	s.cpu = cpu
	for k, u := range byBundle {
		s.usage.Observe(k, u.cpu, u.memory)
	}
	for k := range s.bundles {
		if byBundle[k] == nil {
			s.usage.Gone(k)
		}
	}
	s.bundles = make(map[metrics.UsageKey]bool, len(byBundle))
	for k := range byBundle {
		s.bundles[k] = true
	}
	return nil
}

// usageReader reads usage for the dashboard.
func usageReader(u *metrics.Usage) func(ctx context.Context, account, bundle string, from, to time.Time) ([]metrics.UsageMinute, error) {
	return func(_ context.Context, account, bundle string, from, to time.Time) ([]metrics.UsageMinute, error) {
		return u.Range(account, bundle, from, to), nil
	}
}
