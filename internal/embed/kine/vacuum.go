package kine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"

	// database/sql's "sqlite3" driver, the one kine's SQLite driver wraps.
	_ "github.com/mattn/go-sqlite3"
)

// kine VACUUMs its database at every start unless told not to, which
// rewrites the whole file: 2.4 s of one core for the 250 MB database of
// 1,000 Workers, the longest step of a warm `octo up`, and on its critical
// path (the API server waits for kine). SQLite reuses its free pages, so
// the file does not grow for want of it; the VACUUM only gives space back
// to the disk. octo lets it run only when that is worth a slower start:
// when the free pages are at least vacuumMinFree and half the file.

// vacuumMinFree is the least free space the start-up VACUUM gives back.
const vacuumMinFree = 64 << 20

// noVacuumParam is the kine DSN parameter that skips its start-up VACUUM.
const noVacuumParam = "_kine_disable_startup_vacuum=true"

// worthVacuum reports whether the database at path has free pages worth a
// VACUUM: at least minFree bytes and half the file. A database that does
// not exist yet has none.
func worthVacuum(ctx context.Context, path string, minFree int64) (bool, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	// Read-only, and without the WAL's recovery writes: kine opens it next.
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		return false, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	var pages, free, size int64
	err = db.QueryRowContext(ctx, `SELECT page_count, freelist_count, page_size
		FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()`).Scan(&pages, &free, &size)
	if err != nil {
		return false, fmt.Errorf("read free pages of %s: %w", path, err)
	}
	return free*size >= minFree && 2*free >= pages, nil
}
