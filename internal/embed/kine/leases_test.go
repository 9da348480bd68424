package kine

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// kineTable is the table kine's SQLite driver creates.
const kineTable = `CREATE TABLE kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, created INTEGER,
	deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB, old_value BLOB)`

// newKineDB creates a database with kine's table and rows (name, lease),
// their IDs (revisions) 1, 2, … in order.
func newKineDB(t *testing.T, rows [][2]any) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(kineTable); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if _, err := db.Exec("INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value, old_value) VALUES (?, 1, 0, 0, 0, ?, 'v', '')", r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func names(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT name FROM kine ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func TestExpireLeases(t *testing.T) {
	const hour = 3600
	path := newKineDB(t, [][2]any{
		{"/registry/events/a", hour},        // 1
		{"/registry/events/b", hour},        // 2
		{"/registry/pods/x", 0},             // 3: no lease
		{"/registry/events/long", 4 * hour}, // 4: its lease runs longer
		{"/registry/events/a", hour},        // 5: a's newest row
		{"/registry/events/c", hour},        // 6: after the last checkpoint: not dated
		{"/registry/events/d", hour},        // 7: the current revision stays
	})
	now := time.Now()
	clock := filepath.Join(t.TempDir(), "revisions.json")
	b, _ := json.Marshal([]checkpoint{{Revision: 5, Unix: now.Add(-2 * time.Hour).Unix()}, {Revision: 2, Unix: now.Add(-3 * time.Hour).Unix()}})
	if err := os.WriteFile(clock, b, 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := expireLeases(t.Context(), path, clock, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/registry/pods/x", "/registry/events/long", "/registry/events/c", "/registry/events/d"}
	if got := names(t, path); n != 2 || !slices.Equal(got, want) {
		t.Errorf("removed %d keys, left %q; want 2 removed (every row of a, and b), %q left", n, got, want)
	}

	// Without a clock (the first start, or an older octo's data dir)
	// nothing is removed.
	path = newKineDB(t, [][2]any{{"/registry/events/a", 1}, {"/registry/events/b", 1}})
	if n, err := expireLeases(t.Context(), path, filepath.Join(t.TempDir(), "none.json"), now); err != nil || n != 0 {
		t.Errorf("without a clock: removed %d, %v; want none", n, err)
	}
	// Nor without a database.
	if n, err := expireLeases(t.Context(), filepath.Join(t.TempDir(), "none.db"), clock, now); err != nil || n != 0 {
		t.Errorf("without a database: removed %d, %v; want none", n, err)
	}
}

func TestLeaseClockRecords(t *testing.T) {
	path := newKineDB(t, [][2]any{{"/registry/a", 0}, {"/registry/b", 0}, {"/registry/c", 0}})
	clockPath := filepath.Join(t.TempDir(), "revisions.json")
	now := time.Now()
	old, _ := json.Marshal([]checkpoint{{Revision: 1, Unix: now.Add(-clockSpan - time.Minute).Unix()}, {Revision: 2, Unix: now.Add(-time.Hour).Unix()}})
	if err := os.WriteFile(clockPath, old, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := openClock(path, clockPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.record(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	cps, err := c.checkpoints()
	if err != nil {
		t.Fatal(err)
	}
	want := []checkpoint{{Revision: 2, Unix: now.Add(-time.Hour).Unix()}, {Revision: 3, Unix: now.Unix()}}
	if !slices.Equal(cps, want) {
		t.Errorf("checkpoints %v, want %v (the one older than clockSpan dropped, the current revision added)", cps, want)
	}
	if st, err := os.Stat(clockPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("clock file: %v, %v; want mode 0600", st.Mode(), err)
	}
	// run records at once and returns when its context ends; close then
	// records the last checkpoint.
	runCtx, stop := context.WithCancel(t.Context())
	go c.run(runCtx, func(err error) { t.Error(err) })
	stop()
	if err := c.close(t.Context()); err != nil {
		t.Fatal(err)
	}
}
