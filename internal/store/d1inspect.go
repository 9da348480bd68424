package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// D1Table is a table of a D1 database: its columns and how many rows it holds.
type D1Table struct {
	Name    string
	Columns []D1Column
	Rows    int64
}

// D1Column is a column of a D1Table as the table declares it.
type D1Column struct {
	Name       string
	Type       string
	PrimaryKey bool
}

// d1ReadOnlyStarts are the first words of the statements ReadQuery runs.
var d1ReadOnlyStarts = []string{"SELECT", "WITH", "VALUES", "EXPLAIN"}

// Tables lists the tables of a database with their columns and row counts,
// by name. SQLite's and Cloudflare's internal tables (sqlite_*, _cf_*) are
// left out, as Export leaves them out.
func (d *D1) Tables(ctx context.Context, account, uuid string) ([]D1Table, error) {
	var out []D1Table
	err := d.with(ctx, account, uuid, func(db *sql.DB) error {
		rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master
			WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' ORDER BY name`)
		if err != nil {
			return err
		}
		var names []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return err
			}
			names = append(names, n)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		out = make([]D1Table, 0, len(names))
		for _, n := range names {
			t, err := describeTable(ctx, db, n)
			if err != nil {
				return fmt.Errorf("describe table %s: %w", n, err)
			}
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, d1Error(err)
	}
	return out, nil
}

// describeTable reads a table's columns and counts its rows.
func describeTable(ctx context.Context, db *sql.DB, name string) (D1Table, error) {
	t := D1Table{Name: name}
	rows, err := db.QueryContext(ctx, `SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid`, name)
	if err != nil {
		return t, err
	}
	for rows.Next() {
		var c D1Column
		var pk int
		if err := rows.Scan(&c.Name, &c.Type, &pk); err != nil {
			rows.Close()
			return t, err
		}
		c.PrimaryKey = pk > 0
		t.Columns = append(t.Columns, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return t, err
	}
	err = db.QueryRowContext(ctx, "SELECT count(*) FROM "+quoteIdent(name)).Scan(&t.Rows)
	return t, err
}

// ReadQuery runs one statement that only reads (SELECT, WITH, VALUES or
// EXPLAIN, on a connection in SQLite's query_only mode, so that a WITH …
// DELETE is refused too) and returns at most limit rows; truncated reports
// that there were more. Anything else is refused Invalid with CodeD1SQL.
func (d *D1) ReadQuery(ctx context.Context, account, uuid, query string, limit int) (r D1Result, truncated bool, err error) {
	stmts := SplitSQL(query)
	if len(stmts) != 1 {
		return D1Result{}, false, Errorf(Invalid, CodeD1SQL, "Give exactly one SQL statement (got %d).", len(stmts))
	}
	if !readsOnly(stmts[0]) {
		return D1Result{}, false, Errorf(Invalid, CodeD1SQL, "Only read statements run here (%s); use wrangler d1 execute to change data.", strings.Join(d1ReadOnlyStarts, ", "))
	}
	err = d.with(ctx, account, uuid, func(db *sql.DB) (ferr error) {
		conn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "PRAGMA query_only = ON"); err != nil {
			return err
		}
		// The connection is the database's only one: it must leave this
		// function writable again, even when ctx is done.
		defer func() {
			if _, err := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA query_only = OFF"); err != nil {
				ferr = errors.Join(ferr, fmt.Errorf("leave query_only mode: %w", err))
			}
		}()
		rows, err := conn.QueryContext(ctx, stmts[0])
		if err != nil {
			return err
		}
		r, truncated, err = readRowsUpTo(rows, limit)
		return err
	})
	if err != nil {
		return D1Result{}, false, d1Error(err)
	}
	return r, truncated, nil
}

// readsOnly reports whether a statement starts with one of d1ReadOnlyStarts
// (after comments and blanks).
func readsOnly(stmt string) bool {
	s := stmt
	for {
		s = strings.TrimSpace(s)
		switch {
		case strings.HasPrefix(s, "--"):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return false
			}
			s = s[i+1:]
		case strings.HasPrefix(s, "/*"):
			i := strings.Index(s, "*/")
			if i < 0 {
				return false
			}
			s = s[i+2:]
		default:
			word := strings.ToUpper(strings.TrimLeft(s, "("))
			for _, w := range d1ReadOnlyStarts {
				if strings.HasPrefix(word, w) && (len(word) == len(w) || !isWordByte(word[len(w)])) {
					return true
				}
			}
			return false
		}
	}
}
