package workerlogs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/octohq/octo/internal/tail"
)

func event(at time.Time, version, outcome string, logs ...tail.Log) tail.Event {
	return tail.Event{Account: "acct1", ScriptName: "app", Outcome: outcome, EventTimestamp: at.UnixMilli(),
		ScriptVersion: &tail.ScriptVersion{ID: version}, Logs: logs, Event: json.RawMessage(`{"request":{"url":"https://app.example/path"}}`)}
}

func logLine(level, msg string) tail.Log {
	b, _ := json.Marshal(msg)
	return tail.Log{Level: level, Message: []json.RawMessage{b}}
}

func TestKeepAndSearch(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	dir := t.TempDir()
	s := New(dir, 0, clock, nil)
	for _, ev := range []tail.Event{
		event(now.Add(-3*time.Minute), "v1-aaaa", "ok", logLine("log", "hello marker-1")),
		event(now.Add(-2*time.Minute), "v2-bbbb", "ok", logLine("warn", "careful")),
		event(now.Add(-time.Minute), "v2-bbbb", "exception"),
	} {
		if err := s.Keep(ev); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.Search("acct1", "app", Query{Since: now.Add(-time.Hour)})
	if err != nil || len(all) != 3 || all[0].Outcome != "exception" || all[0].Level != "error" || all[2].Level != "info" {
		t.Fatalf("all = %+v, %v", all, err)
	}
	for name, tc := range map[string]struct {
		q    Query
		want int
	}{
		"text":           {Query{Text: "MARKER-1"}, 1},
		"url":            {Query{Text: "app.example/path"}, 3},
		"warn and above": {Query{Level: "warn"}, 2},
		"version":        {Query{Version: "v2"}, 2},
		"window":         {Query{Since: now.Add(-90 * time.Second)}, 1},
		"limit":          {Query{Limit: 1}, 1},
	} {
		got, err := s.Search("acct1", "app", tc.q)
		if err != nil || len(got) != tc.want {
			t.Errorf("%s: %d entries, %v; want %d", name, len(got), err, tc.want)
		}
	}
	if got, _ := s.Search("acct1", "other", Query{}); len(got) != 0 {
		t.Errorf("another script: %+v", got)
	}
	f := filepath.Join(dir, "acct1", "app", "2026-12-05.jsonl")
	if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file %v, %v; want mode 0600", fi, err)
	}
	if err := s.Keep(tail.Event{Account: "../x", ScriptName: "app"}); err == nil {
		t.Error("an account name leaving the directory was accepted")
	}

	// Four days later the files are past the retention.
	now = now.Add(4 * 24 * time.Hour)
	if err := s.Keep(event(now, "v3", "ok")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f); !os.IsNotExist(err) {
		t.Errorf("the day past the retention is still there: %v", err)
	}
}
