package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// SplitSQL splits a script into its statements (without the ';'), as
// SQLite reads them: quotes ('…', "…", `…`, […]) and comments (-- and /* */)
// are kept whole, a CASE … END stays in its statement, and so does the
// BEGIN … END body of a CREATE TRIGGER. Statements that hold only
// whitespace and comments are left out.
func SplitSQL(script string) []string {
	var out []string
	start := 0
	depth := 0       // open CASE and trigger BEGIN blocks
	words := 0       // words seen in the current statement
	trigger := false // the statement is a CREATE [TEMP] TRIGGER
	code := false    // the statement holds more than comments
	flush := func(end int) {
		if code {
			out = append(out, strings.TrimSpace(script[start:end]))
		}
		start, depth, words, trigger, code = end+1, 0, 0, false, false
	}
	for i := 0; i < len(script); {
		c := script[i]
		switch {
		case c == '-' && strings.HasPrefix(script[i:], "--"):
			j := strings.IndexByte(script[i:], '\n')
			if j < 0 {
				i = len(script)
			} else {
				i += j + 1
			}
		case c == '/' && strings.HasPrefix(script[i:], "/*"):
			j := strings.Index(script[i+2:], "*/")
			if j < 0 {
				i = len(script)
			} else {
				i += j + 4
			}
		case c == '\'' || c == '"' || c == '`' || c == '[':
			end := c
			if c == '[' {
				end = ']'
			}
			j := i + 1
			for j < len(script) {
				if script[j] == end {
					if end != ']' && j+1 < len(script) && script[j+1] == end {
						j += 2 // doubled quote
						continue
					}
					break
				}
				j++
			}
			i = j + 1
			code = true
		case c == ';':
			if depth == 0 {
				flush(i)
			}
			i++
		case isWordByte(c):
			j := i
			for j < len(script) && isWordByte(script[j]) {
				j++
			}
			w := strings.ToUpper(script[i:j])
			words++
			code = true
			switch {
			case words <= 4 && w == "TRIGGER" && strings.HasPrefix(strings.ToUpper(strings.TrimSpace(script[start:i])), "CREATE"):
				trigger = true
			case w == "CASE" || (w == "BEGIN" && trigger):
				depth++
			case w == "END" && depth > 0:
				depth--
			}
			i = j
		default:
			if c > ' ' {
				code = true
			}
			i++
		}
	}
	if start < len(script) {
		flush(len(script))
	}
	return out
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// D1DumpOptions choose what Export writes.
type D1DumpOptions struct {
	NoSchema bool
	NoData   bool
	// Tables, when not empty, limits the dump to these tables.
	Tables []string
}

// Export writes the database as an SQL script that recreates it: the
// tables, their rows as INSERT statements, then indexes, triggers and views.
// SQLite's and Cloudflare's internal tables (sqlite_*, _cf_*) are left out.
func (d *D1) Export(ctx context.Context, account, uuid string, opts D1DumpOptions) (string, error) {
	var sb strings.Builder
	err := d.with(ctx, account, uuid, func(db *sql.DB) error {
		tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		return dump(ctx, tx, &sb, opts)
	})
	if err != nil {
		return "", d1Error(err)
	}
	return sb.String(), nil
}

type schemaEntry struct{ typ, name, table, sql string }

func dump(ctx context.Context, tx *sql.Tx, sb *strings.Builder, opts D1DumpOptions) error {
	rows, err := tx.QueryContext(ctx, `SELECT type, name, tbl_name, sql FROM sqlite_master
		WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' ORDER BY rowid`)
	if err != nil {
		return err
	}
	var entries []schemaEntry
	for rows.Next() {
		var e schemaEntry
		if err := rows.Scan(&e.typ, &e.name, &e.table, &e.sql); err != nil {
			rows.Close()
			return err
		}
		if len(opts.Tables) == 0 || slices.Contains(opts.Tables, e.table) {
			entries = append(entries, e)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	sb.WriteString("PRAGMA defer_foreign_keys=TRUE;\n")
	for _, e := range entries {
		if e.typ != "table" {
			continue
		}
		if !opts.NoSchema {
			sb.WriteString(e.sql + ";\n")
		}
		if !opts.NoData {
			if err := dumpRows(ctx, tx, sb, e.name); err != nil {
				return fmt.Errorf("dump table %s: %w", e.name, err)
			}
		}
	}
	if !opts.NoSchema {
		for _, e := range entries {
			if e.typ != "table" {
				sb.WriteString(e.sql + ";\n")
			}
		}
	}
	return nil
}

// dumpRows writes one INSERT per row of table.
func dumpRows(ctx context.Context, tx *sql.Tx, sb *strings.Builder, table string) error {
	q := quoteIdent(table)
	rows, err := tx.QueryContext(ctx, "SELECT * FROM "+q)
	if err != nil {
		return err
	}
	r, err := readRows(rows)
	if err != nil {
		return err
	}
	cols := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		cols[i] = quoteIdent(c)
	}
	head := "INSERT INTO " + q + " (" + strings.Join(cols, ",") + ") VALUES("
	for _, row := range r.Rows {
		sb.WriteString(head)
		for i, v := range row {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(sqlLiteral(v))
		}
		sb.WriteString(");\n")
	}
	return nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// sqlLiteral writes a value read by readRows as an SQL literal.
func sqlLiteral(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		s := strconv.FormatFloat(v, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eEn") && !math.IsInf(v, 0) {
			s += ".0" // stays REAL
		}
		return s
	case string:
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	case D1Blob:
		return "X'" + hex.EncodeToString(v) + "'"
	}
	return "NULL"
}
