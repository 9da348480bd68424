package web

import (
	"cmp"
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/octohq/octo/internal/store"
)

// The R2 and D1 views: buckets with their objects, databases with their
// tables and a read-only query box. They read the domain layer directly;
// nothing here writes.

const (
	// maxR2Objects is one page of a bucket's listing (with HTTP metadata,
	// R2 lists at most 100).
	maxR2Objects = 100
	// maxD1Rows bounds the rows a dashboard query returns.
	maxD1Rows = 500
	// maxD1SQL bounds a dashboard query's text.
	maxD1SQL = 64 << 10
	// storageTimeout bounds one storage read of the dashboard.
	storageTimeout = 30 * time.Second
)

// storageRequest bounds a storage read by storageTimeout and resolves the
// account the route names. cancel is never nil.
func (d *Dashboard) storageRequest(c echo.Context) (context.Context, context.CancelFunc, store.Account, error) {
	ctx, cancel := context.WithTimeout(c.Request().Context(), storageTimeout)
	a, err := d.opts.Store.Account(ctx, c.Param("account"))
	return ctx, cancel, a, err
}

// r2UsageTTL is how long the dashboard reuses a bucket's object count and
// size: counting lists every object of the bucket, and the page polls every
// 2 s.
const r2UsageTTL = 10 * time.Second

// r2UsageCache keeps the buckets' usage for r2UsageTTL, by account/bucket.
type r2UsageCache struct {
	mu sync.Mutex
	m  map[string]r2Usage
}

type r2Usage struct {
	objects, bytes int64
	at             time.Time
}

// get returns the usage of key counted less than r2UsageTTL before now, or
// counts it again.
func (c *r2UsageCache) get(key string, now time.Time, count func() (int64, int64, error)) (int64, int64, error) {
	c.mu.Lock()
	u, ok := c.m[key]
	c.mu.Unlock()
	if ok && now.Sub(u.at) < r2UsageTTL {
		return u.objects, u.bytes, nil
	}
	objects, size, err := count()
	if err != nil {
		return 0, 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]r2Usage{}
	}
	c.m[key] = r2Usage{objects: objects, bytes: size, at: now}
	return objects, size, nil
}

type r2BucketJSON struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
	Location  string    `json:"location,omitempty"`
	Objects   int64     `json:"objects"`
	Bytes     int64     `json:"bytes"`
}

// r2Buckets answers the account's buckets with how many objects they hold
// and their total size.
func (d *Dashboard) r2Buckets(c echo.Context) error {
	ctx, cancel, a, err := d.storageRequest(c)
	defer cancel()
	if err != nil {
		return err
	}
	r2 := d.opts.Store.R2()
	all, err := r2.Buckets(ctx, a.ID)
	if err != nil {
		return err
	}
	out := make([]r2BucketJSON, 0, len(all))
	for _, b := range all {
		objects, size, err := d.usage.get(a.ID+"/"+b.Name, d.now(), func() (int64, int64, error) {
			return r2.Usage(ctx, a.ID, b.Name)
		})
		if err != nil {
			return err
		}
		out = append(out, r2BucketJSON{Name: b.Name, CreatedAt: b.CreationDate, Location: b.Location, Objects: objects, Bytes: size})
	}
	slices.SortFunc(out, func(x, y r2BucketJSON) int { return cmp.Compare(x.Name, y.Name) })
	return c.JSON(http.StatusOK, map[string]any{"buckets": out})
}

type r2ObjectJSON struct {
	Key         string    `json:"key"`
	Size        int64     `json:"size"`
	ETag        string    `json:"etag"`
	Uploaded    time.Time `json:"uploaded"`
	ContentType string    `json:"contentType,omitempty"`
}

// r2Objects answers one page of a bucket's objects under a prefix, folded
// at "/" like a file browser: {objects, prefixes, cursor}.
func (d *Dashboard) r2Objects(c echo.Context) error {
	ctx, cancel, a, err := d.storageRequest(c)
	defer cancel()
	if err != nil {
		return err
	}
	page, err := d.opts.Store.R2().List(ctx, a.ID, c.Param("bucket"), store.R2ListOptions{
		Prefix: c.QueryParam("prefix"), Delimiter: "/", Cursor: c.QueryParam("cursor"),
		Limit: maxR2Objects, IncludeHTTP: true,
	})
	if err != nil {
		return err
	}
	objects := make([]r2ObjectJSON, 0, len(page.Objects))
	for _, o := range page.Objects {
		j := r2ObjectJSON{Key: o.Key, Size: o.Size, ETag: o.ETag, Uploaded: o.Uploaded}
		if o.HTTP != nil {
			j.ContentType = o.HTTP.ContentType
		}
		objects = append(objects, j)
	}
	prefixes := page.DelimitedPrefixes
	if prefixes == nil {
		prefixes = []string{}
	}
	cursor := ""
	if page.Truncated {
		cursor = page.Cursor
	}
	return c.JSON(http.StatusOK, map[string]any{"objects": objects, "prefixes": prefixes, "cursor": cursor})
}

// r2ObjectPreviewJSON is an object's metadata and its first MaxPreview bytes.
type r2ObjectPreviewJSON struct {
	r2ObjectJSON
	Custom    map[string]string `json:"custom,omitempty"`
	Preview   string            `json:"preview"`
	Truncated bool              `json:"truncated"`
	Binary    bool              `json:"binary"`
}

// r2Object answers an object's metadata and a preview of its content.
func (d *Dashboard) r2Object(c echo.Context) error {
	key := c.QueryParam("key")
	if key == "" {
		return fail(http.StatusBadRequest, "no key")
	}
	ctx, cancel, a, err := d.storageRequest(c)
	defer cancel()
	if err != nil {
		return err
	}
	r2 := d.opts.Store.R2()
	head, err := r2.Head(ctx, a.ID, c.Param("bucket"), key)
	if err != nil {
		return err
	}
	out := r2ObjectPreviewJSON{r2ObjectJSON: r2ObjectJSON{Key: head.Key, Size: head.Size, ETag: head.ETag, Uploaded: head.Uploaded}, Custom: head.Custom}
	if head.HTTP != nil {
		out.ContentType = head.HTTP.ContentType
	}
	var b []byte
	if head.Size > 0 {
		offset, length := int64(0), min(head.Size, MaxPreview)
		_, body, err := r2.Get(ctx, a.ID, c.Param("bucket"), key, store.R2GetOptions{Range: &store.R2Range{Offset: &offset, Length: &length}})
		if err != nil {
			return err
		}
		defer body.Close()
		if b, err = io.ReadAll(io.LimitReader(body, MaxPreview)); err != nil {
			return fail(http.StatusBadGateway, "read object %q: %v", key, err)
		}
	}
	out.Preview, out.Truncated, out.Binary = preview(b, head.Size)
	return c.JSON(http.StatusOK, out)
}

type d1DatabaseJSON struct {
	UUID      string    `json:"uuid"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
	Bytes     int64     `json:"bytes"`
	Tables    int       `json:"tables"`
}

// d1Databases answers the account's D1 databases with their sizes.
func (d *Dashboard) d1Databases(c echo.Context) error {
	ctx, cancel, a, err := d.storageRequest(c)
	defer cancel()
	if err != nil {
		return err
	}
	d1 := d.opts.Store.D1()
	all, err := d1.List(ctx, a.ID, "")
	if err != nil {
		return err
	}
	out := make([]d1DatabaseJSON, 0, len(all))
	for _, db := range all {
		info, err := d1.Get(ctx, a.ID, db.UUID)
		if err != nil {
			return err
		}
		out = append(out, d1DatabaseJSON{UUID: db.UUID, Name: db.Name, CreatedAt: db.CreatedAt, Bytes: info.FileSize, Tables: info.NumTables})
	}
	slices.SortFunc(out, func(x, y d1DatabaseJSON) int { return cmp.Or(cmp.Compare(x.Name, y.Name), cmp.Compare(x.UUID, y.UUID)) })
	return c.JSON(http.StatusOK, map[string]any{"databases": out})
}

type d1ColumnJSON struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	PrimaryKey bool   `json:"primaryKey,omitempty"`
}

type d1TableJSON struct {
	Name    string         `json:"name"`
	Columns []d1ColumnJSON `json:"columns"`
	Rows    int64          `json:"rows"`
}

// d1Tables answers a database's tables, columns and row counts.
func (d *Dashboard) d1Tables(c echo.Context) error {
	ctx, cancel, a, err := d.storageRequest(c)
	defer cancel()
	if err != nil {
		return err
	}
	tables, err := d.opts.Store.D1().Tables(ctx, a.ID, c.Param("database"))
	if err != nil {
		return err
	}
	out := make([]d1TableJSON, 0, len(tables))
	for _, t := range tables {
		cols := make([]d1ColumnJSON, 0, len(t.Columns))
		for _, col := range t.Columns {
			cols = append(cols, d1ColumnJSON(col))
		}
		out = append(out, d1TableJSON{Name: t.Name, Columns: cols, Rows: t.Rows})
	}
	return c.JSON(http.StatusOK, map[string]any{"tables": out})
}

// d1Query runs one read-only statement, body {"sql": "…"}, and answers
// {columns, rows, truncated, durationMs} with at most maxD1Rows rows.
func (d *Dashboard) d1Query(c echo.Context) error {
	var req struct {
		SQL string `json:"sql"`
	}
	if err := decodeJSON(c, &req, maxD1SQL); err != nil {
		return err
	}
	ctx, cancel, a, err := d.storageRequest(c)
	defer cancel()
	if err != nil {
		return err
	}
	start := time.Now()
	r, truncated, err := d.opts.Store.D1().ReadQuery(ctx, a.ID, c.Param("database"), req.SQL, maxD1Rows)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"columns": r.Columns, "rows": r.Rows, "truncated": truncated,
		"durationMs": float64(time.Since(start).Microseconds()) / 1000,
	})
}
