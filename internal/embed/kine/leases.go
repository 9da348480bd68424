package kine

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/octohq/octo/internal/config"
)

// kine keeps its lease timers in memory and starts each one afresh when it
// starts: a key with a lease (an Event, which the API server writes with
// --event-ttl) outlives its lease unless one kine runs for the whole of it.
// octo sessions on a laptop are shorter than the hour of an Event: after a
// day of warm starts the database held 10,000 Events that should have
// expired, and every start read them again.
//
// octo keeps a clock of revisions beside the database: while kine runs,
// its current revision and the time, at the start, every clockInterval and
// at the stop. A row at or below a checkpoint's revision was written no
// later than the checkpoint's time, so a key whose lease ran out since is
// expired. expireLeases removes those keys when kine stops (no later than
// the stop after the one they expired by).

// clockInterval is how often the clock records a checkpoint while kine runs.
const clockInterval = time.Minute

// clockSpan is how long a checkpoint is kept. A key written before the
// oldest one is dated by that one: later than it was, so it is kept
// longer, never removed early.
const clockSpan = 3 * time.Hour

// checkpoint says that every row up to Revision was written by Unix.
type checkpoint struct {
	Revision int64 `json:"revision"`
	Unix     int64 `json:"unix"`
}

// leaseClock reads and writes the checkpoints of the database at db in
// the file at path.
type leaseClock struct {
	path string
	db   *sql.DB
	done chan struct{} // closed when run returns
}

// openClock opens the clock of the database at dbPath (read-only), kept
// at path.
func openClock(dbPath, path string) (*leaseClock, error) {
	db, err := sql.Open("sqlite3", "file:"+dbPath+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dbPath, err)
	}
	return &leaseClock{path: path, db: db, done: make(chan struct{})}, nil
}

// checkpoints reads the recorded checkpoints, oldest first (none when
// the file does not exist).
func (c *leaseClock) checkpoints() ([]checkpoint, error) {
	b, err := os.ReadFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the lease clock: %w", err)
	}
	var cps []checkpoint
	if err := json.Unmarshal(b, &cps); err != nil {
		return nil, fmt.Errorf("read the lease clock %s: %w", c.path, err)
	}
	slices.SortFunc(cps, func(a, b checkpoint) int { return cmp.Compare(a.Revision, b.Revision) })
	return cps, nil
}

// record adds a checkpoint of the database's current revision at now and
// drops those older than clockSpan.
func (c *leaseClock) record(ctx context.Context, now time.Time) error {
	var rev sql.NullInt64
	if err := c.db.QueryRowContext(ctx, "SELECT MAX(id) FROM kine").Scan(&rev); err != nil {
		return fmt.Errorf("read the current revision: %w", err)
	}
	cps, err := c.checkpoints()
	if err != nil {
		cps = nil // a damaged clock is replaced
	}
	cps = slices.DeleteFunc(cps, func(cp checkpoint) bool { return now.Sub(time.Unix(cp.Unix, 0)) > clockSpan })
	cps = append(cps, checkpoint{Revision: rev.Int64, Unix: now.Unix()})
	b, err := json.Marshal(cps)
	if err != nil {
		return err
	}
	if err := config.WriteFileAtomic(c.path, b, 0o600); err != nil {
		return fmt.Errorf("write the lease clock: %w", err)
	}
	return nil
}

// run records a checkpoint now and every clockInterval until ctx ends.
func (c *leaseClock) run(ctx context.Context, failed func(error)) {
	defer close(c.done)
	tick := time.NewTicker(clockInterval)
	defer tick.Stop()
	for {
		if err := c.record(ctx, time.Now()); err != nil && ctx.Err() == nil {
			failed(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// close waits for run to return (its ctx ended), records a last checkpoint
// and closes the database.
func (c *leaseClock) close(ctx context.Context) error {
	select {
	case <-c.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	err := c.record(ctx, time.Now())
	return errors.Join(err, c.db.Close())
}

// expireLeases removes, from the database at dbPath (which kine no longer
// writes), every key whose newest row has a lease that ran out by now
// according to the checkpoints at clockPath, with all its revisions, as
// kine's compaction would after the delete kine's timer would have made.
// The newest row of the database stays (it is the current revision). It
// returns how many keys it removed.
func expireLeases(ctx context.Context, dbPath, clockPath string, now time.Time) (int, error) {
	if _, err := os.Stat(dbPath); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	c := &leaseClock{path: clockPath}
	cps, err := c.checkpoints()
	if err != nil || len(cps) == 0 {
		return 0, err
	}
	db, err := sql.Open("sqlite3", "file:"+dbPath+"?_busy_timeout=5000&_txlock=immediate")
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", dbPath, err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT k.id, k.name, k.lease FROM kine AS k
		JOIN (SELECT MAX(id) AS id FROM kine GROUP BY name) AS newest ON k.id = newest.id
		WHERE k.lease > 0 AND k.deleted = 0 AND k.id < (SELECT MAX(id) FROM kine)`)
	if err != nil {
		return 0, fmt.Errorf("read the leased keys: %w", err)
	}
	var expired []string
	for rows.Next() {
		var id, lease int64
		var name string
		if err := rows.Scan(&id, &name, &lease); err != nil {
			rows.Close()
			return 0, fmt.Errorf("read the leased keys: %w", err)
		}
		// The first checkpoint at or after the row dates it.
		i, _ := slices.BinarySearchFunc(cps, id, func(cp checkpoint, rev int64) int { return cmp.Compare(cp.Revision, rev) })
		if i < len(cps) && !now.Before(time.Unix(cps[i].Unix, 0).Add(time.Duration(lease)*time.Second)) {
			expired = append(expired, name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read the leased keys: %w", err)
	}
	if len(expired) == 0 {
		return 0, nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("remove expired keys: %w", err)
	}
	defer tx.Rollback()
	del, err := tx.PrepareContext(ctx, "DELETE FROM kine WHERE name = ?")
	if err != nil {
		return 0, fmt.Errorf("remove expired keys: %w", err)
	}
	defer del.Close()
	for _, name := range expired {
		if _, err := del.ExecContext(ctx, name); err != nil {
			return 0, fmt.Errorf("remove expired key %s: %w", name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("remove expired keys: %w", err)
	}
	return len(expired), nil
}
