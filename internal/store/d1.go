package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/octohq/octo/internal/config"
)

// Cloudflare's D1 error codes.
const (
	CodeD1BadRequest = 7400 // malformed request (bad UUID, name, statement)
	CodeD1NotFound   = 7404 // database not found (wrangler tests for it)
	CodeD1Limit      = 7406 // too many databases in the account
	CodeD1SQL        = 7500 // the SQL failed (D1_ERROR)
	CodeD1NameTaken  = 7502 // a database with that name already exists
)

// D1 limits.
const (
	// D1MaxDatabases bounds the databases of one account (Cloudflare's
	// paid-plan default is 50 000; a local platform needs far fewer).
	D1MaxDatabases = 1000
	d1MaxName      = 64
	// d1MaxOpen bounds the databases kept open at once; the least recently
	// used idle one is closed past it.
	d1MaxOpen = 64
	// d1ServedBy names octo in every result's meta.served_by.
	d1ServedBy = "octo-d1"
)

// D1Database is a D1 database of an account, as its catalog records it.
type D1Database struct {
	UUID      string    `json:"uuid"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// D1Info is a database with its current size and number of tables.
type D1Info struct {
	D1Database
	FileSize  int64
	NumTables int
}

// D1Statement is one entry of a query: SQL (one statement or several,
// separated by ';') and its parameters: nil, string, bool, json.Number,
// float64, int64, []byte or an array of byte values ([]any of numbers).
type D1Statement struct {
	SQL    string
	Params []any
}

// D1Meta is the meta of one statement's result, named as D1 names them.
type D1Meta struct {
	ServedBy        string    `json:"served_by"`
	ServedByPrimary bool      `json:"served_by_primary"`
	Timings         D1Timings `json:"timings"`
	// Duration is the statement's time in milliseconds.
	Duration    float64 `json:"duration"`
	Changes     int64   `json:"changes"`
	LastRowID   int64   `json:"last_row_id"`
	ChangedDB   bool    `json:"changed_db"`
	SizeAfter   int64   `json:"size_after"`
	RowsRead    int64   `json:"rows_read"`
	RowsWritten int64   `json:"rows_written"`
}

// D1Timings is D1Meta.timings.
type D1Timings struct {
	SQLDurationMS float64 `json:"sql_duration_ms"`
}

// D1Blob is a BLOB value; it is JSON-encoded as D1 does, as an array of
// byte values.
type D1Blob []byte

// MarshalJSON encodes b as an array of numbers.
func (b D1Blob) MarshalJSON() ([]byte, error) {
	var sb strings.Builder
	sb.WriteByte('[')
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(int(c)))
	}
	sb.WriteByte(']')
	return []byte(sb.String()), nil
}

// D1Result is what one SQL statement returned. Rows hold int64, float64,
// string, D1Blob or nil.
type D1Result struct {
	// Statement is the index of the D1Statement the SQL came from (one
	// D1Statement may hold several statements).
	Statement int
	Columns   []string
	Rows      [][]any
	Meta      D1Meta
}

// Objects returns the rows as objects keyed by column name (ARRAY_OF_OBJECTS).
func (r D1Result) Objects() []map[string]any {
	out := make([]map[string]any, len(r.Rows))
	for i, row := range r.Rows {
		m := make(map[string]any, len(r.Columns))
		for j, c := range r.Columns {
			m[c] = row[j]
		}
		out[i] = m
	}
	return out
}

// D1 keeps the D1 databases of every account as SQLite files in WAL mode,
// <dir>/<account>/<uuid>.sqlite, with a JSON catalog per account
// (<dir>/<account>/databases.json: name, uuid, created_at). Files are 0600,
// directories 0700. At most d1MaxOpen databases are open at once. Its
// refusals are *Error with D1's codes (7400, 7404, 7500, 7502). It is safe for
// concurrent use; the statements of one database run one request at a time.
type D1 struct {
	dir string
	now func() time.Time
	// mu guards the catalogs, open and tick.
	mu   sync.Mutex
	open map[string]*d1Handle // by account/uuid
	tick uint64
}

// d1Handle is an open database: one connection, used by one request at a
// time (D1 is single-threaded per database).
type d1Handle struct {
	db       *sql.DB
	users    int
	lastUsed uint64
}

// NewD1 returns the D1 store under dir; a nil now means time.Now. An empty
// dir gives a store that refuses every request as Unsupported.
func NewD1(dir string, now func() time.Time) *D1 {
	if now == nil {
		now = time.Now
	}
	return &D1{dir: dir, now: now, open: map[string]*d1Handle{}}
}

var (
	d1AccountRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	d1UUIDRe    = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	d1NameRe    = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// IsD1UUID reports whether s has the form of a database UUID.
func IsD1UUID(s string) bool { return d1UUIDRe.MatchString(s) }

func d1NotFound(id string) *Error {
	return Errorf(NotFound, CodeD1NotFound, "The database %s could not be found", id)
}

// accountDir checks account and returns its directory.
func (d *D1) accountDir(account string) (string, error) {
	if d.dir == "" {
		return "", Errorf(Unsupported, CodeD1BadRequest, "D1 is not available on this octo")
	}
	if !d1AccountRe.MatchString(account) {
		return "", Errorf(Invalid, CodeD1BadRequest, "invalid account id %q", account)
	}
	return filepath.Join(d.dir, account), nil
}

// catalog is the JSON file of an account's databases.
type catalog struct {
	Databases []D1Database `json:"databases"`
}

func (d *D1) readCatalog(account string) (catalog, error) {
	dir, err := d.accountDir(account)
	if err != nil {
		return catalog{}, err
	}
	var c catalog
	b, err := os.ReadFile(filepath.Join(dir, "databases.json"))
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read D1 catalog: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("parse D1 catalog of %s: %w", account, err)
	}
	return c, nil
}

func (d *D1) writeCatalog(account string, c catalog) error {
	dir, err := d.accountDir(account)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("D1 directory: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := config.WriteFileAtomic(filepath.Join(dir, "databases.json"), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write D1 catalog: %w", err)
	}
	return nil
}

// file is the SQLite file of a database.
func (d *D1) file(account, uuid string) string {
	return filepath.Join(d.dir, account, uuid+".sqlite")
}

// Create makes an empty database called name (unique in the account).
func (d *D1) Create(ctx context.Context, account, name string) (D1Database, error) {
	if name == "" || len(name) > d1MaxName || !d1NameRe.MatchString(name) {
		return D1Database{}, Errorf(Invalid, CodeD1BadRequest, "Invalid database name %q: use 1 to %d letters, digits, '-' or '_'", name, d1MaxName)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.readCatalog(account)
	if err != nil {
		return D1Database{}, err
	}
	if slices.ContainsFunc(c.Databases, func(db D1Database) bool { return db.Name == name }) {
		return D1Database{}, Errorf(Conflict, CodeD1NameTaken, "A database with that name already exists")
	}
	if len(c.Databases) >= D1MaxDatabases {
		return D1Database{}, Errorf(Invalid, CodeD1Limit, "You have reached the maximum number of D1 databases (%d) for your account", D1MaxDatabases)
	}
	db := D1Database{UUID: newUUID(), Name: name, CreatedAt: d.now().UTC().Truncate(time.Millisecond)}
	if err := os.MkdirAll(filepath.Join(d.dir, account), 0o700); err != nil {
		return D1Database{}, fmt.Errorf("D1 directory: %w", err)
	}
	f, err := os.OpenFile(d.file(account, db.UUID), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return D1Database{}, fmt.Errorf("create D1 database file: %w", err)
	}
	_ = f.Close()
	c.Databases = append(c.Databases, db)
	if err := d.writeCatalog(account, c); err != nil {
		_ = os.Remove(d.file(account, db.UUID))
		return D1Database{}, err
	}
	return db, nil
}

// List returns the account's databases, oldest first; a non-empty name keeps
// only those whose name contains it.
func (d *D1) List(ctx context.Context, account, name string) ([]D1Database, error) {
	d.mu.Lock()
	c, err := d.readCatalog(account)
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := c.Databases[:0:0]
	for _, db := range c.Databases {
		if name == "" || strings.Contains(db.Name, name) {
			out = append(out, db)
		}
	}
	return out, nil
}

// Lookup returns the database with UUID or name idOrName.
func (d *D1) Lookup(ctx context.Context, account, idOrName string) (D1Database, error) {
	d.mu.Lock()
	c, err := d.readCatalog(account)
	d.mu.Unlock()
	if err != nil {
		return D1Database{}, err
	}
	for _, db := range c.Databases {
		if db.UUID == idOrName || db.Name == idOrName {
			return db, nil
		}
	}
	return D1Database{}, d1NotFound(idOrName)
}

// Get returns the database with UUID or name idOrName, with its size and
// number of tables.
func (d *D1) Get(ctx context.Context, account, idOrName string) (D1Info, error) {
	db, err := d.Lookup(ctx, account, idOrName)
	if err != nil {
		return D1Info{}, err
	}
	info := D1Info{D1Database: db}
	err = d.with(ctx, account, db.UUID, func(conn *sql.DB) error {
		if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'`).Scan(&info.NumTables); err != nil {
			return err
		}
		info.FileSize, err = dbSize(ctx, conn)
		return err
	})
	if err != nil {
		return D1Info{}, fmt.Errorf("D1 database %s: %w", db.UUID, err)
	}
	return info, nil
}

// Delete removes the database and its files.
func (d *D1) Delete(ctx context.Context, account, uuid string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.readCatalog(account)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(c.Databases, func(db D1Database) bool { return db.UUID == uuid })
	if i < 0 {
		return d1NotFound(uuid)
	}
	c.Databases = slices.Delete(c.Databases, i, i+1)
	if err := d.writeCatalog(account, c); err != nil {
		return err
	}
	key := account + "/" + uuid
	if h := d.open[key]; h != nil {
		// A request still running finishes on its connection; the files
		// are gone when it ends (unlinked files stay readable).
		_ = h.db.Close()
		delete(d.open, key)
	}
	f := d.file(account, uuid)
	for _, p := range []string{f, f + "-wal", f + "-shm"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("delete D1 database file: %w", err)
		}
	}
	return nil
}

// Close closes every open database.
func (d *D1) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for k, h := range d.open {
		errs = append(errs, h.db.Close())
		delete(d.open, k)
	}
	return errors.Join(errs...)
}

// with runs f on the open database account/uuid, opening it if needed. The
// database must be in the catalog.
func (d *D1) with(ctx context.Context, account, uuid string, f func(*sql.DB) error) error {
	h, err := d.acquire(ctx, account, uuid)
	if err != nil {
		return err
	}
	defer d.release(h)
	return f(h.db)
}

func (d *D1) acquire(ctx context.Context, account, uuid string) (*d1Handle, error) {
	if !d1UUIDRe.MatchString(uuid) {
		return nil, d1NotFound(uuid)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	key := account + "/" + uuid
	d.tick++
	if h := d.open[key]; h != nil {
		h.users++
		h.lastUsed = d.tick
		return h, nil
	}
	c, err := d.readCatalog(account)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(c.Databases, func(db D1Database) bool { return db.UUID == uuid }) {
		return nil, d1NotFound(uuid)
	}
	d.evict()
	// _txlock=immediate: a write transaction takes the lock at BEGIN;
	// _foreign_keys: D1 enforces foreign keys.
	dsn := "file:" + (&url.URL{Path: d.file(account, uuid)}).EscapedPath() +
		"?_journal_mode=WAL&_synchronous=NORMAL&_busy_timeout=5000&_foreign_keys=1&_txlock=immediate"
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open D1 database %s: %w", uuid, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	h := &d1Handle{db: db, users: 1, lastUsed: d.tick}
	d.open[key] = h
	return h, nil
}

func (d *D1) release(h *d1Handle) {
	d.mu.Lock()
	h.users--
	d.mu.Unlock()
}

// evict closes least recently used idle databases until there is room for
// one more. d.mu is held.
func (d *D1) evict() {
	for len(d.open) >= d1MaxOpen {
		var lru string
		for k, h := range d.open {
			if h.users == 0 && (lru == "" || h.lastUsed < d.open[lru].lastUsed) {
				lru = k
			}
		}
		if lru == "" {
			return // all busy: go over the bound for a while
		}
		_ = d.open[lru].db.Close()
		delete(d.open, lru)
	}
}

// Query runs stmts in one transaction, as D1 runs a query or a batch: every
// statement of every entry in order, and on any error nothing at all (the
// refusal is Invalid with CodeD1SQL and SQLite's message, e.g. "no such
// table: t: SQLITE_ERROR"). Entries that hold only comments are skipped;
// when nothing is left it refuses "No SQL statements detected.".
func (d *D1) Query(ctx context.Context, account, uuid string, stmts []D1Statement) ([]D1Result, error) {
	type part struct {
		index  int
		sql    string
		params []any
	}
	var parts []part
	for i, st := range stmts {
		sqls := SplitSQL(st.SQL)
		if len(sqls) > 1 && len(st.Params) > 0 {
			return nil, Errorf(Invalid, CodeD1SQL, "A statement with parameters must hold a single SQL statement (got %d)", len(sqls))
		}
		params, err := d1Params(st.Params)
		if err != nil {
			return nil, err
		}
		for _, s := range sqls {
			parts = append(parts, part{index: i, sql: s, params: params})
		}
	}
	if len(parts) == 0 {
		return nil, Errorf(Invalid, CodeD1SQL, "No SQL statements detected.")
	}
	var results []D1Result
	err := d.with(ctx, account, uuid, func(db *sql.DB) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		for _, p := range parts {
			r, err := runStatement(ctx, tx, p.sql, p.params)
			if err != nil {
				return err
			}
			r.Statement = p.index
			results = append(results, r)
		}
		return tx.Commit()
	})
	if err != nil {
		return nil, d1Error(err)
	}
	return results, nil
}

// d1Error turns SQLite's errors into Invalid refusals with D1's message:
// "<message>: SQLITE_<CODE>".
func d1Error(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return Errorf(Invalid, CodeD1SQL, "%s: SQLITE_%s", se.Error(), sqliteCodeName(se.Code))
	}
	return err
}

// sqliteCodeName is the name of a primary result code, as in SQLITE_ERROR.
func sqliteCodeName(c sqlite3.ErrNo) string {
	names := map[sqlite3.ErrNo]string{
		sqlite3.ErrError: "ERROR", sqlite3.ErrInternal: "INTERNAL", sqlite3.ErrPerm: "PERM",
		sqlite3.ErrAbort: "ABORT", sqlite3.ErrBusy: "BUSY", sqlite3.ErrLocked: "LOCKED",
		sqlite3.ErrNomem: "NOMEM", sqlite3.ErrReadonly: "READONLY", sqlite3.ErrInterrupt: "INTERRUPT",
		sqlite3.ErrIoErr: "IOERR", sqlite3.ErrCorrupt: "CORRUPT", sqlite3.ErrNotFound: "NOTFOUND",
		sqlite3.ErrFull: "FULL", sqlite3.ErrCantOpen: "CANTOPEN", sqlite3.ErrProtocol: "PROTOCOL",
		sqlite3.ErrEmpty: "EMPTY", sqlite3.ErrSchema: "SCHEMA", sqlite3.ErrTooBig: "TOOBIG",
		sqlite3.ErrConstraint: "CONSTRAINT", sqlite3.ErrMismatch: "MISMATCH", sqlite3.ErrMisuse: "MISUSE",
		sqlite3.ErrNoLFS: "NOLFS", sqlite3.ErrAuth: "AUTH", sqlite3.ErrFormat: "FORMAT",
		sqlite3.ErrRange: "RANGE", sqlite3.ErrNotADB: "NOTADB",
	}
	if n, ok := names[c]; ok {
		return n
	}
	return "ERROR"
}

// d1Params converts JSON parameters to SQLite values: integral numbers to
// INTEGER, others to REAL, booleans to 0/1, byte arrays to BLOB.
func d1Params(in []any) ([]any, error) {
	out := make([]any, len(in))
	for i, v := range in {
		switch v := v.(type) {
		case nil, string, int64, float64, []byte:
			out[i] = v
		case D1Blob:
			out[i] = []byte(v)
		case int:
			out[i] = int64(v)
		case bool:
			out[i] = int64(0)
			if v {
				out[i] = int64(1)
			}
		case json.Number:
			if n, err := v.Int64(); err == nil {
				out[i] = n
			} else if f, err := v.Float64(); err == nil {
				out[i] = f
			} else {
				return nil, Errorf(Invalid, CodeD1SQL, "D1_TYPE_ERROR: bad number %q", v)
			}
		case []any:
			b := make([]byte, len(v))
			for j, e := range v {
				n, ok := byteValue(e)
				if !ok {
					return nil, Errorf(Invalid, CodeD1SQL, "D1_TYPE_ERROR: Type 'object' not supported for parameter %d", i+1)
				}
				b[j] = n
			}
			out[i] = b
		default:
			return nil, Errorf(Invalid, CodeD1SQL, "D1_TYPE_ERROR: Type '%T' not supported for parameter %d", v, i+1)
		}
	}
	return out, nil
}

func byteValue(v any) (byte, bool) {
	var f float64
	switch v := v.(type) {
	case json.Number:
		var err error
		if f, err = v.Float64(); err != nil {
			return 0, false
		}
	case float64:
		f = v
	case int64:
		f = float64(v)
	case int:
		f = float64(v)
	default:
		return 0, false
	}
	if f < 0 || f > 255 || f != math.Trunc(f) {
		return 0, false
	}
	return byte(f), true
}

// runStatement runs one SQL statement in tx and measures it as D1 does.
func runStatement(ctx context.Context, tx *sql.Tx, query string, params []any) (D1Result, error) {
	start := time.Now()
	var changesBefore, rowidBefore int64
	if err := tx.QueryRowContext(ctx, `SELECT total_changes(), last_insert_rowid()`).Scan(&changesBefore, &rowidBefore); err != nil {
		return D1Result{}, err
	}
	sizeBefore, err := dbSize(ctx, tx)
	if err != nil {
		return D1Result{}, err
	}
	rows, err := tx.QueryContext(ctx, query, params...)
	if err != nil {
		return D1Result{}, err
	}
	r, err := readRows(rows)
	if err != nil {
		return D1Result{}, err
	}
	elapsed := float64(time.Since(start).Microseconds()) / 1000
	var changesAfter, rowid int64
	if err := tx.QueryRowContext(ctx, `SELECT total_changes(), last_insert_rowid()`).Scan(&changesAfter, &rowid); err != nil {
		return D1Result{}, err
	}
	size, err := dbSize(ctx, tx)
	if err != nil {
		return D1Result{}, err
	}
	changes := changesAfter - changesBefore
	// SQLite counts neither rows scanned nor rows written per statement
	// through this driver: rows returned and rows changed stand for them.
	r.Meta = D1Meta{
		ServedBy: d1ServedBy, ServedByPrimary: true, Timings: D1Timings{SQLDurationMS: elapsed},
		Duration: elapsed, Changes: changes, LastRowID: rowid,
		ChangedDB: changes != 0 || rowid != rowidBefore || size != sizeBefore, SizeAfter: size,
		RowsRead: int64(len(r.Rows)), RowsWritten: changes,
	}
	return r, nil
}

// readRows reads every row of rows with the values SQLite stored. The
// driver turns values of columns declared TIMESTAMP, DATETIME, DATE or
// BOOLEAN into time.Time and bool; they are turned back (text times in
// SQLite's "YYYY-MM-DD HH:MM:SS" form).
func readRows(rows *sql.Rows) (D1Result, error) {
	r, _, err := readRowsUpTo(rows, -1)
	return r, err
}

// readRowsUpTo is readRows that stops after max rows (none when max < 0)
// and reports whether more were left.
func readRowsUpTo(rows *sql.Rows, max int) (D1Result, bool, error) {
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return D1Result{}, false, err
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		return D1Result{}, false, err
	}
	r := D1Result{Columns: cols, Rows: [][]any{}}
	for rows.Next() {
		if max >= 0 && len(r.Rows) == max {
			return r, true, nil
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return D1Result{}, false, err
		}
		for i, v := range vals {
			vals[i] = d1Value(v, types[i].DatabaseTypeName())
		}
		r.Rows = append(r.Rows, vals)
	}
	return r, false, rows.Err()
}

// d1Value normalises a value read by the driver.
func d1Value(v any, decl string) any {
	switch v := v.(type) {
	case []byte:
		return D1Blob(v)
	case bool:
		if v {
			return int64(1)
		}
		return int64(0)
	case time.Time:
		return sqliteTimeText(v, strings.ToLower(decl))
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return nil // not representable in JSON
		}
	}
	return v
}

// sqliteTimeText writes t as SQLite's date functions do.
func sqliteTimeText(t time.Time, decl string) string {
	t = t.UTC()
	if decl == "date" && t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 {
		return t.Format("2006-01-02")
	}
	if t.Nanosecond() != 0 {
		return t.Format("2006-01-02 15:04:05.999999999")
	}
	return t.Format("2006-01-02 15:04:05")
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// dbSize is the database's size in bytes (pages × page size).
func dbSize(ctx context.Context, q querier) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, `SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()`).Scan(&n)
	return n, err
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
