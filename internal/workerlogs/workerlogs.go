// Package workerlogs keeps the invocations of the Workers whose logs are
// enabled (Workers Logs, wrangler's [observability]): each trace event —
// console output, exceptions, outcome, the request — as a JSON line in a
// file per account, script and day, kept for a retention, and searched by
// time, level, version and text.
package workerlogs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/octohq/octo/internal/tail"
)

// DefaultRetention is how long logs are kept: Cloudflare's 3 days.
const DefaultRetention = 3 * 24 * time.Hour

// MaxDayBytes bounds one script's file of one day; past it the day's
// further invocations are dropped (and counted in the log).
const MaxDayBytes = 32 << 20

// MaxResults bounds the entries one search returns.
const MaxResults = 500

// Entry is one kept invocation.
type Entry struct {
	// Time is when the invocation started.
	Time time.Time `json:"time"`
	// Level is the most severe of its console calls ("error" for an
	// exception or an outcome other than ok), "info" without any.
	Level   string `json:"level"`
	Version string `json:"version,omitempty"`
	Outcome string `json:"outcome"`
	// Event is the trace event, in the shape `wrangler tail` prints.
	Event tail.Event `json:"event"`
}

// Query selects entries of one script.
type Query struct {
	Since, Until time.Time
	// Level keeps entries at least this severe: debug, info, warn, error
	// (empty: all).
	Level string
	// Version keeps the entries of versions whose ID starts with it.
	Version string
	// Text keeps entries whose messages, exceptions or URL contain it
	// (case-insensitive).
	Text string
	// Limit bounds the result (0 or more than MaxResults: MaxResults).
	Limit int
}

// Store keeps the entries under a directory: <dir>/<account>/<script>/<YYYY-MM-DD>.jsonl.
type Store struct {
	dir       string
	retention time.Duration
	now       func() time.Time
	log       *slog.Logger

	mu      sync.Mutex
	sizes   map[string]int64 // file → bytes written
	dropped map[string]int   // file → invocations dropped at MaxDayBytes
	pruned  string           // the day pruning last ran
}

// New returns a Store under dir, keeping entries for retention (0:
// DefaultRetention); now is the clock (nil: time.Now).
func New(dir string, retention time.Duration, now func() time.Time, log *slog.Logger) *Store {
	if retention <= 0 {
		retention = DefaultRetention
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{dir: dir, retention: retention, now: now, log: log, sizes: map[string]int64{}, dropped: map[string]int{}}
}

// safeName accepts the account IDs and script names octo makes (lowercase
// letters, digits, '-' and '_'): nothing that could leave the directory.
var safeName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

const day = "2006-01-02"

func (s *Store) file(account, script string, t time.Time) (string, error) {
	if !safeName.MatchString(account) || !safeName.MatchString(script) {
		return "", fmt.Errorf("workerlogs: bad account or script name %q/%q", account, script)
	}
	return filepath.Join(s.dir, account, script, t.UTC().Format(day)+".jsonl"), nil
}

// Keep appends ev (an invocation of ev.Account's ev.ScriptName) to the
// day's file, and removes the files past the retention once a day.
func (s *Store) Keep(ev tail.Event) error {
	t := time.UnixMilli(ev.EventTimestamp)
	if ev.EventTimestamp == 0 {
		t = s.now()
	}
	e := Entry{Time: t.UTC(), Level: level(&ev), Outcome: ev.Outcome, Event: ev}
	if ev.ScriptVersion != nil {
		e.Version = ev.ScriptVersion.ID
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("workerlogs: %w", err)
	}
	line = append(line, '\n')
	path, err := s.file(ev.Account, ev.ScriptName, s.now())
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked()
	if s.sizes[path]+int64(len(line)) > MaxDayBytes {
		if s.dropped[path]++; s.dropped[path]%1000 == 1 {
			s.log.Warn("a script's logs of the day are full; invocations dropped", "file", path, "dropped", s.dropped[path])
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("workerlogs: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("workerlogs: %w", err)
	}
	defer f.Close()
	if s.sizes[path] == 0 {
		if fi, err := f.Stat(); err == nil {
			s.sizes[path] = fi.Size()
		}
	}
	n, err := f.Write(line)
	s.sizes[path] += int64(n)
	if err != nil {
		return fmt.Errorf("workerlogs: %w", err)
	}
	return nil
}

// pruneLocked removes the day files older than the retention, once a day
// (s.mu held).
func (s *Store) pruneLocked() {
	today := s.now().UTC().Format(day)
	if s.pruned == today {
		return
	}
	s.pruned = today
	oldest := s.now().Add(-s.retention).UTC().Format(day)
	files, _ := filepath.Glob(filepath.Join(s.dir, "*", "*", "*.jsonl"))
	for _, f := range files {
		if strings.TrimSuffix(filepath.Base(f), ".jsonl") < oldest {
			if err := os.Remove(f); err == nil {
				delete(s.sizes, f)
				delete(s.dropped, f)
			}
		}
	}
}

// Search returns the entries of a script q selects, newest first.
func (s *Store) Search(account, script string, q Query) ([]Entry, error) {
	limit := q.Limit
	if limit <= 0 || limit > MaxResults {
		limit = MaxResults
	}
	until := q.Until
	if until.IsZero() {
		until = s.now()
	}
	since := q.Since
	if oldest := s.now().Add(-s.retention); since.Before(oldest) {
		since = oldest
	}
	text := strings.ToLower(q.Text)
	out := []Entry{}
	for d := until.UTC().Truncate(24 * time.Hour); !d.Before(since.UTC().Truncate(24 * time.Hour)); d = d.Add(-24 * time.Hour) {
		path, err := s.file(account, script, d)
		if err != nil {
			return nil, err
		}
		entries, err := readDay(path)
		if err != nil {
			return nil, err
		}
		for i := len(entries) - 1; i >= 0 && len(out) < limit; i-- {
			e := entries[i]
			if e.Time.Before(since) || e.Time.After(until) || !atLeast(e.Level, q.Level) ||
				!strings.HasPrefix(e.Version, q.Version) || (text != "" && !strings.Contains(strings.ToLower(searchText(&e.Event)), text)) {
				continue
			}
			out = append(out, e)
		}
		if len(out) >= limit {
			break
		}
	}
	slices.SortStableFunc(out, func(a, b Entry) int { return b.Time.Compare(a.Time) })
	return out, nil
}

// readDay reads one day file (none: no entries).
func readDay(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("workerlogs: %w", err)
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var e Entry
		if json.Unmarshal(bytes.TrimSpace(sc.Bytes()), &e) == nil {
			out = append(out, e)
		}
	}
	return out, sc.Err()
}

// levels orders the console levels, least severe first.
var levels = []string{"debug", "info", "warn", "error"}

func rank(l string) int {
	switch l {
	case "log":
		l = "info"
	case "warning":
		l = "warn"
	}
	return slices.Index(levels, l)
}

func atLeast(l, min string) bool { return min == "" || rank(l) >= rank(min) }

// level is the most severe level of an invocation.
func level(ev *tail.Event) string {
	if len(ev.Exceptions) > 0 || (ev.Outcome != "" && ev.Outcome != "ok") {
		return "error"
	}
	best := "info"
	for _, l := range ev.Logs {
		if rank(l.Level) > rank(best) {
			best = levels[rank(l.Level)]
		}
	}
	return best
}

// searchText is what a text search looks in: the console messages, the
// exceptions and the request's URL.
func searchText(ev *tail.Event) string {
	var b strings.Builder
	for _, l := range ev.Logs {
		for _, m := range l.Message {
			b.Write(m)
			b.WriteByte(' ')
		}
	}
	for _, x := range ev.Exceptions {
		b.WriteString(x.Name + ": " + x.Message + " ")
	}
	b.Write(ev.Event)
	return b.String()
}
