package fakecf

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
)

// KVHeader carries "<accountID>/<namespaceID>" on every request of a
// workerd KV service: the workerd config injects it into the external
// service that backs each kv_namespace binding.
const KVHeader = "x-octo-kv"

// kvBulkGetMax is Cloudflare's limit of keys per bulk get.
const kvBulkGetMax = 100

// KVProtocolHandler serves the protocol workerd speaks to a kvNamespace
// service (reference/wrangler-api.md §8.7), backed by the same store as the
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
func (s *Server) KVProtocolHandler() http.Handler {
	return &kvProtocol{st: newKVStore(s.blobs, s.now), log: s.log}
}

type kvProtocol struct {
	st  *kvStore
	log *slog.Logger
}

func (h *kvProtocol) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := strings.TrimSpace(r.Header.Get(KVHeader))
	if hdr == "" {
		http.Error(w, "missing "+KVHeader+" header (<account id>/<namespace id>)", http.StatusBadRequest)
		return
	}
	acct, ns, found := strings.Cut(hdr, "/")
	if !found || acct == "" || ns == "" {
		http.Error(w, "malformed "+KVHeader+" header "+strconv.Quote(hdr)+": want <account id>/<namespace id>", http.StatusBadRequest)
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
			err = Errorf(http.StatusMethodNotAllowed, CodeBadRequest, "method %s not allowed on the key listing", r.Method)
			break
		}
		err = h.list(w, r, acct, ns)
	default:
		var key string
		key, err = url.PathUnescape(strings.TrimPrefix(path, "/"))
		if err != nil {
			err = Errorf(http.StatusBadRequest, CodeBadRequest, "bad URL encoding of the key: %v", err)
			break
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			err = h.get(w, r, acct, ns, key)
		case http.MethodPut:
			err = h.put(w, r, acct, ns, key)
		case http.MethodDelete:
			err = h.st.delete(r.Context(), acct, ns, key)
		default:
			w.Header().Set("Allow", "GET, PUT, DELETE")
			err = Errorf(http.StatusMethodNotAllowed, CodeBadRequest, "method %s not allowed on a key", r.Method)
		}
	}
	if err != nil {
		h.fail(w, r, err)
	}
}

// fail answers err as plain text with its status.
func (h *kvProtocol) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *APIError
	if errors.As(err, &ae) {
		http.Error(w, ae.Msg, ae.Status)
		return
	}
	h.log.Error("KV protocol", "method", r.Method, "path", r.URL.Path, "err", err)
	http.Error(w, "internal error: "+err.Error(), http.StatusInternalServerError)
}

func (h *kvProtocol) get(w http.ResponseWriter, r *http.Request, acct, ns, key string) error {
	e, err := h.st.get(r.Context(), acct, ns, key)
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
	if err := validKVKey(key); err != nil {
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
	var e kvEntry
	if e.Expiration, err = h.st.expiresAt(exp, ttl); err != nil {
		return err
	}
	if r.ContentLength > kvMaxValueBytes {
		return kvValueTooLarge(r.ContentLength)
	}
	if e.Value, err = io.ReadAll(io.LimitReader(r.Body, kvMaxValueBytes+1)); err != nil {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "could not read the value: %v", err)
	}
	if len(e.Value) > kvMaxValueBytes {
		return kvValueTooLarge(-1)
	}
	if md := r.Header.Get("CF-KV-Metadata"); md != "" {
		e.Metadata = json.RawMessage(md)
	}
	if err := h.st.put(r.Context(), acct, ns, key, e); err != nil {
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
			return nil, Errorf(http.StatusBadRequest, codeKVInvalidExpiration, "Invalid %s of %q: not a number of seconds", name, v)
		}
		n = int64(f)
	}
	return &n, nil
}

// kvProtocolList is the listing workerd parses.
type kvProtocolList struct {
	Keys         []kvKey `json:"keys"`
	ListComplete bool    `json:"list_complete"`
	Cursor       string  `json:"cursor,omitempty"`
}

func (h *kvProtocol) list(w http.ResponseWriter, r *http.Request, acct, ns string) error {
	q := r.URL.Query()
	limit := kvDefaultListLimit
	for _, name := range []string{"key_count_limit", "limit"} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return Errorf(http.StatusBadRequest, CodeBadRequest, "Invalid %s %q: it must be a positive integer", name, v)
		}
		limit = min(n, kvDefaultListLimit)
		break
	}
	keys, cursor, err := h.st.list(r.Context(), acct, ns, q.Get("prefix"), q.Get("cursor"), limit)
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
	b, err := io.ReadAll(io.LimitReader(r.Body, kvMaxJSONBody+1))
	if err != nil {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "could not read the request body: %v", err)
	}
	if len(b) > kvMaxJSONBody {
		return Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "bulk get body exceeds %d bytes", kvMaxJSONBody)
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "Invalid JSON in the request body: %v", err)
	}
	if body.Type == "" {
		body.Type = "text"
	}
	if body.Type != "text" && body.Type != "json" {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "bulk get supports the types \"text\" and \"json\", not %q", body.Type)
	}
	if len(body.Keys) > kvBulkGetMax {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "bulk get takes at most %d keys, got %d", kvBulkGetMax, len(body.Keys))
	}
	for _, k := range body.Keys {
		if err := validKVKey(k); err != nil {
			return err
		}
	}
	if _, err := h.st.namespace(r.Context(), acct, ns); err != nil {
		return err
	}
	entries := make([]*kvEntry, len(body.Keys))
	errs := make([]error, len(body.Keys))
	kvParallel(len(body.Keys), func(i int) {
		e, err := h.st.get(r.Context(), acct, ns, body.Keys[i])
		var ae *APIError
		switch {
		case errors.As(err, &ae) && ae.Code == CodeKVKeyNotFound:
		case err != nil:
			errs[i] = err
		default:
			entries[i] = &e
		}
	})
	if err := errors.Join(errs...); err != nil {
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
				return Errorf(http.StatusBadRequest, CodeBadRequest, "the value of key %q is not valid JSON", k)
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
