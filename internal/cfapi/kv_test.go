package cfapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/store/storetest"
)

// testBlobs is a BlobStore on a real S3 store (embedded versitygw), started
// once per test binary by TestMain.
var testBlobs *store.BlobStore

func TestMain(m *testing.M) {
	os.Exit(storetest.RunWithS3(m, func(b *store.BlobStore) { testBlobs = b }))
}

const kvTestToken = "t"

// kvEnv is an API server with its own account and a settable clock.
type kvEnv struct {
	t       *testing.T
	e       *echo.Echo
	account string
	clock   atomic.Int64 // unix nanoseconds
}

func newKVEnv(t *testing.T) *kvEnv {
	t.Helper()
	acct := storetest.Account(t).ID
	env := &kvEnv{t: t, account: acct}
	env.clock.Store(time.Now().UnixNano())
	s := New(Options{
		Identity: store.Identity{Token: kvTestToken, AccountID: acct},
		Store:    store.New(store.Options{Blobs: testBlobs, Accounts: store.StaticAccounts{{ID: acct, Name: "kv test"}}, Now: env.now}),
	})
	env.e = echo.New()
	env.e.HTTPErrorHandler = ErrorHandler
	s.Register(env.e)
	return env
}

func (env *kvEnv) now() time.Time { return time.Unix(0, env.clock.Load()) }

func (env *kvEnv) advance(d time.Duration) { env.clock.Add(int64(d)) }

// base is the namespaces path; paths given to the helpers are relative to it.
func (env *kvEnv) base() string {
	return BasePath + "/accounts/" + env.account + "/storage/kv/namespaces"
}

// raw sends a request with body and content type; path is raw (escaped).
func (env *kvEnv) raw(method, path string, body []byte, contentType string) *httptest.ResponseRecorder {
	env.t.Helper()
	req := httptest.NewRequest(method, env.base()+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+kvTestToken)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	env.e.ServeHTTP(rec, req)
	return rec
}

// kvReply is a decoded envelope.
type kvReply struct {
	Status     int
	Success    bool            `json:"success"`
	Errors     []Message       `json:"errors"`
	Result     json.RawMessage `json:"result"`
	ResultInfo map[string]any  `json:"result_info"`
}

func (r kvReply) code() int {
	if len(r.Errors) == 0 {
		return 0
	}
	return r.Errors[0].Code
}

func decodeReply(t *testing.T, rec *httptest.ResponseRecorder) kvReply {
	t.Helper()
	var r kvReply
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("answer %d is not an envelope: %v: %q", rec.Code, err, rec.Body.String())
	}
	r.Status = rec.Code
	return r
}

// call sends body (marshalled unless []byte or nil) as JSON and decodes the
// envelope.
func (env *kvEnv) call(method, path string, body any) kvReply {
	env.t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			env.t.Fatal(err)
		}
	}
	return decodeReply(env.t, env.raw(method, path, b, "application/json"))
}

// must calls and fails the test unless the answer is a success.
func (env *kvEnv) must(method, path string, body any) kvReply {
	env.t.Helper()
	r := env.call(method, path, body)
	if r.Status != http.StatusOK || !r.Success {
		env.t.Fatalf("%s %s = %d %+v", method, path, r.Status, r.Errors)
	}
	return r
}

// fail checks an error answer.
func (env *kvEnv) fail(r kvReply, status, code int) {
	env.t.Helper()
	if r.Status != status || r.Success || r.code() != code {
		env.t.Errorf("answer = %d success=%v %+v, want %d with code %d", r.Status, r.Success, r.Errors, status, code)
	}
	if len(r.Errors) > 0 && r.Errors[0].Message == "" {
		env.t.Error("error without a message")
	}
}

func (env *kvEnv) createNS(title string) string {
	env.t.Helper()
	var ns kvNamespaceJSON
	unmarshal(env.t, env.must(http.MethodPost, "", map[string]string{"title": title}).Result, &ns)
	return ns.ID
}

func unmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// put stores a raw value like `wrangler kv key put K V`; key is raw (escaped).
func (env *kvEnv) put(ns, escapedKey string, value []byte) {
	env.t.Helper()
	r := decodeReply(env.t, env.raw(http.MethodPut, "/"+ns+"/values/"+escapedKey, value, "text/plain;charset=UTF-8"))
	if r.Status != http.StatusOK || !r.Success || string(r.Result) != "null" {
		env.t.Fatalf("put %s = %d %+v %s", escapedKey, r.Status, r.Errors, r.Result)
	}
}

// get returns the raw value or fails unless it is 200.
func (env *kvEnv) get(ns, escapedKey string) []byte {
	env.t.Helper()
	rec := env.raw(http.MethodGet, "/"+ns+"/values/"+escapedKey, nil, "")
	if rec.Code != http.StatusOK {
		env.t.Fatalf("get %s = %d %s", escapedKey, rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/octet-stream" {
		env.t.Errorf("get %s: Content-Type = %q", escapedKey, ct)
	}
	return rec.Body.Bytes()
}

// missing checks that a key answers 404 with code 10009.
func (env *kvEnv) missing(ns, escapedKey string) {
	env.t.Helper()
	env.fail(decodeReply(env.t, env.raw(http.MethodGet, "/"+ns+"/values/"+escapedKey, nil, "")),
		http.StatusNotFound, store.CodeKVKeyNotFound)
}

// listAll follows cursors like wrangler and returns every key.
func (env *kvEnv) listAll(ns, query string) ([]store.KVKey, int) {
	env.t.Helper()
	var all []store.KVKey
	cursor, pages := "", 0
	for {
		q := query
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		r := env.must(http.MethodGet, "/"+ns+"/keys?"+q, nil)
		var keys []store.KVKey
		unmarshal(env.t, r.Result, &keys)
		all = append(all, keys...)
		pages++
		if got := r.ResultInfo["count"]; got != float64(len(keys)) {
			env.t.Errorf("result_info.count = %v, want %d", got, len(keys))
		}
		c, present := r.ResultInfo["cursor"]
		if !present {
			env.t.Fatalf("result_info without cursor: %v", r.ResultInfo)
		}
		if cursor = c.(string); cursor == "" {
			return all, pages
		}
		if pages > 10000 {
			env.t.Fatal("cursor paging does not end")
		}
	}
}

func kvNames(keys []store.KVKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.Name
	}
	return out
}

func TestKVNamespaces(t *testing.T) {
	env := newKVEnv(t)
	ids := map[string]string{}
	for _, title := range []string{"bravo", "alpha", "charlie"} {
		r := env.must(http.MethodPost, "", []byte("{\n  \"title\": \""+title+"\"\n}"))
		var ns map[string]any
		unmarshal(t, r.Result, &ns)
		id, _ := ns["id"].(string)
		if !hex32.MatchString(id) || ns["title"] != title || ns["supports_url_encoding"] != true {
			t.Fatalf("create %s = %v", title, ns)
		}
		ids[title] = id
	}

	t.Run("create errors", func(t *testing.T) {
		for _, tc := range []struct {
			name         string
			body         any
			status, code int
		}{
			{"duplicate title", map[string]string{"title": "alpha"}, http.StatusBadRequest, store.CodeKVTitleExists},
			{"no title", map[string]string{}, http.StatusBadRequest, store.CodeBadRequest},
			{"blank title", map[string]string{"title": "  "}, http.StatusBadRequest, store.CodeBadRequest},
			{"invalid JSON", []byte(`{"title":`), http.StatusBadRequest, store.CodeBadRequest},
		} {
			t.Run(tc.name, func(t *testing.T) { env.fail(env.call(http.MethodPost, "", tc.body), tc.status, tc.code) })
		}
	})

	list := func(query string) ([]string, map[string]any) {
		t.Helper()
		r := env.must(http.MethodGet, "?"+query, nil)
		var got []kvNamespaceJSON
		unmarshal(t, r.Result, &got)
		if got == nil {
			t.Fatalf("list %s: result %s, want an array", query, r.Result)
		}
		titles := []string{}
		for _, ns := range got {
			titles = append(titles, ns.Title)
		}
		return titles, r.ResultInfo
	}
	t.Run("list", func(t *testing.T) {
		for _, tc := range []struct {
			query string
			want  []string
			info  map[string]any
		}{
			{"per_page=2&order=title&direction=asc&page=1", []string{"alpha", "bravo"},
				map[string]any{"page": 1.0, "per_page": 2.0, "count": 2.0, "total_count": 3.0}},
			{"per_page=2&order=title&direction=asc&page=2", []string{"charlie"},
				map[string]any{"page": 2.0, "per_page": 2.0, "count": 1.0, "total_count": 3.0}},
			{"per_page=2&order=title&direction=asc&page=3", []string{},
				map[string]any{"page": 3.0, "per_page": 2.0, "count": 0.0, "total_count": 3.0}},
			// wrangler kv namespace list: page 1 (implicit), then page=2 must be empty.
			{"per_page=1000&order=title&direction=asc", []string{"alpha", "bravo", "charlie"}, nil},
			{"per_page=1000&order=title&direction=asc&page=2", []string{}, nil},
			{"per_page=100&order=title&direction=desc&page=1", []string{"charlie", "bravo", "alpha"}, nil},
			{"", []string{"alpha", "bravo", "charlie"}, map[string]any{"page": 1.0, "per_page": 20.0, "count": 3.0, "total_count": 3.0}},
		} {
			got, info := list(tc.query)
			if !slices.Equal(got, tc.want) {
				t.Errorf("list ?%s = %q, want %q", tc.query, got, tc.want)
			}
			for k, v := range tc.info {
				if info[k] != v {
					t.Errorf("list ?%s: result_info.%s = %v, want %v", tc.query, k, info[k], v)
				}
			}
		}
		byID := []string{ids["alpha"], ids["bravo"], ids["charlie"]}
		slices.Sort(byID)
		var got []kvNamespaceJSON
		unmarshal(t, env.must(http.MethodGet, "?order=id", nil).Result, &got)
		if gotIDs := []string{got[0].ID, got[1].ID, got[2].ID}; !slices.Equal(gotIDs, byID) {
			t.Errorf("order=id = %v, want %v", gotIDs, byID)
		}
		env.fail(env.call(http.MethodGet, "?order=size", nil), http.StatusBadRequest, store.CodeBadRequest)
	})

	t.Run("get and rename", func(t *testing.T) {
		var ns kvNamespaceJSON
		unmarshal(t, env.must(http.MethodGet, "/"+ids["alpha"], nil).Result, &ns)
		if ns.Title != "alpha" || ns.ID != ids["alpha"] {
			t.Errorf("get = %+v", ns)
		}
		env.fail(env.call(http.MethodPut, "/"+ids["alpha"], map[string]string{"title": "bravo"}), http.StatusBadRequest, store.CodeKVTitleExists)
		env.must(http.MethodPut, "/"+ids["alpha"], map[string]string{"title": "alpha"}) // its own title
		unmarshal(t, env.must(http.MethodPut, "/"+ids["alpha"], map[string]string{"title": "delta"}).Result, &ns)
		if ns.Title != "delta" {
			t.Errorf("rename = %+v", ns)
		}
		if got, _ := list("order=title"); !slices.Equal(got, []string{"bravo", "charlie", "delta"}) {
			t.Errorf("after rename: %q", got)
		}
		env.must(http.MethodPost, "", map[string]string{"title": "alpha"}) // free again
		env.fail(env.call(http.MethodPut, "/"+strings.Repeat("0", 32), map[string]string{"title": "x"}), http.StatusNotFound, store.CodeKVNotFound)
	})

	t.Run("unknown namespace", func(t *testing.T) {
		for _, path := range []string{"/" + strings.Repeat("0", 32), "/nothex", "/" + strings.Repeat("0", 32) + "/keys",
			"/" + strings.Repeat("0", 32) + "/values/k", "/" + strings.Repeat("0", 32) + "/metadata/k"} {
			env.fail(env.call(http.MethodGet, path, nil), http.StatusNotFound, store.CodeKVNotFound)
		}
		env.fail(env.call(http.MethodDelete, "/"+strings.Repeat("0", 32), nil), http.StatusNotFound, store.CodeKVNotFound)
		env.fail(decodeReply(t, env.raw(http.MethodPut, "/"+strings.Repeat("0", 32)+"/values/k", []byte("v"), "text/plain")),
			http.StatusNotFound, store.CodeKVNotFound)
	})

	t.Run("delete with keys", func(t *testing.T) {
		ns := ids["bravo"]
		for i := range 5 {
			env.put(ns, "k"+strconv.Itoa(i), []byte("v"))
		}
		if r := env.must(http.MethodDelete, "/"+ns, nil); string(r.Result) != "null" {
			t.Errorf("delete result = %s", r.Result)
		}
		env.fail(env.call(http.MethodGet, "/"+ns, nil), http.StatusNotFound, store.CodeKVNotFound)
		env.fail(env.call(http.MethodGet, "/"+ns+"/keys", nil), http.StatusNotFound, store.CodeKVNotFound)
		env.fail(env.call(http.MethodGet, "/"+ns+"/values/k1", nil), http.StatusNotFound, store.CodeKVNotFound)
		left, err := testBlobs.List(context.Background(), "accounts/"+env.account+"/kv/"+ns+"/", "", 0)
		if err != nil || len(left) != 0 {
			t.Errorf("objects left after delete: %v, %v", left, err)
		}
		if got, _ := list(""); !slices.Equal(got, []string{"alpha", "charlie", "delta"}) {
			t.Errorf("after delete: %q", got)
		}
	})
}

func TestKVValues(t *testing.T) {
	env := newKVEnv(t)
	ns := env.createNS("values")
	binary := make([]byte, 1<<20)
	for i := range binary {
		binary[i] = byte(i*7 + i/256)
	}
	long := strings.Repeat("é", 256) // 512 bytes
	for _, tc := range []struct {
		name, path, key string
		value           []byte
	}{
		{"plain", "plain", "plain", []byte("hello")},
		{"slash and space", "dir%2Fkey%202", "dir/key 2", []byte("nested")},
		{"raw slash", "raw/slash", "raw/slash", []byte("raw")},
		{"percent", "100%25", "100%", []byte("pct")},
		{"plus is literal", "a+b", "a+b", []byte("plus")},
		{"unicode", url.PathEscape("ключ 🔑"), "ключ 🔑", []byte("unicode")},
		{"512 bytes", url.PathEscape(long), long, []byte("long")},
		{"binary value", "bin", "bin", binary},
		{"empty value", "empty", "empty", []byte{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env.put(ns, tc.path, tc.value)
			if got := env.get(ns, tc.path); !bytes.Equal(got, tc.value) {
				t.Errorf("get = %d bytes, want %d bytes", len(got), len(tc.value))
			}
			if got := env.get(ns, url.PathEscape(tc.key)); !bytes.Equal(got, tc.value) {
				t.Errorf("get by escaped key = %d bytes, want %d bytes", len(got), len(tc.value))
			}
			if r := env.must(http.MethodGet, "/"+ns+"/metadata/"+tc.path, nil); string(r.Result) != "null" {
				t.Errorf("metadata = %s, want null", r.Result)
			}
		})
	}
	keys, _ := env.listAll(ns, "prefix=")
	want := []string{"100%", "a+b", "bin", "dir/key 2", "empty", "plain", "raw/slash", long, "ключ 🔑"}
	if got := kvNames(keys); !slices.Equal(got, want) {
		t.Errorf("list = %q, want %q", got, want)
	}

	t.Run("overwrite", func(t *testing.T) {
		env.put(ns, "plain", []byte("again"))
		if got := env.get(ns, "plain"); string(got) != "again" {
			t.Errorf("get = %q", got)
		}
	})

	t.Run("invalid keys", func(t *testing.T) {
		for _, path := range []string{"", ".", "..", "%2E", "%2E%2E", url.PathEscape(long + "x"), "%FF"} {
			env.fail(decodeReply(t, env.raw(http.MethodPut, "/"+ns+"/values/"+path, []byte("v"), "text/plain")),
				http.StatusBadRequest, store.CodeBadRequest)
			env.fail(decodeReply(t, env.raw(http.MethodGet, "/"+ns+"/values/"+path, nil, "")),
				http.StatusBadRequest, store.CodeBadRequest)
		}
	})

	t.Run("too large", func(t *testing.T) {
		r := decodeReply(t, env.raw(http.MethodPut, "/"+ns+"/values/big", make([]byte, store.KVMaxValueBytes+1), "application/octet-stream"))
		env.fail(r, http.StatusRequestEntityTooLarge, store.CodeTooLarge)
		if !strings.Contains(r.Errors[0].Message, "25 MiB") {
			t.Errorf("message = %q", r.Errors[0].Message)
		}
		env.missing(ns, "big")
	})

	t.Run("missing and delete", func(t *testing.T) {
		env.missing(ns, "nope")
		env.fail(env.call(http.MethodGet, "/"+ns+"/metadata/nope", nil), http.StatusNotFound, store.CodeKVKeyNotFound)
		for range 2 { // deleting a missing key is fine
			if r := env.must(http.MethodDelete, "/"+ns+"/values/dir%2Fkey%202", nil); string(r.Result) != "null" {
				t.Errorf("delete result = %s", r.Result)
			}
		}
		env.missing(ns, "dir%2Fkey%202")
		env.fail(env.call(http.MethodDelete, "/"+ns+"/values/..", nil), http.StatusBadRequest, store.CodeBadRequest)
	})

	t.Run("namespaces are separate", func(t *testing.T) {
		other := env.createNS("other")
		env.missing(other, "plain")
		if keys, _ := env.listAll(other, ""); len(keys) != 0 {
			t.Errorf("other namespace lists %v", kvNames(keys))
		}
	})
}

// multipartBody builds the form `wrangler kv key put --path F --metadata M` sends.
func multipartBody(t *testing.T, value []byte, metadata string) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="value"; filename="blob"`)
	h.Set("Content-Type", "application/octet-stream")
	p, err := w.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	p.Write(value)
	if metadata != "" {
		if err := w.WriteField("metadata", metadata); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), w.FormDataContentType()
}

func TestKVMultipart(t *testing.T) {
	env := newKVEnv(t)
	ns := env.createNS("multipart")
	value := []byte{0, 1, 2, 0xff, '\r', '\n', '-', '-'}
	body, ct := multipartBody(t, value, `{"kind": "blob", "n": 1}`)
	r := decodeReply(t, env.raw(http.MethodPut, "/"+ns+"/values/dir%2Fkey%202?expiration_ttl=3600", body, ct))
	if r.Status != http.StatusOK || !r.Success {
		t.Fatalf("multipart put = %d %+v", r.Status, r.Errors)
	}
	if got := env.get(ns, "dir%2Fkey%202"); !bytes.Equal(got, value) {
		t.Errorf("get = %v, want %v", got, value)
	}
	if r := env.must(http.MethodGet, "/"+ns+"/metadata/dir%2Fkey%202", nil); string(r.Result) != `{"kind":"blob","n":1}` {
		t.Errorf("metadata = %s", r.Result)
	}
	keys, _ := env.listAll(ns, "prefix=dir%2F")
	wantExp := env.now().Unix() + 3600
	if len(keys) != 1 || keys[0].Name != "dir/key 2" || keys[0].Expiration != wantExp || string(keys[0].Metadata) != `{"kind":"blob","n":1}` {
		t.Errorf("list = %+v, want dir/key 2 expiring at %d with metadata", keys, wantExp)
	}

	body, ct = multipartBody(t, []byte("no metadata"), "")
	if r := decodeReply(t, env.raw(http.MethodPut, "/"+ns+"/values/plain", body, ct)); !r.Success {
		t.Errorf("multipart put without metadata = %+v", r.Errors)
	}
	if got := env.get(ns, "plain"); string(got) != "no metadata" {
		t.Errorf("get = %q", got)
	}

	for _, tc := range []struct {
		name, metadata string
		status, code   int
	}{
		{"invalid metadata", `{"kind":`, http.StatusBadRequest, store.CodeBadRequest},
		{"metadata too large", `{"x":"` + strings.Repeat("m", 1024) + `"}`, http.StatusRequestEntityTooLarge, store.CodeTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, ct := multipartBody(t, []byte("v"), tc.metadata)
			env.fail(decodeReply(t, env.raw(http.MethodPut, "/"+ns+"/values/bad", body, ct)), tc.status, tc.code)
			env.missing(ns, "bad")
		})
	}
	t.Run("no value part", func(t *testing.T) {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		w.WriteField("metadata", "{}")
		w.Close()
		env.fail(decodeReply(t, env.raw(http.MethodPut, "/"+ns+"/values/bad", buf.Bytes(), w.FormDataContentType())),
			http.StatusBadRequest, store.CodeBadRequest)
	})
}

func TestKVExpiration(t *testing.T) {
	env := newKVEnv(t)
	ns := env.createNS("expiration")
	now := env.now().Unix()
	for _, tc := range []struct {
		query string
		code  int // 0 = accepted
	}{
		{"expiration_ttl=59", store.CodeKVBadExpiration},
		{"expiration_ttl=0", store.CodeKVBadExpiration},
		{"expiration_ttl=soon", store.CodeKVBadExpiration},
		{"expiration=" + strconv.FormatInt(now+30, 10), store.CodeKVBadExpiration},
		{"expiration=" + strconv.FormatInt(now-1000, 10), store.CodeKVBadExpiration},
		{"expiration_ttl=60", 0},
		{"expiration=" + strconv.FormatInt(now+120, 10), 0},
	} {
		r := decodeReply(t, env.raw(http.MethodPut, "/"+ns+"/values/k?"+tc.query, []byte("v"), "text/plain"))
		if tc.code == 0 {
			if !r.Success {
				t.Errorf("%s: %+v", tc.query, r.Errors)
			}
			continue
		}
		env.fail(r, http.StatusBadRequest, tc.code)
		if !strings.Contains(r.Errors[0].Message, "60") {
			t.Errorf("%s: message %q does not name the 60 s minimum", tc.query, r.Errors[0].Message)
		}
	}

	env.put(ns, "forever", []byte("stays"))
	for i, q := range []string{"expiration_ttl=100", "expiration_ttl=300", "expiration=" + strconv.FormatInt(now+100, 10)} {
		r := decodeReply(t, env.raw(http.MethodPut, "/"+ns+"/values/e"+strconv.Itoa(i)+"?"+q, []byte("v"), "text/plain"))
		if !r.Success {
			t.Fatalf("put %s: %+v", q, r.Errors)
		}
	}
	env.advance(150 * time.Second)
	env.missing(ns, "e0")
	env.missing(ns, "e2")
	env.missing(ns, "k") // expired at now+120
	env.fail(env.call(http.MethodGet, "/"+ns+"/metadata/e0", nil), http.StatusNotFound, store.CodeKVKeyNotFound)
	keys, _ := env.listAll(ns, "")
	if got := kvNames(keys); !slices.Equal(got, []string{"e1", "forever"}) {
		t.Errorf("list after 150 s = %q", got)
	}
	if keys[0].Expiration != now+300 || keys[1].Expiration != 0 {
		t.Errorf("expirations = %d, %d", keys[0].Expiration, keys[1].Expiration)
	}
	// Expired keys are deleted lazily once met.
	if stored, err := testBlobs.List(context.Background(), "accounts/"+env.account+"/kv/"+ns+"/keys/", "", 0); err != nil || len(stored) != 2 {
		t.Errorf("value objects after the expired keys were met = %q, %v; want e1 and forever only", stored, err)
	}
	env.advance(200 * time.Second)
	env.missing(ns, "e1")
	if got := string(env.get(ns, "forever")); got != "stays" {
		t.Errorf("forever = %q", got)
	}
}

func TestKVListPaging(t *testing.T) {
	env := newKVEnv(t)
	ns := env.createNS("paging")
	var items []map[string]any
	var inP []string
	for i := range 25 {
		k := fmt.Sprintf("p/%02d", i)
		inP = append(inP, k)
		items = append(items, map[string]any{"key": k, "value": "v"})
	}
	for _, k := range []string{"a", "p", "p.", "q/1", "o/1"} {
		items = append(items, map[string]any{"key": k, "value": "v"})
	}
	env.must(http.MethodPut, "/"+ns+"/bulk", items)

	t.Run("prefix with cursor", func(t *testing.T) {
		keys, pages := env.listAll(ns, "prefix=p%2F&limit=10")
		if got := kvNames(keys); !slices.Equal(got, inP) || pages != 3 {
			t.Errorf("list p/ by 10 = %d pages %q, want 3 pages %q", pages, got, inP)
		}
	})
	t.Run("page sizes", func(t *testing.T) {
		r := env.must(http.MethodGet, "/"+ns+"/keys?prefix=p%2F&limit=10", nil)
		var keys []store.KVKey
		unmarshal(t, r.Result, &keys)
		if len(keys) != 10 || r.ResultInfo["cursor"] == "" {
			t.Errorf("first page = %d keys, cursor %v", len(keys), r.ResultInfo["cursor"])
		}
	})
	t.Run("everything", func(t *testing.T) {
		keys, _ := env.listAll(ns, "")
		want := append([]string{"a", "o/1", "p"}, inP...)
		want = append(want, "p.", "q/1")
		slices.Sort(want)
		if got := kvNames(keys); !slices.Equal(got, want) {
			t.Errorf("list = %q, want %q", got, want)
		}
	})
	t.Run("prefix edge", func(t *testing.T) {
		for _, tc := range []struct {
			prefix string
			want   int
		}{{"p", 27}, {"p%2F0", 10}, {"p%2F2", 5}, {"z", 0}, {"", 30}, {"p%2F24", 1}, {"p%2F240", 0}} {
			keys, _ := env.listAll(ns, "limit=10&prefix="+tc.prefix)
			if len(keys) != tc.want {
				t.Errorf("prefix %s: %d keys, want %d", tc.prefix, len(keys), tc.want)
			}
		}
	})
	t.Run("bad parameters", func(t *testing.T) {
		for _, q := range []string{"limit=5", "limit=1001", "limit=x", "cursor=%21%21"} {
			env.fail(env.call(http.MethodGet, "/"+ns+"/keys?"+q, nil), http.StatusBadRequest, store.CodeBadRequest)
		}
	})
	t.Run("expired keys are skipped within a page", func(t *testing.T) {
		for i := 3; i < 8; i++ {
			r := decodeReply(t, env.raw(http.MethodPut, fmt.Sprintf("/%s/values/p%%2F%02d?expiration_ttl=60", ns, i), []byte("v"), "text/plain"))
			if !r.Success {
				t.Fatal(r.Errors)
			}
		}
		env.advance(time.Minute)
		r := env.must(http.MethodGet, "/"+ns+"/keys?prefix=p%2F&limit=10", nil)
		var keys []store.KVKey
		unmarshal(t, r.Result, &keys)
		want := []string{"p/00", "p/01", "p/02", "p/08", "p/09", "p/10", "p/11", "p/12", "p/13", "p/14"}
		if got := kvNames(keys); !slices.Equal(got, want) {
			t.Errorf("page with expired keys = %q, want %q", got, want)
		}
		all, _ := env.listAll(ns, "prefix=p%2F&limit=10")
		if len(all) != 20 {
			t.Errorf("after expiry: %d keys, want 20", len(all))
		}
	})
	t.Run("long keys across segments", func(t *testing.T) {
		ns := env.createNS("long keys")
		var want []string
		for n := 147; n <= 153; n++ {
			want = append(want, strings.Repeat("x", n), strings.Repeat("x", n)+"0", strings.Repeat("x", n-1)+"y")
		}
		want = append(want, strings.Repeat("x", 300), strings.Repeat("x", 512), strings.Repeat("x", 511)+"y", "x", "xy", "w")
		var items []map[string]string
		for _, k := range want {
			items = append(items, map[string]string{"key": k, "value": k})
		}
		env.must(http.MethodPut, "/"+ns+"/bulk", items)
		slices.Sort(want)
		for _, limit := range []string{"10", "11", "1000"} {
			keys, _ := env.listAll(ns, "limit="+limit)
			if got := kvNames(keys); !slices.Equal(got, want) {
				t.Errorf("limit %s: list = %d keys (%v), want %d in order", limit, len(got), lens(got), len(want))
			}
		}
		prefix := strings.Repeat("x", 150)
		keys, _ := env.listAll(ns, "limit=10&prefix="+prefix)
		var wantP []string
		for _, k := range want {
			if strings.HasPrefix(k, prefix) {
				wantP = append(wantP, k)
			}
		}
		if got := kvNames(keys); !slices.Equal(got, wantP) {
			t.Errorf("prefix x*150: %v, want %v", lens(got), lens(wantP))
		}
		for _, k := range want {
			if got := env.get(ns, url.PathEscape(k)); string(got) != k {
				t.Errorf("get %d-byte key = %d bytes", len(k), len(got))
			}
		}
	})
}

func lens(keys []string) []int {
	out := make([]int, len(keys))
	for i, k := range keys {
		out[i] = len(k)
	}
	return out
}

func TestKVBulk(t *testing.T) {
	env := newKVEnv(t)
	ns := env.createNS("bulk")
	bin := []byte{0xff, 0x00, 0x80, 'x'}
	r := env.must(http.MethodPut, "/"+ns+"/bulk", []map[string]any{
		{"key": "text", "value": "hello"},
		{"key": "bin", "value": base64.StdEncoding.EncodeToString(bin), "base64": true},
		{"key": "meta", "value": "m", "metadata": map[string]any{"a": 1}, "expiration_ttl": 600},
		{"key": "dir/k", "value": "d", "expiration": env.now().Unix() + 3600},
	})
	var res kvBulkResult
	unmarshal(t, r.Result, &res)
	if res.SuccessfulKeyCount != 4 || res.UnsuccessfulKeys == nil || len(res.UnsuccessfulKeys) != 0 {
		t.Errorf("bulk put = %s", r.Result)
	}
	if got := env.get(ns, "text"); string(got) != "hello" {
		t.Errorf("text = %q", got)
	}
	if got := env.get(ns, "bin"); !bytes.Equal(got, bin) {
		t.Errorf("bin = %v", got)
	}
	if r := env.must(http.MethodGet, "/"+ns+"/metadata/meta", nil); string(r.Result) != `{"a":1}` {
		t.Errorf("metadata = %s", r.Result)
	}
	keys, _ := env.listAll(ns, "")
	if got := kvNames(keys); !slices.Equal(got, []string{"bin", "dir/k", "meta", "text"}) {
		t.Errorf("list = %q", got)
	}

	t.Run("all or nothing", func(t *testing.T) {
		good := map[string]any{"key": "first", "value": "x"}
		for _, tc := range []struct {
			name   string
			bad    any
			status int
			code   int
		}{
			{"empty key", map[string]any{"key": "", "value": "x"}, http.StatusBadRequest, store.CodeBadRequest},
			{"no key", map[string]any{"value": "x"}, http.StatusBadRequest, store.CodeBadRequest},
			{"no value", map[string]any{"key": "k"}, http.StatusBadRequest, store.CodeBadRequest},
			{"dot key", map[string]any{"key": "..", "value": "x"}, http.StatusBadRequest, store.CodeBadRequest},
			{"long key", map[string]any{"key": strings.Repeat("k", 513), "value": "x"}, http.StatusBadRequest, store.CodeBadRequest},
			{"bad base64", map[string]any{"key": "k", "value": "%%%", "base64": true}, http.StatusBadRequest, store.CodeBadRequest},
			{"short ttl", map[string]any{"key": "k", "value": "x", "expiration_ttl": 10}, http.StatusBadRequest, store.CodeKVBadExpiration},
			{"past expiration", map[string]any{"key": "k", "value": "x", "expiration": 1}, http.StatusBadRequest, store.CodeKVBadExpiration},
			{"big metadata", map[string]any{"key": "k", "value": "x", "metadata": strings.Repeat("m", 2000)}, http.StatusRequestEntityTooLarge, store.CodeTooLarge},
			{"not an object", "k", http.StatusBadRequest, store.CodeBadRequest},
		} {
			t.Run(tc.name, func(t *testing.T) {
				env.fail(env.call(http.MethodPut, "/"+ns+"/bulk", []any{good, tc.bad, good}), tc.status, tc.code)
				env.missing(ns, "first")
			})
		}
		env.fail(env.call(http.MethodPut, "/"+ns+"/bulk", []byte(`[{"key":"first","value":"x"}`)), http.StatusBadRequest, store.CodeBadRequest)
		env.missing(ns, "first")
		many := make([]map[string]string, kvMaxBulkItems+1)
		for i := range many {
			many[i] = map[string]string{"key": "k" + strconv.Itoa(i), "value": "v"}
		}
		env.fail(env.call(http.MethodPut, "/"+ns+"/bulk", many), http.StatusBadRequest, store.CodeBadRequest)
		env.missing(ns, "k0")
	})

	t.Run("delete", func(t *testing.T) {
		env.fail(env.call(http.MethodPost, "/"+ns+"/bulk/delete", []string{"text", ""}), http.StatusBadRequest, store.CodeBadRequest)
		env.fail(env.call(http.MethodPost, "/"+ns+"/bulk/delete", []byte(`{"keys":["text"]}`)), http.StatusBadRequest, store.CodeBadRequest)
		if got := env.get(ns, "text"); string(got) != "hello" {
			t.Errorf("text after rejected delete = %q", got)
		}
		r := env.must(http.MethodPost, "/"+ns+"/bulk/delete", []string{"text", "bin", "never-existed"})
		unmarshal(t, r.Result, &res)
		if res.SuccessfulKeyCount != 3 || len(res.UnsuccessfulKeys) != 0 {
			t.Errorf("bulk delete = %s", r.Result)
		}
		r = env.must(http.MethodDelete, "/"+ns+"/bulk", []string{"dir/k"}) // legacy form
		unmarshal(t, r.Result, &res)
		if res.SuccessfulKeyCount != 1 {
			t.Errorf("legacy bulk delete = %s", r.Result)
		}
		keys, _ := env.listAll(ns, "")
		if got := kvNames(keys); !slices.Equal(got, []string{"meta"}) {
			t.Errorf("list after deletes = %q", got)
		}
	})
}

func TestKVAuth(t *testing.T) {
	env := newKVEnv(t)
	for _, tc := range []struct {
		name, auth, path string
		status, code     int
	}{
		{"no token", "", env.base(), http.StatusBadRequest, store.CodeAuthentication},
		{"wrong token", "Bearer nope", env.base(), http.StatusBadRequest, store.CodeAuthentication},
		{"no token on a value", "", env.base() + "/" + strings.Repeat("0", 32) + "/values/k", http.StatusBadRequest, store.CodeAuthentication},
		{"unknown account", "Bearer " + kvTestToken, BasePath + "/accounts/" + strings.Repeat("e", 32) + "/storage/kv/namespaces", http.StatusNotFound, 7003},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			env.e.ServeHTTP(rec, req)
			env.fail(decodeReply(t, rec), tc.status, tc.code)
		})
	}
}

// hex32 is the form of account and namespace IDs.
var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)
