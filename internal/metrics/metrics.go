// Package metrics counts the requests of every Worker version by minute:
// requests, status classes and a latency histogram, kept for Retention
// within a fixed number of series, saved to a file and loaded again, and
// exposed to Prometheus (Collector).
//
// The gateway records every request it answers for a Worker (Observe); the
// dashboard reads the minutes back (Range).
package metrics

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Retention is how long minutes are kept: a day, at one-minute resolution.
const Retention = 24 * time.Hour

// retainedMinutes is Retention in minutes.
const retainedMinutes = int64(Retention / time.Minute)

// DefaultMaxSeries bounds the (account, script, version) series a Recorder
// keeps: at most 1,440 minutes of 176 bytes per series, ~500 MB in the
// worst case of every series busy every minute of a day, far less in
// practice (only minutes with requests are kept). The series of the least
// recently seen version goes first.
const DefaultMaxSeries = 2048

// LatencyBounds are the upper bounds, in milliseconds, of the latency
// histogram's buckets; one more bucket holds the rest.
var LatencyBounds = [...]float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}

// Buckets is the number of latency buckets: LatencyBounds and +Inf.
const Buckets = len(LatencyBounds) + 1

// Key names one series: a version of a script of an account. Version is
// empty for requests no version answered (none was running yet).
type Key struct {
	Account string `json:"account"`
	Script  string `json:"script"`
	Version string `json:"version,omitempty"`
}

// Counts are the requests of one minute (or of all time, for Prometheus).
type Counts struct {
	Requests uint64 `json:"requests"`
	// Status counts the answers by class: Status[0] is 1xx … Status[4] 5xx.
	Status [5]uint64 `json:"status"`
	// Latency counts the requests by duration (LatencyBounds).
	Latency [Buckets]uint64 `json:"latency"`
	// DurationMicros is the sum of the requests' durations.
	DurationMicros uint64 `json:"durationMicros"`
}

// Errors counts the answers with a 5xx status: an exception, a limit or
// no Worker to answer.
func (c Counts) Errors() uint64 { return c.Status[4] }

// Quantile estimates the q-quantile (0 < q ≤ 1) of the latency, in
// milliseconds: the upper bound of the bucket where it falls (the last
// bound for the open bucket); 0 without requests.
func (c Counts) Quantile(q float64) float64 {
	var n uint64
	for _, v := range c.Latency {
		n += v
	}
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, v := range c.Latency {
		seen += v
		if seen >= rank {
			if i < len(LatencyBounds) {
				return LatencyBounds[i]
			}
			break
		}
	}
	return LatencyBounds[len(LatencyBounds)-1]
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Requests += o.Requests
	for i := range c.Status {
		c.Status[i] += o.Status[i]
	}
	for i := range c.Latency {
		c.Latency[i] += o.Latency[i]
	}
	c.DurationMicros += o.DurationMicros
}

func (c *Counts) observe(status int, d time.Duration) {
	c.Requests++
	if class := status/100 - 1; class >= 0 && class < len(c.Status) {
		c.Status[class]++
	}
	if d < 0 {
		return
	}
	ms := float64(d) / float64(time.Millisecond)
	i, _ := slices.BinarySearch(LatencyBounds[:], ms)
	c.Latency[i]++
	c.DurationMicros += uint64(max(d.Microseconds(), 0))
}

// Minute is the counts of one minute.
type Minute struct {
	// Start is the minute, as Unix seconds (a multiple of 60).
	Start int64 `json:"start"`
	Counts
}

// series is the minutes of one Key, oldest first, and its totals.
type series struct {
	mu      sync.Mutex
	minutes []Minute
	total   Counts // since the Recorder was made (Prometheus counters)
	seen    int64  // the last minute observed, for eviction
}

// Recorder keeps the series. The zero value is not usable: use New.
type Recorder struct {
	mu        sync.RWMutex
	series    map[Key]*series
	maxSeries int
	now       func() time.Time
}

// New returns an empty Recorder keeping at most maxSeries series (0:
// DefaultMaxSeries); now is the clock (nil: time.Now).
func New(maxSeries int, now func() time.Time) *Recorder {
	if now == nil {
		now = time.Now
	}
	return &Recorder{series: map[Key]*series{}, maxSeries: cmp.Or(maxSeries, DefaultMaxSeries), now: now}
}

// Observe records one answered request of k: its status and how long it
// took. A negative d counts the request without a latency (a WebSocket,
// whose duration is the session's).
func (r *Recorder) Observe(k Key, status int, d time.Duration) {
	minute := r.now().Unix() / 60 * 60
	s := r.get(k, minute)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = minute
	if n := len(s.minutes); n == 0 || s.minutes[n-1].Start < minute {
		s.minutes = append(s.minutes, Minute{Start: minute})
		s.trim(minute)
	}
	// The latest minute; should the clock go back, the request counts there.
	s.minutes[len(s.minutes)-1].observe(status, d)
	s.total.observe(status, d)
}

// get returns k's series, making it (and evicting the least recently seen
// series when the Recorder is full).
func (r *Recorder) get(k Key, minute int64) *series {
	r.mu.RLock()
	s := r.series[k]
	r.mu.RUnlock()
	if s != nil {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s = r.series[k]; s != nil {
		return s
	}
	if len(r.series) >= r.maxSeries {
		var oldest Key
		first := true
		var at int64
		for key, o := range r.series {
			o.mu.Lock()
			seen := o.seen
			o.mu.Unlock()
			if first || seen < at {
				oldest, at, first = key, seen, false
			}
		}
		delete(r.series, oldest)
	}
	s = &series{seen: minute}
	r.series[k] = s
	return s
}

// trim drops the minutes older than Retention before now (s.mu held).
func (s *series) trim(now int64) {
	s.minutes = trimMinutes(s.minutes, now, func(m Minute) int64 { return m.Start })
}

// trimMinutes drops the leading minutes (oldest first) older than
// Retention before now.
func trimMinutes[M any](minutes []M, now int64, start func(M) int64) []M {
	cut := now - retainedMinutes*60
	i := 0
	for i < len(minutes) && start(minutes[i]) <= cut {
		i++
	}
	if i > 0 {
		minutes = slices.Delete(minutes, 0, i)
	}
	return minutes
}

// Point is one minute of a script: its counts in all, and by version.
type Point struct {
	Start     int64             `json:"start"`
	Counts                      // every version's
	ByVersion map[string]Counts `json:"byVersion"`
}

// Range returns the minutes of a script from from (inclusive) to to
// (exclusive), one Point per minute with requests, oldest first. An empty
// account and script ask for every script of every account, summed (by
// version "").
func (r *Recorder) Range(account, script string, from, to time.Time) []Point {
	all := account == "" && script == ""
	lo, hi := from.Unix(), to.Unix()
	byMinute := map[int64]*Point{}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for k, s := range r.series {
		if !all && (k.Account != account || k.Script != script) {
			continue
		}
		version := k.Version
		if all {
			version = ""
		}
		s.mu.Lock()
		for _, m := range s.minutes {
			if m.Start < lo || m.Start >= hi {
				continue
			}
			p := byMinute[m.Start]
			if p == nil {
				p = &Point{Start: m.Start, ByVersion: map[string]Counts{}}
				byMinute[m.Start] = p
			}
			p.Add(m.Counts)
			v := p.ByVersion[version]
			v.Add(m.Counts)
			p.ByVersion[version] = v
		}
		s.mu.Unlock()
	}
	out := make([]Point, 0, len(byMinute))
	for _, p := range byMinute {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Point) int { return cmp.Compare(a.Start, b.Start) })
	return out
}

// Total sums the minutes of Range.
func Total(points []Point) Counts {
	var c Counts
	for _, p := range points {
		c.Add(p.Counts)
	}
	return c
}

// snapshot is the file Save writes.
type snapshot struct {
	Saved  time.Time    `json:"saved"`
	Series []savedKeyed `json:"series"`
}

type savedKeyed struct {
	Key
	Minutes []Minute `json:"minutes"`
}

// Save writes every series' minutes to path (mode 0600), through a
// temporary file and a rename.
func (r *Recorder) Save(path string) error {
	snap := snapshot{Saved: r.now().UTC()}
	r.mu.RLock()
	for k, s := range r.series {
		s.mu.Lock()
		s.trim(snap.Saved.Unix() / 60 * 60)
		if len(s.minutes) > 0 {
			snap.Series = append(snap.Series, savedKeyed{Key: k, Minutes: slices.Clone(s.minutes)})
		}
		s.mu.Unlock()
	}
	r.mu.RUnlock()
	return writeSnapshot(path, "metrics", snap)
}

// Load adds the minutes path holds (Save) that are within Retention; a
// missing file is no error. It may run while requests are observed (a
// gateway serves before its last run's minutes are read): a minute both
// hold counts the requests of both.
func (r *Recorder) Load(path string) error {
	var snap snapshot
	if err := readSnapshot(path, "metrics", &snap); err != nil {
		return err
	}
	now := r.now().Unix() / 60 * 60
	for _, sk := range snap.Series {
		slices.SortFunc(sk.Minutes, func(a, b Minute) int { return cmp.Compare(a.Start, b.Start) })
		s := r.get(sk.Key, now)
		s.mu.Lock()
		s.minutes = mergeMinutes(sk.Minutes, s.minutes)
		s.trim(now)
		if n := len(s.minutes); n > 0 {
			s.seen = max(s.seen, s.minutes[n-1].Start)
		}
		s.mu.Unlock()
	}
	return nil
}

// mergeMinutes merges two lists of minutes, each oldest first, into one:
// the counts of a minute both have are added.
func mergeMinutes(a, b []Minute) []Minute {
	out := make([]Minute, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		switch {
		case a[0].Start < b[0].Start:
			out, a = append(out, a[0]), a[1:]
		case b[0].Start < a[0].Start:
			out, b = append(out, b[0]), b[1:]
		default:
			m := a[0]
			m.Add(b[0].Counts)
			out, a, b = append(out, m), a[1:], b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// each calls f with every series' key and totals.
func (r *Recorder) each(f func(Key, Counts)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for k, s := range r.series {
		s.mu.Lock()
		total := s.total
		s.mu.Unlock()
		f(k, total)
	}
}

// writeSnapshot writes v as JSON to path (mode 0600, its directory 0700),
// through a temporary file and a rename; what names the data in errors.
func writeSnapshot(path, what string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("save %s: %w", what, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save %s: %w", what, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save %s: %w", what, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save %s: %w", what, err)
	}
	return nil
}

// readSnapshot reads the JSON at path into v; a missing file leaves v
// unchanged and is no error.
func readSnapshot(path, what string, v any) error {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load %s: %w", what, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("load %s %s: %w", what, path, err)
	}
	return nil
}
