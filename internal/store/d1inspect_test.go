package store

import (
	"context"
	"fmt"
	"reflect"
	"testing"
)

func TestD1TablesAndReadQuery(t *testing.T) {
	ctx := context.Background()
	d, _ := newTestD1(t)
	db, err := d.Create(ctx, d1Account, "inspect")
	if err != nil {
		t.Fatal(err)
	}
	stmts := []D1Statement{{SQL: `CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
		CREATE TABLE "odd name" (k TEXT, v BLOB);
		CREATE INDEX users_name ON users(name);
		CREATE TABLE _cf_KV (key TEXT PRIMARY KEY, value BLOB)`}}
	for i := range 5 {
		stmts = append(stmts, D1Statement{SQL: "INSERT INTO users (name) VALUES (?)", Params: []any{fmt.Sprintf("user%d", i)}})
	}
	if _, err := d.Query(ctx, d1Account, db.UUID, stmts); err != nil {
		t.Fatal(err)
	}

	tables, err := d.Tables(ctx, d1Account, db.UUID)
	if err != nil {
		t.Fatal(err)
	}
	want := []D1Table{
		{Name: "odd name", Columns: []D1Column{{Name: "k", Type: "TEXT"}, {Name: "v", Type: "BLOB"}}},
		{Name: "users", Columns: []D1Column{{Name: "id", Type: "INTEGER", PrimaryKey: true}, {Name: "name", Type: "TEXT"}}, Rows: 5},
	}
	if !reflect.DeepEqual(tables, want) {
		t.Errorf("tables = %+v\nwant %+v", tables, want)
	}

	r, truncated, err := d.ReadQuery(ctx, d1Account, db.UUID, "/* newest */ SELECT id, name FROM users ORDER BY id DESC", 3)
	if err != nil {
		t.Fatal(err)
	}
	if !truncated || !reflect.DeepEqual(r.Columns, []string{"id", "name"}) || len(r.Rows) != 3 || r.Rows[0][1] != "user4" {
		t.Errorf("read query = %+v truncated %v, want 3 of 5 rows, user4 first", r, truncated)
	}
	if _, truncated, err := d.ReadQuery(ctx, d1Account, db.UUID, "WITH n AS (SELECT count(*) AS c FROM users) SELECT c FROM n;", 3); err != nil || truncated {
		t.Errorf("WITH … SELECT: truncated %v, err %v", truncated, err)
	}

	// Writes are refused, also when they hide behind WITH, and the
	// database stays writable for everyone else afterwards.
	for _, q := range []string{
		"DELETE FROM users",
		"SELECT 1; DELETE FROM users",
		"WITH x AS (SELECT 1) DELETE FROM users",
		"-- comment\nINSERT INTO users (name) VALUES ('x')",
		"SELECTED",
		"",
	} {
		if _, _, err := d.ReadQuery(ctx, d1Account, db.UUID, q, 10); d1Code(err) != CodeD1SQL {
			t.Errorf("ReadQuery(%q) = %v, want a refusal with code %d", q, err, CodeD1SQL)
		}
	}
	res, err := d.Query(ctx, d1Account, db.UUID, []D1Statement{{SQL: "INSERT INTO users (name) VALUES ('after')"}, {SQL: "SELECT count(*) AS n FROM users"}})
	if err != nil {
		t.Fatalf("write after the refused read queries: %v", err)
	}
	if n := res[1].Rows[0][0]; n != int64(6) {
		t.Errorf("users after the refused writes = %v, want 6 (nothing deleted, one added)", n)
	}
	if _, _, err := d.ReadQuery(ctx, d1Account, "00000000-0000-4000-8000-000000000000", "SELECT 1", 1); d1Code(err) != CodeD1NotFound {
		t.Errorf("ReadQuery on a missing database = %v", err)
	}
}
