package cfapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/octohq/octo/internal/store"
)

// Limits of the KV API's requests (Cloudflare's); the limits of keys, values
// and metadata are the store's.
const (
	kvMaxBulkItems   = 10000
	kvMaxBulkBody    = 100 << 20
	kvMaxJSONBody    = 1 << 20
	kvMinListLimit   = 10
	kvMaxPerPage     = 1000
	kvDefaultPerPage = 20
)

// registerKV mounts the Workers KV API on the account group a.
func (s *Server) registerKV(a *echo.Group) {
	h := &kvAPI{st: s.store.KV()}
	const p = "/storage/kv/namespaces"
	const n = p + "/:namespace_id"
	a.GET(p, h.listNamespaces)
	a.POST(p, h.createNamespace)
	// Every route under a namespace refuses a malformed namespace_id before
	// it reads a body.
	v := validNamespaceID
	a.GET(n, h.getNamespace, v)
	a.PUT(n, h.renameNamespace, v)
	a.DELETE(n, h.deleteNamespace, v)
	a.GET(n+"/keys", h.listKeys, v)
	// The key is the rest of the escaped path, decoded once: "/" arrives as
	// %2F, and a raw "/" is kept as part of the key.
	a.GET(n+"/values/*", h.getValue, v)
	a.PUT(n+"/values/*", h.putValue, v)
	a.DELETE(n+"/values/*", h.deleteValue, v)
	a.GET(n+"/metadata/*", h.getMetadata, v)
	a.PUT(n+"/bulk", h.bulkPut, v)
	a.POST(n+"/bulk/delete", h.bulkDelete, v)
	a.DELETE(n+"/bulk", h.bulkDelete, v) // legacy form of bulk/delete
}

// validNamespaceID answers 404 (10013, as for an unknown namespace) when
// the path's namespace_id is not 32 lowercase hex digits.
func validNamespaceID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !store.ValidKVNamespaceID(c.Param("namespace_id")) {
			return store.Errorf(store.NotFound, store.CodeKVNotFound, "namespace not found")
		}
		return next(c)
	}
}

// kvAPI serves the KV routes.
type kvAPI struct{ st *store.KV }

// kvNamespaceJSON is a namespace as the API returns it.
type kvNamespaceJSON struct {
	ID                  string `json:"id"`
	Title               string `json:"title"`
	SupportsURLEncoding bool   `json:"supports_url_encoding"`
}

func namespaceJSON(ns store.KVNamespace) kvNamespaceJSON {
	return kvNamespaceJSON{ID: ns.ID, Title: ns.Title, SupportsURLEncoding: true}
}

// kvReadBody reads at most limit bytes of the request body.
func kvReadBody(c echo.Context, limit int64) ([]byte, error) {
	r := c.Request()
	if r.ContentLength > limit {
		return nil, Errorf(http.StatusRequestEntityTooLarge, store.CodeTooLarge,
			"Request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, store.CodeBadRequest, "could not read the request body: %v", err)
	}
	if int64(len(b)) > limit {
		return nil, Errorf(http.StatusRequestEntityTooLarge, store.CodeTooLarge, "Request body exceeds the limit of %d bytes", limit)
	}
	return b, nil
}

// kvDecodeJSON reads a JSON body of at most limit bytes into v.
func kvDecodeJSON(c echo.Context, limit int64, v any) error {
	b, err := kvReadBody(c, limit)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "Invalid JSON in the request body: %v", err)
	}
	return nil
}

// kvPathKey returns the key of a /values/<key> or /metadata/<key> route,
// decoded exactly once from the escaped path (so "%2F" is a "/" of the key).
func kvPathKey(c echo.Context, kind string) (string, error) {
	p := c.Request().URL.EscapedPath()
	const marker = "/storage/kv/namespaces/"
	i := strings.Index(p, marker)
	if i < 0 {
		return "", echo.ErrNotFound
	}
	_, rest, _ := strings.Cut(p[i+len(marker):], "/")
	raw, ok := strings.CutPrefix(rest, kind+"/")
	if !ok {
		return "", echo.ErrNotFound
	}
	key, err := url.PathUnescape(raw)
	if err != nil {
		return "", Errorf(http.StatusBadRequest, store.CodeBadRequest, "Invalid key name: bad URL encoding: %v", err)
	}
	return key, nil
}

func kvParseInt(c echo.Context, name string) (*int64, error) {
	v := c.QueryParam(name)
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, store.CodeKVBadExpiration,
			"Invalid %s of %q. Please specify an integer number of seconds; expirations must be at least %d seconds in the future.",
			name, v, store.KVMinTTL)
	}
	return &n, nil
}

func (h *kvAPI) createNamespace(c echo.Context) error {
	var body struct {
		Title string `json:"title"`
	}
	if err := kvDecodeJSON(c, kvMaxJSONBody, &body); err != nil {
		return err
	}
	ns, err := h.st.CreateNamespace(c.Request().Context(), account(c).ID, body.Title)
	if err != nil {
		return err
	}
	return ok(c, namespaceJSON(ns))
}

func (h *kvAPI) listNamespaces(c echo.Context) error {
	order, direction := c.QueryParam("order"), c.QueryParam("direction")
	if order != "" && order != "title" && order != "id" {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "Invalid order %q: use title or id", order)
	}
	if direction != "" && direction != "asc" && direction != "desc" {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "Invalid direction %q: use asc or desc", direction)
	}
	all, err := h.st.Namespaces(c.Request().Context(), account(c).ID)
	if err != nil {
		return err
	}
	slices.SortFunc(all, func(a, b store.KVNamespace) int {
		if order == "id" {
			return strings.Compare(a.ID, b.ID)
		}
		if c := strings.Compare(a.Title, b.Title); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if direction == "desc" {
		slices.Reverse(all)
	}
	pg, _ := strconv.Atoi(c.QueryParam("page"))
	pg = max(pg, 1)
	per, _ := strconv.Atoi(c.QueryParam("per_page"))
	if per < 1 {
		per = kvDefaultPerPage
	}
	per = min(per, kvMaxPerPage)
	start := min((pg-1)*per, len(all))
	end := min(start+per, len(all))
	out := make([]kvNamespaceJSON, 0, end-start)
	for _, ns := range all[start:end] {
		out = append(out, namespaceJSON(ns))
	}
	return okPaged(c, out, PageInfo{Page: pg, PerPage: per, Count: len(out), TotalCount: len(all)})
}

func (h *kvAPI) getNamespace(c echo.Context) error {
	ns, err := h.st.Namespace(c.Request().Context(), account(c).ID, c.Param("namespace_id"))
	if err != nil {
		return err
	}
	return ok(c, namespaceJSON(ns))
}

func (h *kvAPI) renameNamespace(c echo.Context) error {
	var body struct {
		Title string `json:"title"`
	}
	if err := kvDecodeJSON(c, kvMaxJSONBody, &body); err != nil {
		return err
	}
	ns, err := h.st.RenameNamespace(c.Request().Context(), account(c).ID, c.Param("namespace_id"), body.Title)
	if err != nil {
		return err
	}
	return ok(c, namespaceJSON(ns))
}

func (h *kvAPI) deleteNamespace(c echo.Context) error {
	if err := h.st.DeleteNamespace(c.Request().Context(), account(c).ID, c.Param("namespace_id")); err != nil {
		return err
	}
	return ok(c, nil)
}

// kvListEnvelope is the envelope of a key listing: Cloudflare always sends
// result_info.cursor, "" on the last page (PageInfo would omit it).
type kvListEnvelope struct {
	Success    bool          `json:"success"`
	Errors     []Message     `json:"errors"`
	Messages   []Message     `json:"messages"`
	Result     []store.KVKey `json:"result"`
	ResultInfo kvListInfo    `json:"result_info"`
}

type kvListInfo struct {
	Count  int    `json:"count"`
	Cursor string `json:"cursor"`
}

func (h *kvAPI) listKeys(c echo.Context) error {
	limit := store.KVDefaultListLimit
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < kvMinListLimit || n > store.KVDefaultListLimit {
			return Errorf(http.StatusBadRequest, store.CodeBadRequest,
				"Invalid limit %q: it must be an integer from %d to %d", v, kvMinListLimit, store.KVDefaultListLimit)
		}
		limit = n
	}
	keys, cursor, err := h.st.List(c.Request().Context(), account(c).ID, c.Param("namespace_id"),
		c.QueryParam("prefix"), c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, kvListEnvelope{
		Success: true, Errors: []Message{}, Messages: []Message{},
		Result: keys, ResultInfo: kvListInfo{Count: len(keys), Cursor: cursor},
	})
}

// getValue answers the raw bytes, without the envelope.
func (h *kvAPI) getValue(c echo.Context) error {
	key, err := kvPathKey(c, "values")
	if err != nil {
		return err
	}
	e, err := h.st.Get(c.Request().Context(), account(c).ID, c.Param("namespace_id"), key)
	if err != nil {
		return err
	}
	if e.Expiration != 0 {
		c.Response().Header().Set("Expiration", strconv.FormatInt(e.Expiration, 10))
	}
	return c.Blob(http.StatusOK, "application/octet-stream", e.Value)
}

func (h *kvAPI) getMetadata(c echo.Context) error {
	key, err := kvPathKey(c, "metadata")
	if err != nil {
		return err
	}
	k, err := h.st.Head(c.Request().Context(), account(c).ID, c.Param("namespace_id"), key)
	if err != nil {
		return err
	}
	if k.Metadata == nil {
		return ok(c, nil)
	}
	return ok(c, k.Metadata)
}

// putValue takes the value as the raw body (any content type) or as the
// "value" part of a multipart form with an optional "metadata" part.
func (h *kvAPI) putValue(c echo.Context) error {
	key, err := kvPathKey(c, "values")
	if err != nil {
		return err
	}
	if err := store.ValidKVKey(key); err != nil {
		return err
	}
	exp, err := kvParseInt(c, "expiration")
	if err != nil {
		return err
	}
	ttl, err := kvParseInt(c, "expiration_ttl")
	if err != nil {
		return err
	}
	var e store.KVEntry
	if e.Expiration, err = h.st.ExpiresAt(exp, ttl); err != nil {
		return err
	}
	mt, params, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if mt == "multipart/form-data" {
		e.Value, e.Metadata, err = kvReadForm(c, params["boundary"])
	} else {
		e.Value, err = kvReadValue(c)
	}
	if err != nil {
		return err
	}
	if err := h.st.Put(c.Request().Context(), account(c).ID, c.Param("namespace_id"), key, e); err != nil {
		return err
	}
	return ok(c, nil)
}

// kvReadValue reads a raw value body.
func kvReadValue(c echo.Context) ([]byte, error) {
	r := c.Request()
	if r.ContentLength > store.KVMaxValueBytes {
		return nil, store.KVValueTooLarge(r.ContentLength)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, store.KVMaxValueBytes+1))
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, store.CodeBadRequest, "could not read the value: %v", err)
	}
	if len(b) > store.KVMaxValueBytes {
		return nil, store.KVValueTooLarge(-1)
	}
	return b, nil
}

// kvReadForm reads the "value" and "metadata" parts of a multipart put.
func kvReadForm(c echo.Context, boundary string) ([]byte, json.RawMessage, error) {
	if boundary == "" {
		return nil, nil, Errorf(http.StatusBadRequest, store.CodeBadRequest, "multipart/form-data body without a boundary")
	}
	mr := multipart.NewReader(c.Request().Body, boundary)
	var value []byte
	var md json.RawMessage
	seen := false
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, Errorf(http.StatusBadRequest, store.CodeBadRequest, "malformed multipart body: %v", err)
		}
		switch part.FormName() {
		case "value":
			b, err := io.ReadAll(io.LimitReader(part, store.KVMaxValueBytes+1))
			if err != nil {
				return nil, nil, Errorf(http.StatusBadRequest, store.CodeBadRequest, "malformed multipart body: %v", err)
			}
			if len(b) > store.KVMaxValueBytes {
				return nil, nil, store.KVValueTooLarge(-1)
			}
			value, seen = b, true
		case "metadata":
			b, err := io.ReadAll(io.LimitReader(part, kvMaxJSONBody+1))
			if err != nil {
				return nil, nil, Errorf(http.StatusBadRequest, store.CodeBadRequest, "malformed multipart body: %v", err)
			}
			if md, err = store.ValidKVMetadata(b); err != nil {
				return nil, nil, err
			}
		default:
			_, _ = io.Copy(io.Discard, part)
		}
	}
	if !seen {
		return nil, nil, Errorf(http.StatusBadRequest, store.CodeBadRequest, "multipart/form-data body without a \"value\" part")
	}
	return value, md, nil
}

func (h *kvAPI) deleteValue(c echo.Context) error {
	key, err := kvPathKey(c, "values")
	if err != nil {
		return err
	}
	if err := h.st.Delete(c.Request().Context(), account(c).ID, c.Param("namespace_id"), key); err != nil {
		return err
	}
	return ok(c, nil)
}

// kvBulkItem is one element of a bulk write.
type kvBulkItem struct {
	Key           *string         `json:"key"`
	Value         *string         `json:"value"`
	Base64        bool            `json:"base64"`
	Expiration    *int64          `json:"expiration"`
	ExpirationTTL *int64          `json:"expiration_ttl"`
	Metadata      json.RawMessage `json:"metadata"`
}

type kvBulkResult struct {
	SuccessfulKeyCount int      `json:"successful_key_count"`
	UnsuccessfulKeys   []string `json:"unsuccessful_keys"`
}

// bulkPut validates every item before writing any.
func (h *kvAPI) bulkPut(c echo.Context) error {
	var items []kvBulkItem
	if err := kvDecodeJSON(c, kvMaxBulkBody, &items); err != nil {
		return err
	}
	if len(items) > kvMaxBulkItems {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "Too many keys: %d, the limit is %d per request", len(items), kvMaxBulkItems)
	}
	writes := make([]store.KVWrite, len(items))
	for i, it := range items {
		fail := func(err error) error { return itemError(i, err) }
		if it.Key == nil {
			return fail(Errorf(http.StatusBadRequest, store.CodeBadRequest, "missing \"key\""))
		}
		if err := store.ValidKVKey(*it.Key); err != nil {
			return fail(err)
		}
		if it.Value == nil {
			return fail(Errorf(http.StatusBadRequest, store.CodeBadRequest, "key %q: missing \"value\"", *it.Key))
		}
		value := []byte(*it.Value)
		if it.Base64 {
			var err error
			if value, err = base64.StdEncoding.DecodeString(*it.Value); err != nil {
				return fail(Errorf(http.StatusBadRequest, store.CodeBadRequest, "key %q: the value is not valid base64: %v", *it.Key, err))
			}
		}
		if err := store.ValidKVValue(value); err != nil {
			return fail(err)
		}
		md, err := store.ValidKVMetadata(it.Metadata)
		if err != nil {
			return fail(err)
		}
		exp, err := h.st.ExpiresAt(it.Expiration, it.ExpirationTTL)
		if err != nil {
			return fail(err)
		}
		writes[i] = store.KVWrite{Key: *it.Key, Entry: store.KVEntry{Value: value, Metadata: md, Expiration: exp}}
	}
	failed, err := h.st.PutMany(c.Request().Context(), account(c).ID, c.Param("namespace_id"), writes)
	if err != nil {
		return err
	}
	return ok(c, kvBulkResult{SuccessfulKeyCount: len(writes) - len(failed), UnsuccessfulKeys: failed})
}

// bulkDelete takes a JSON array of key names.
func (h *kvAPI) bulkDelete(c echo.Context) error {
	var keys []string
	if err := kvDecodeJSON(c, kvMaxBulkBody, &keys); err != nil {
		return err
	}
	if len(keys) > kvMaxBulkItems {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "Too many keys: %d, the limit is %d per request", len(keys), kvMaxBulkItems)
	}
	for i, k := range keys {
		if err := store.ValidKVKey(k); err != nil {
			return itemError(i, err)
		}
	}
	failed, err := h.st.DeleteMany(c.Request().Context(), account(c).ID, c.Param("namespace_id"), keys)
	if err != nil {
		return err
	}
	return ok(c, kvBulkResult{SuccessfulKeyCount: len(keys) - len(failed), UnsuccessfulKeys: failed})
}

// itemError names item i of a bulk request in a refusal; other errors pass.
func itemError(i int, err error) error {
	var ae *APIError
	if errors.As(err, &ae) {
		return Errorf(ae.Status, ae.Code, "item %d: %s", i, ae.Msg)
	}
	if se := store.AsError(err); se != nil {
		return store.Errorf(se.Kind, se.Code, "item %d: %s", i, se.Msg)
	}
	return err
}
