package podapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
)

// kvBulkGetMax is Cloudflare's limit of keys per bulk get.
const kvBulkGetMax = 100

// maxBulkGetBody bounds the JSON body of a bulk get.
const maxBulkGetBody = 1 << 20

// KVProtocol serves the protocol workerd speaks to a kvNamespace
// service (workerd's KvNamespace client), backed by the same store as the
// KV API:
//
//	GET    /<key>?urlencoded=true                  value, CF-KV-Metadata header; 404 = null
//	PUT    /<key>?urlencoded=true[&expiration_ttl=|&expiration=]  body = value, cf-kv-metadata header
//	DELETE /<key>?urlencoded=true
//	GET    /?prefix=&cursor=&key_count_limit=      {"keys":[…],"list_complete":bool,"cursor"?}
//	POST   /bulk/get  {"keys":[…],"type"?,"withMetadata"?}  {"<key>": value | {value,metadata} | null}
//
// The account and namespace come from the x-octo-kv header: missing → 400,
// unknown namespace → 404. Errors are plain text; workerd surfaces the status
// line to the worker ("KV PUT failed: 400 Bad Request").
func KVProtocol(kv *store.KV, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &kvProtocol{st: kv, log: log}
}

// kvProtocol is the handler KVProtocol returns.
type kvProtocol struct {
	st  *store.KV
	log *slog.Logger
}

func (h *kvProtocol) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := strings.TrimSpace(r.Header.Get(workerd.KVHeader))
	if hdr == "" {
		http.Error(w, "missing "+workerd.KVHeader+" header (<account id>/<namespace id>)", http.StatusBadRequest)
		return
	}
	acct, ns, found := strings.Cut(hdr, "/")
	if !found || acct == "" || ns == "" {
		http.Error(w, "malformed "+workerd.KVHeader+" header "+strconv.Quote(hdr)+": want <account id>/<namespace id>", http.StatusBadRequest)
		return
	}
	var err error
	path := r.URL.EscapedPath()
	switch {
	case path == "/bulk/get" && r.Method == http.MethodPost:
		err = h.bulkGet(w, r, acct, ns)
	case path == "/" || path == "":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET")
			err = methodNotAllowed(r.Method, "the key listing")
			break
		}
		err = h.list(w, r, acct, ns)
	default:
		var key string
		key, err = url.PathUnescape(strings.TrimPrefix(path, "/"))
		if err != nil {
			err = store.Errorf(store.Invalid, store.CodeBadRequest, "bad URL encoding of the key: %v", err)
			break
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			err = h.get(w, r, acct, ns, key)
		case http.MethodPut:
			err = h.put(w, r, acct, ns, key)
		case http.MethodDelete:
			err = h.st.Delete(r.Context(), acct, ns, key)
		default:
			w.Header().Set("Allow", "GET, PUT, DELETE")
			err = methodNotAllowed(r.Method, "a key")
		}
	}
	if err != nil {
		h.fail(w, r, err)
	}
}

// fail answers err as plain text with its status.
func (h *kvProtocol) fail(w http.ResponseWriter, r *http.Request, err error) {
	var me *methodError
	if errors.As(err, &me) {
		http.Error(w, me.Error(), http.StatusMethodNotAllowed)
		return
	}
	if se := store.AsError(err); se != nil {
		http.Error(w, se.Msg, se.Kind.HTTPStatus())
		return
	}
	h.log.Error("KV protocol", "method", r.Method, "path", r.URL.Path, "err", err)
	http.Error(w, "internal error: "+err.Error(), http.StatusInternalServerError)
}

func (h *kvProtocol) get(w http.ResponseWriter, r *http.Request, acct, ns, key string) error {
	e, err := h.st.Get(r.Context(), acct, ns, key)
	if err != nil {
		return err
	}
	if len(e.Metadata) > 0 {
		w.Header().Set("CF-KV-Metadata", string(e.Metadata))
	}
	if e.Expiration != 0 {
		w.Header().Set("CF-Expiration", strconv.FormatInt(e.Expiration, 10))
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(e.Value)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(e.Value)
	}
	return nil
}

func (h *kvProtocol) put(w http.ResponseWriter, r *http.Request, acct, ns, key string) error {
	if err := store.ValidKVKey(key); err != nil {
		return err
	}
	q := r.URL.Query()
	exp, err := kvQueryInt(q, "expiration")
	if err != nil {
		return err
	}
	ttl, err := kvQueryInt(q, "expiration_ttl")
	if err != nil {
		return err
	}
	var e store.KVEntry
	if e.Expiration, err = h.st.ExpiresAt(exp, ttl); err != nil {
		return err
	}
	if r.ContentLength > store.KVMaxValueBytes {
		return store.KVValueTooLarge(r.ContentLength)
	}
	// MaxBytesReader, unlike a LimitReader, also keeps the server from
	// draining the rest of an oversized body: it closes the connection.
	if e.Value, err = io.ReadAll(http.MaxBytesReader(w, r.Body, store.KVMaxValueBytes)); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return store.KVValueTooLarge(-1)
		}
		return store.Errorf(store.Invalid, store.CodeBadRequest, "could not read the value: %v", err)
	}
	if md := r.Header.Get("CF-KV-Metadata"); md != "" {
		e.Metadata = json.RawMessage(md)
	}
	if err := h.st.Put(r.Context(), acct, ns, key, e); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// kvQueryInt reads an optional integer query parameter.
func kvQueryInt(q url.Values, name string) (*int64, error) {
	v := q.Get(name)
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		// workerd sends whole seconds, but a JS number may carry a fraction.
		f, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil {
			return nil, store.Errorf(store.Invalid, store.CodeKVBadExpiration, "Invalid %s of %q: not a number of seconds", name, v)
		}
		n = int64(f)
	}
	return &n, nil
}

// kvProtocolList is the listing workerd parses.
type kvProtocolList struct {
	Keys         []store.KVKey `json:"keys"`
	ListComplete bool          `json:"list_complete"`
	Cursor       string        `json:"cursor,omitempty"`
}

func (h *kvProtocol) list(w http.ResponseWriter, r *http.Request, acct, ns string) error {
	q := r.URL.Query()
	limit := store.KVDefaultListLimit
	for _, name := range []string{"key_count_limit", "limit"} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return store.Errorf(store.Invalid, store.CodeBadRequest, "Invalid %s %q: it must be a positive integer", name, v)
		}
		limit = min(n, store.KVDefaultListLimit)
		break
	}
	keys, cursor, err := h.st.List(r.Context(), acct, ns, q.Get("prefix"), q.Get("cursor"), limit)
	if err != nil {
		return err
	}
	return writeJSON(w, kvProtocolList{Keys: keys, ListComplete: cursor == "", Cursor: cursor})
}

func (h *kvProtocol) bulkGet(w http.ResponseWriter, r *http.Request, acct, ns string) error {
	var body struct {
		Keys         []string `json:"keys"`
		Type         string   `json:"type"`
		WithMetadata bool     `json:"withMetadata"`
	}
	tooLarge := func() error {
		return store.Errorf(store.TooLarge, store.CodeTooLarge, "bulk get body exceeds %d bytes", maxBulkGetBody)
	}
	if r.ContentLength > maxBulkGetBody {
		return tooLarge()
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBulkGetBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return tooLarge()
		}
		return store.Errorf(store.Invalid, store.CodeBadRequest, "could not read the request body: %v", err)
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return store.Errorf(store.Invalid, store.CodeBadRequest, "Invalid JSON in the request body: %v", err)
	}
	if body.Type == "" {
		body.Type = "text"
	}
	if body.Type != "text" && body.Type != "json" {
		return store.Errorf(store.Invalid, store.CodeBadRequest, "bulk get supports the types \"text\" and \"json\", not %q", body.Type)
	}
	if len(body.Keys) > kvBulkGetMax {
		return store.Errorf(store.Invalid, store.CodeBadRequest, "bulk get takes at most %d keys, got %d", kvBulkGetMax, len(body.Keys))
	}
	entries, err := h.st.GetMany(r.Context(), acct, ns, body.Keys)
	if err != nil {
		return err
	}
	// An object in the order of the request's keys.
	var out bytes.Buffer
	out.WriteByte('{')
	for i, k := range body.Keys {
		if i > 0 {
			out.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		out.Write(kb)
		out.WriteByte(':')
		e := entries[i]
		if e == nil {
			out.WriteString("null")
			continue
		}
		var value json.RawMessage
		if body.Type == "json" {
			if !json.Valid(e.Value) {
				return store.Errorf(store.Invalid, store.CodeBadRequest, "the value of key %q is not valid JSON", k)
			}
			value = e.Value
		} else {
			value, _ = json.Marshal(string(e.Value))
		}
		if !body.WithMetadata {
			out.Write(value)
			continue
		}
		md := e.Metadata
		if len(md) == 0 {
			md = json.RawMessage("null")
		}
		fmt.Fprintf(&out, `{"value":%s,"metadata":%s}`, value, md)
	}
	out.WriteByte('}')
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out.Bytes())
	return nil
}

func writeJSON(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	return nil
}

// methodError is a request with a method the protocol has no use for.
type methodError struct{ method, target string }

func (e *methodError) Error() string { return "method " + e.method + " not allowed on " + e.target }

func methodNotAllowed(method, target string) error {
	return &methodError{method: method, target: target}
}
