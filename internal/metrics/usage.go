package metrics

import (
	"cmp"
	"maps"
	"slices"
	"sync"
	"time"
)

// UsageKey names the pods of one WorkerBundle: the pods that run a group
// of an account's Workers (see the controller's sharded bundles).
type UsageKey struct {
	Account string `json:"account"`
	Bundle  string `json:"bundle"`
}

// UsageMinute is what the pods of a bundle used in one minute.
type UsageMinute struct {
	// Start is the minute, as Unix seconds (a multiple of 60).
	Start int64 `json:"start"`
	// CPUSeconds is the CPU time the pods' containers spent in the minute.
	CPUSeconds float64 `json:"cpuSeconds"`
	// MemoryBytes is the largest working set of the pods, summed, that a
	// sample of the minute saw.
	MemoryBytes uint64 `json:"memoryBytes"`
}

// usageSeries is the minutes of one UsageKey, oldest first, and its totals.
type usageSeries struct {
	minutes []UsageMinute
	cpu     float64 // CPU seconds since the Usage was made (Prometheus)
	memory  uint64  // the latest sample's working set
	seen    int64   // the last minute observed, for eviction
}

// Usage keeps the CPU time and memory of every bundle's pods by minute, for
// Retention, within a fixed number of series: workerd reports no CPU time
// per invocation (its trace events carry cpuTime 0), so the pods' are what
// there is to show. The zero value is not usable: use NewUsage.
type Usage struct {
	mu        sync.Mutex
	series    map[UsageKey]*usageSeries
	maxSeries int
	now       func() time.Time
}

// NewUsage returns an empty Usage keeping at most maxSeries bundles (0:
// DefaultMaxSeries); now is the clock (nil: time.Now).
func NewUsage(maxSeries int, now func() time.Time) *Usage {
	if now == nil {
		now = time.Now
	}
	return &Usage{series: map[UsageKey]*usageSeries{}, maxSeries: cmp.Or(maxSeries, DefaultMaxSeries), now: now}
}

// Observe records one sample of k's pods: the CPU seconds they spent since
// the previous sample and their working set now.
func (u *Usage) Observe(k UsageKey, cpuSeconds float64, memoryBytes uint64) {
	minute := u.now().Unix() / 60 * 60
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.get(k, minute)
	s.seen = minute
	if n := len(s.minutes); n == 0 || s.minutes[n-1].Start < minute {
		s.minutes = append(s.minutes, UsageMinute{Start: minute})
		s.minutes = trimMinutes(s.minutes, minute, func(m UsageMinute) int64 { return m.Start })
	}
	m := &s.minutes[len(s.minutes)-1]
	m.CPUSeconds += max(cpuSeconds, 0)
	m.MemoryBytes = max(m.MemoryBytes, memoryBytes)
	s.cpu += max(cpuSeconds, 0)
	s.memory = memoryBytes
}

// Gone records that k has no pods any more: its working set is 0 (its
// minutes stay).
func (u *Usage) Gone(k UsageKey) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if s := u.series[k]; s != nil {
		s.memory = 0
	}
}

// get returns k's series, making it and evicting the least recently seen
// one when full (u.mu held).
func (u *Usage) get(k UsageKey, minute int64) *usageSeries {
	if s := u.series[k]; s != nil {
		return s
	}
	if len(u.series) >= u.maxSeries {
		oldest := slices.MinFunc(slices.Collect(maps.Keys(u.series)), func(a, b UsageKey) int {
			return cmp.Compare(u.series[a].seen, u.series[b].seen)
		})
		delete(u.series, oldest)
	}
	s := &usageSeries{seen: minute}
	u.series[k] = s
	return s
}

// Range returns the minutes of a bundle from from (inclusive) to to
// (exclusive), oldest first; an empty account and bundle sum every bundle.
func (u *Usage) Range(account, bundle string, from, to time.Time) []UsageMinute {
	all := account == "" && bundle == ""
	lo, hi := from.Unix(), to.Unix()
	byMinute := map[int64]*UsageMinute{}
	u.mu.Lock()
	for k, s := range u.series {
		if !all && (k.Account != account || k.Bundle != bundle) {
			continue
		}
		for _, m := range s.minutes {
			if m.Start < lo || m.Start >= hi {
				continue
			}
			p := byMinute[m.Start]
			if p == nil {
				p = &UsageMinute{Start: m.Start}
				byMinute[m.Start] = p
			}
			p.CPUSeconds += m.CPUSeconds
			p.MemoryBytes += m.MemoryBytes
		}
	}
	u.mu.Unlock()
	out := make([]UsageMinute, 0, len(byMinute))
	for _, p := range byMinute {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b UsageMinute) int { return cmp.Compare(a.Start, b.Start) })
	return out
}

// usageSnapshot is the file Save writes.
type usageSnapshot struct {
	Saved  time.Time    `json:"saved"`
	Series []savedUsage `json:"series"`
}

type savedUsage struct {
	UsageKey
	Minutes []UsageMinute `json:"minutes"`
}

// Save writes every series' minutes to path (mode 0600), through a
// temporary file and a rename.
func (u *Usage) Save(path string) error {
	snap := usageSnapshot{Saved: u.now().UTC()}
	now := snap.Saved.Unix() / 60 * 60
	u.mu.Lock()
	for k, s := range u.series {
		s.minutes = trimMinutes(s.minutes, now, func(m UsageMinute) int64 { return m.Start })
		if len(s.minutes) > 0 {
			snap.Series = append(snap.Series, savedUsage{UsageKey: k, Minutes: slices.Clone(s.minutes)})
		}
	}
	u.mu.Unlock()
	return writeSnapshot(path, "usage", snap)
}

// Load adds the minutes path holds (Save) that are within Retention; a
// missing file is no error. Call it before the first Observe.
func (u *Usage) Load(path string) error {
	var snap usageSnapshot
	if err := readSnapshot(path, "usage", &snap); err != nil {
		return err
	}
	now := u.now().Unix() / 60 * 60
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, su := range snap.Series {
		slices.SortFunc(su.Minutes, func(a, b UsageMinute) int { return cmp.Compare(a.Start, b.Start) })
		s := u.get(su.UsageKey, now)
		s.minutes = trimMinutes(append(s.minutes, su.Minutes...), now, func(m UsageMinute) int64 { return m.Start })
		if n := len(s.minutes); n > 0 {
			s.seen = s.minutes[n-1].Start
		}
	}
	return nil
}

// eachUsage calls f with every series' key, CPU seconds since the Usage was
// made and latest working set.
func (u *Usage) eachUsage(f func(k UsageKey, cpuSeconds float64, memoryBytes uint64)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for k, s := range u.series {
		f(k, s.cpu, s.memory)
	}
}
