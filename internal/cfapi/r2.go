package cfapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/octohq/octo/internal/store"
)

// r2MaxJSONBody bounds the JSON bodies of the R2 API.
const r2MaxJSONBody = 64 << 10

// registerR2 mounts the R2 API on the account group a, and on the API group
// g the GraphQL endpoint `wrangler r2 bucket info` asks for a bucket's
// object count and size:
//
//	POST   /accounts/:id/r2/buckets                      {name, locationHint?, storageClass?}
//	GET    /accounts/:id/r2/buckets                      {buckets: [{name, creation_date, location, storage_class}]}
//	GET    /accounts/:id/r2/buckets/:name                {name, creation_date, location, storage_class}
//	DELETE /accounts/:id/r2/buckets/:name
//	PUT    /accounts/:id/r2/buckets/:name/objects/<key>  body = value; Content-Type, Cache-Control, … = HTTP metadata
//	GET    /accounts/:id/r2/buckets/:name/objects/<key>  the value (not an envelope); 404 when missing
//	DELETE /accounts/:id/r2/buckets/:name/objects/<key>
//	POST   /graphql                                      r2StorageAdaptiveGroups of one bucket
func (s *Server) registerR2(g, a *echo.Group) {
	h := &r2API{st: s.store.R2(), store: s.store}
	const p = "/r2/buckets"
	a.POST(p, h.createBucket)
	a.GET(p, h.listBuckets)
	a.GET(p+"/:bucket", h.getBucket)
	a.DELETE(p+"/:bucket", h.deleteBucket)
	a.PUT(p+"/:bucket/objects/*", h.putObject)
	a.GET(p+"/:bucket/objects/*", h.getObject)
	a.DELETE(p+"/:bucket/objects/*", h.deleteObject)
	g.POST("/graphql", h.graphQL)
}

// r2API serves the R2 routes.
type r2API struct {
	st    *store.R2
	store *store.Store
}

// r2BucketJSON is a bucket as the API returns it.
type r2BucketJSON struct {
	Name         string `json:"name"`
	CreationDate string `json:"creation_date"`
	Location     string `json:"location,omitempty"`
	StorageClass string `json:"storage_class,omitempty"`
}

func bucketJSON(b store.R2Bucket) r2BucketJSON {
	return r2BucketJSON{Name: b.Name, CreationDate: b.CreationDate.UTC().Format(time.RFC3339Nano), Location: b.Location, StorageClass: b.StorageClass}
}

func (h *r2API) createBucket(c echo.Context) error {
	var body struct {
		Name         string `json:"name"`
		LocationHint string `json:"locationHint"`
		StorageClass string `json:"storageClass"`
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, r2MaxJSONBody))
	if err != nil {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "could not read the request body: %v", err)
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "Invalid JSON in the request body: %v", err)
	}
	if body.StorageClass != "" && body.StorageClass != "Standard" {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "storage class %q is not supported: octo stores every object as Standard", body.StorageClass)
	}
	bucket, err := h.st.CreateBucket(c.Request().Context(), account(c).ID, body.Name, body.LocationHint)
	if err != nil {
		return err
	}
	return ok(c, bucketJSON(bucket))
}

func (h *r2API) listBuckets(c echo.Context) error {
	buckets, err := h.st.Buckets(c.Request().Context(), account(c).ID)
	if err != nil {
		return err
	}
	out := make([]r2BucketJSON, len(buckets))
	for i, b := range buckets {
		out[i] = bucketJSON(b)
	}
	return okPaged(c, map[string]any{"buckets": out}, PageInfo{Count: len(out), PerPage: len(out)})
}

func (h *r2API) getBucket(c echo.Context) error {
	b, err := h.st.Bucket(c.Request().Context(), account(c).ID, c.Param("bucket"))
	if err != nil {
		return err
	}
	return ok(c, bucketJSON(b))
}

func (h *r2API) deleteBucket(c echo.Context) error {
	if err := h.st.DeleteBucket(c.Request().Context(), account(c).ID, c.Param("bucket")); err != nil {
		return err
	}
	return ok(c, map[string]any{})
}

// r2PathKey returns the object key of an /objects/<key> route, decoded once
// from the escaped path.
func r2PathKey(c echo.Context) (string, error) {
	p := c.Request().URL.EscapedPath()
	const marker = "/objects/"
	i := strings.Index(p, marker)
	if i < 0 {
		return "", echo.ErrNotFound
	}
	key, err := url.PathUnescape(p[i+len(marker):])
	if err != nil {
		return "", Errorf(http.StatusBadRequest, store.CodeR2InvalidObject, "The specified object name is not valid: bad URL encoding: %v", err)
	}
	return key, nil
}

// r2ObjectJSON is an object as the API describes it.
type r2ObjectJSON struct {
	Key          string `json:"key"`
	Version      string `json:"version"`
	Size         int64  `json:"size"`
	ETag         string `json:"etag"`
	HTTPETag     string `json:"http_etag"`
	Uploaded     string `json:"uploaded"`
	StorageClass string `json:"storage_class"`
}

func (h *r2API) putObject(c echo.Context) error {
	key, err := r2PathKey(c)
	if err != nil {
		return err
	}
	r := c.Request()
	if sc := r.Header.Get("cf-r2-storage-class"); sc != "" && sc != "Standard" {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "storage class %q is not supported: octo stores every object as Standard", sc)
	}
	opts := store.R2PutOptions{HTTP: store.R2HTTPMetadata{
		ContentType: r.Header.Get("Content-Type"), ContentLanguage: r.Header.Get("Content-Language"),
		ContentDisposition: r.Header.Get("Content-Disposition"), ContentEncoding: r.Header.Get("Content-Encoding"),
		CacheControl: r.Header.Get("Cache-Control"),
	}}
	if e := r.Header.Get("Expires"); e != "" {
		t, err := http.ParseTime(e)
		if err != nil {
			return Errorf(http.StatusBadRequest, store.CodeBadRequest, "Invalid Expires header %q", e)
		}
		opts.HTTP.CacheExpiry = t
	}
	o, err := h.st.Put(r.Context(), account(c).ID, c.Param("bucket"), key, r.Body, r.ContentLength, opts)
	if err != nil {
		return err
	}
	return ok(c, r2ObjectJSON{Key: o.Key, Version: o.Version, Size: o.Size, ETag: o.ETag, HTTPETag: `"` + o.ETag + `"`,
		Uploaded: o.Uploaded.UTC().Format(time.RFC3339Nano), StorageClass: "Standard"})
}

func (h *r2API) getObject(c echo.Context) error {
	key, err := r2PathKey(c)
	if err != nil {
		return err
	}
	o, body, err := h.st.Get(c.Request().Context(), account(c).ID, c.Param("bucket"), key, store.R2GetOptions{})
	if err != nil {
		return err
	}
	defer body.Close()
	hdr := c.Response().Header()
	if m := o.HTTP; m != nil {
		for name, v := range map[string]string{"Content-Type": m.ContentType, "Content-Language": m.ContentLanguage,
			"Content-Disposition": m.ContentDisposition, "Content-Encoding": m.ContentEncoding, "Cache-Control": m.CacheControl} {
			if v != "" {
				hdr.Set(name, v)
			}
		}
		if !m.CacheExpiry.IsZero() {
			hdr.Set("Expires", m.CacheExpiry.UTC().Format(http.TimeFormat))
		}
	}
	if hdr.Get("Content-Type") == "" {
		hdr.Set("Content-Type", "application/octet-stream")
	}
	hdr.Set("ETag", `"`+o.ETag+`"`)
	hdr.Set("Last-Modified", o.Uploaded.UTC().Format(http.TimeFormat))
	hdr.Set("Content-Length", strconv.FormatInt(o.Size, 10))
	c.Response().WriteHeader(http.StatusOK)
	_, _ = io.CopyN(c.Response(), body, o.Size)
	return nil
}

func (h *r2API) deleteObject(c echo.Context) error {
	key, err := r2PathKey(c)
	if err != nil {
		return err
	}
	if err := h.st.Delete(c.Request().Context(), account(c).ID, c.Param("bucket"), key); err != nil {
		return err
	}
	return ok(c, map[string]any{})
}

// graphQL answers the one GraphQL query wrangler sends octo,
// r2StorageAdaptiveGroups (object count and size of a bucket, for
// `wrangler r2 bucket info`), in GraphQL's own format ({data, errors}, no
// envelope); other queries get a GraphQL error.
func (h *r2API) graphQL(c echo.Context) error {
	var q struct {
		Query     string `json:"query"`
		Variables struct {
			AccountTag string `json:"accountTag"`
			Filter     struct {
				BucketName string `json:"bucketName"`
			} `json:"filter"`
		} `json:"variables"`
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, r2MaxJSONBody))
	if err == nil {
		err = json.Unmarshal(b, &q)
	}
	if err != nil || !strings.Contains(q.Query, "r2StorageAdaptiveGroups") {
		return c.JSON(http.StatusOK, map[string]any{"data": nil, "errors": []map[string]string{
			{"message": "octo answers only the r2StorageAdaptiveGroups query of `wrangler r2 bucket info`"}}})
	}
	ctx := c.Request().Context()
	acct, err := h.store.Account(ctx, q.Variables.AccountTag)
	if err != nil {
		return c.JSON(http.StatusOK, map[string]any{"data": nil, "errors": []map[string]string{{"message": "unknown account"}}})
	}
	objects, size, err := h.st.Usage(ctx, acct.ID, q.Variables.Filter.BucketName)
	if err != nil {
		if store.AsError(err) == nil {
			return err
		}
		objects, size = 0, 0
	}
	groups := []map[string]any{{
		"max":        map[string]int64{"objectCount": objects, "payloadSize": size, "metadataSize": 0},
		"dimensions": map[string]string{"datetime": time.Now().UTC().Format(time.RFC3339)},
	}}
	return c.JSON(http.StatusOK, map[string]any{"data": map[string]any{"viewer": map[string]any{
		"accounts": []map[string]any{{"r2StorageAdaptiveGroups": groups}}}}, "errors": nil})
}
