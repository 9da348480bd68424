package store

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const d1Account = "0123456789abcdef0123456789abcdef"

func newTestD1(t *testing.T) (*D1, string) {
	t.Helper()
	dir := t.TempDir()
	d := NewD1(dir, func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) })
	t.Cleanup(func() { _ = d.Close() })
	return d, dir
}

func d1Code(err error) int {
	if e := AsError(err); e != nil {
		return e.Code
	}
	return 0
}

func TestD1CreateListGetDelete(t *testing.T) {
	ctx := context.Background()
	d, dir := newTestD1(t)
	db, err := d.Create(ctx, d1Account, "db1")
	if err != nil {
		t.Fatal(err)
	}
	if !IsD1UUID(db.UUID) || db.Name != "db1" {
		t.Fatalf("created %+v", db)
	}
	if _, err := d.Create(ctx, d1Account, "db1"); d1Code(err) != CodeD1NameTaken {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, err := d.Create(ctx, d1Account, "bad name!"); d1Code(err) != CodeD1BadRequest {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := d.Create(ctx, d1Account, "other"); err != nil {
		t.Fatal(err)
	}
	all, err := d.List(ctx, d1Account, "")
	if err != nil || len(all) != 2 {
		t.Fatalf("list: %v %v", all, err)
	}
	some, _ := d.List(ctx, d1Account, "oth")
	if len(some) != 1 || some[0].Name != "other" {
		t.Fatalf("filtered list: %v", some)
	}
	if _, err := d.Query(ctx, d1Account, db.UUID, []D1Statement{{SQL: "CREATE TABLE a(x); CREATE TABLE b(y)"}}); err != nil {
		t.Fatal(err)
	}
	info, err := d.Get(ctx, d1Account, "db1")
	if err != nil {
		t.Fatal(err)
	}
	if info.UUID != db.UUID || info.NumTables != 2 || info.FileSize <= 0 {
		t.Fatalf("info %+v", info)
	}
	for _, p := range []string{filepath.Join(dir, d1Account), filepath.Join(dir, d1Account, db.UUID+".sqlite"), filepath.Join(dir, d1Account, "databases.json")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	// Another store over the same directory sees the database and its data.
	d2 := NewD1(dir, nil)
	defer d2.Close()
	if info2, err := d2.Get(ctx, d1Account, db.UUID); err != nil || info2.NumTables != 2 || !info2.CreatedAt.Equal(db.CreatedAt) {
		t.Fatalf("reopened: %+v %v", info2, err)
	}
	if err := d.Delete(ctx, d1Account, db.UUID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx, d1Account, db.UUID); d1Code(err) != CodeD1NotFound {
		t.Fatalf("get after delete: %v", err)
	}
	if err := d.Delete(ctx, d1Account, db.UUID); d1Code(err) != CodeD1NotFound {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, d1Account, db.UUID+".sqlite")); !os.IsNotExist(err) {
		t.Fatalf("file left: %v", err)
	}
	if _, err := d.Query(ctx, d1Account, db.UUID, []D1Statement{{SQL: "SELECT 1"}}); d1Code(err) != CodeD1NotFound {
		t.Fatalf("query after delete: %v", err)
	}
	if _, err := d.List(ctx, "../x", ""); d1Code(err) != CodeD1BadRequest {
		t.Fatalf("bad account: %v", err)
	}
}

func TestD1Query(t *testing.T) {
	ctx := context.Background()
	d, _ := newTestD1(t)
	db, err := d.Create(ctx, d1Account, "q")
	if err != nil {
		t.Fatal(err)
	}
	q := func(stmts ...D1Statement) ([]D1Result, error) { return d.Query(ctx, d1Account, db.UUID, stmts) }
	res, err := q(D1Statement{SQL: `CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, score REAL, data BLOB, at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)`})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Meta.ChangedDB || res[0].Meta.SizeAfter <= 0 || res[0].Meta.ServedBy == "" {
		t.Errorf("create meta %+v", res[0].Meta)
	}
	res, err = q(D1Statement{SQL: "INSERT INTO t (name, score, data) VALUES (?, ?, ?)", Params: []any{"a", json.Number("1.5"), []any{json.Number("1"), json.Number("255")}}},
		D1Statement{SQL: "INSERT INTO t (name, score) VALUES (?1, ?2)", Params: []any{"b", json.Number("2")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[1].Meta.Changes != 1 || res[1].Meta.LastRowID != 2 || res[1].Meta.RowsWritten != 1 || res[1].Statement != 1 {
		t.Fatalf("insert results %+v", res)
	}
	res, err = q(D1Statement{SQL: "SELECT id, name, score, data, typeof(score) AS ts, at FROM t ORDER BY id"})
	if err != nil {
		t.Fatal(err)
	}
	r := res[0]
	if !reflect.DeepEqual(r.Columns, []string{"id", "name", "score", "data", "ts", "at"}) || len(r.Rows) != 2 || r.Meta.RowsRead != 2 {
		t.Fatalf("select %+v", r)
	}
	if r.Rows[0][0] != int64(1) || r.Rows[0][1] != "a" || r.Rows[0][2] != 1.5 || r.Rows[1][4] != "real" {
		t.Errorf("row values %#v", r.Rows)
	}
	if b, _ := json.Marshal(r.Objects()[0]["data"]); string(b) != "[1,255]" {
		t.Errorf("blob as JSON: %s", b)
	}
	if at, ok := r.Rows[0][5].(string); !ok || len(at) != len("2006-01-02 15:04:05") {
		t.Errorf("timestamp %#v, want SQLite's text", r.Rows[0][5])
	}

	// A failing statement rolls the whole batch back.
	_, err = q(D1Statement{SQL: "INSERT INTO t (name) VALUES ('c')"}, D1Statement{SQL: "INSERT INTO t (name) VALUES ('a')"})
	if e := AsError(err); e == nil || e.Code != CodeD1SQL || !strings.Contains(e.Msg, "UNIQUE constraint failed: t.name: SQLITE_CONSTRAINT") {
		t.Fatalf("batch error %v", err)
	}
	res, _ = q(D1Statement{SQL: "SELECT count(*) AS n FROM t"})
	if res[0].Rows[0][0] != int64(2) {
		t.Fatalf("batch not rolled back: %v", res[0].Rows)
	}
	if _, err := q(D1Statement{SQL: "SELECT * FROM nope"}); err == nil || !strings.Contains(err.Error(), "no such table: nope: SQLITE_ERROR") {
		t.Fatalf("error %v", err)
	}
	if _, err := q(D1Statement{SQL: "  -- only a comment\n"}); err == nil || err.Error() != "No SQL statements detected." {
		t.Fatalf("empty: %v", err)
	}
	// A script: one result per statement, triggers kept whole.
	res, err = q(D1Statement{SQL: `CREATE TABLE log (msg TEXT);
CREATE TRIGGER tr AFTER INSERT ON t BEGIN
  INSERT INTO log VALUES (CASE WHEN new.name = 'x' THEN 'x!' ELSE new.name END);
END;
INSERT INTO t (name) VALUES ('x'); -- comment; with a semicolon
SELECT msg FROM log;`})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 || res[3].Rows[0][0] != "x!" {
		t.Fatalf("script results %+v", res)
	}
	if _, err := q(D1Statement{SQL: "SELECT 1; SELECT ?", Params: []any{json.Number("1")}}); d1Code(err) != CodeD1SQL {
		t.Fatalf("params with several statements: %v", err)
	}
}

func TestSplitSQL(t *testing.T) {
	got := SplitSQL("SELECT 'a;b'; /* x; */ SELECT \"c;\" ;\n-- done;\nSELECT [d;e]")
	want := []string{"SELECT 'a;b'", "/* x; */ SELECT \"c;\"", "-- done;\nSELECT [d;e]"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
	if got := SplitSQL("BEGIN TRANSACTION; SELECT CASE 1 WHEN 1 THEN 2 END; COMMIT;"); len(got) != 3 {
		t.Fatalf("got %q", got)
	}
}

func TestD1Export(t *testing.T) {
	ctx := context.Background()
	d, _ := newTestD1(t)
	src, _ := d.Create(ctx, d1Account, "src")
	dst, _ := d.Create(ctx, d1Account, "dst")
	script := `CREATE TABLE p (id INTEGER PRIMARY KEY, v TEXT, f REAL, b BLOB);
CREATE INDEX pv ON p(v);
INSERT INTO p (v, f, b) VALUES ('it''s', 2.0, x'00ff'), (NULL, 1e300, NULL);`
	if _, err := d.Query(ctx, d1Account, src.UUID, []D1Statement{{SQL: script}}); err != nil {
		t.Fatal(err)
	}
	out, err := d.Export(ctx, d1Account, src.UUID, D1DumpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "CREATE INDEX pv") || !strings.Contains(out, "'it''s'") {
		t.Fatalf("dump:\n%s", out)
	}
	if _, err := d.Query(ctx, d1Account, dst.UUID, []D1Statement{{SQL: out}}); err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	a, _ := d.Query(ctx, d1Account, src.UUID, []D1Statement{{SQL: "SELECT *, typeof(f) FROM p"}})
	b, _ := d.Query(ctx, d1Account, dst.UUID, []D1Statement{{SQL: "SELECT *, typeof(f) FROM p"}})
	if !reflect.DeepEqual(a[0].Rows, b[0].Rows) {
		t.Fatalf("rows differ: %v vs %v", a[0].Rows, b[0].Rows)
	}
	noData, _ := d.Export(ctx, d1Account, src.UUID, D1DumpOptions{NoData: true})
	if strings.Contains(noData, "INSERT") {
		t.Fatalf("no-data dump has rows:\n%s", noData)
	}
}
