package kine

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

func TestWorthVacuum(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	if worth, err := worthVacuum(ctx, path, 1<<20); err != nil || worth {
		t.Fatalf("no database yet: worth %v, err %v; want false, nil", worth, err)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustExec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExec(`CREATE TABLE kine (id INTEGER PRIMARY KEY, value BLOB)`)
	value := strings.Repeat("x", 64<<10)
	for i := range 64 { // 4 MiB
		mustExec(`INSERT INTO kine (id, value) VALUES (?, ?)`, i, value)
	}
	if worth, err := worthVacuum(ctx, path, 1<<20); err != nil || worth {
		t.Fatalf("no free pages: worth %v, err %v; want false, nil", worth, err)
	}
	mustExec(`DELETE FROM kine WHERE id < 16`) // a quarter free
	if worth, err := worthVacuum(ctx, path, 1<<20); err != nil || worth {
		t.Fatalf("a quarter free: worth %v, err %v; want false, nil", worth, err)
	}
	mustExec(`DELETE FROM kine WHERE id < 48`) // three quarters free, 3 MiB
	if worth, err := worthVacuum(ctx, path, 1<<20); err != nil || !worth {
		t.Fatalf("three quarters free: worth %v, err %v; want true, nil", worth, err)
	}
	if worth, err := worthVacuum(ctx, path, 8<<20); err != nil || worth {
		t.Fatalf("3 MiB free, 8 MiB asked: worth %v, err %v; want false, nil", worth, err)
	}
}
