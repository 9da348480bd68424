package podapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/store/storetest"
	"github.com/octohq/octo/internal/workerd"
)

// testBlobs is the bucket of a real S3 store, started once by TestMain.
var testBlobs *store.BlobStore

func TestMain(m *testing.M) {
	os.Exit(storetest.RunWithS3(m, func(b *store.BlobStore) { testBlobs = b }))
}

// kvProtoEnv drives the KV protocol handler the way workerd does, on a KV
// store of its own account with a settable clock.
type kvProtoEnv struct {
	t       *testing.T
	kv      *store.KV
	h       http.Handler
	account string
	ns      string
	clock   atomic.Int64 // unix nanoseconds
}

func newKVProtoEnv(t *testing.T) *kvProtoEnv {
	p := &kvProtoEnv{t: t, account: storetest.Account(t).ID}
	p.clock.Store(time.Now().UnixNano())
	p.kv = store.NewKV(testBlobs, p.now)
	p.h = KVProtocol(p.kv, nil)
	ns, err := p.kv.CreateNamespace(context.Background(), p.account, "proto")
	if err != nil {
		t.Fatal(err)
	}
	p.ns = ns.ID
	return p
}

func (p *kvProtoEnv) now() time.Time { return time.Unix(0, p.clock.Load()) }

func (p *kvProtoEnv) advance(d time.Duration) { p.clock.Add(int64(d)) }

// get reads a value from the store directly, as the Cloudflare API does.
func (p *kvProtoEnv) get(ns, key string) []byte {
	p.t.Helper()
	e, err := p.kv.Get(context.Background(), p.account, ns, key)
	if err != nil {
		p.t.Fatalf("store get %q: %v", key, err)
	}
	return e.Value
}

// do sends a request as workerd: host fake-host, the cf-kv-flprod-405
// header, and x-octo-kv as the octo config injects it.
func (p *kvProtoEnv) do(method, target string, body []byte, hdr map[string]string) *httptest.ResponseRecorder {
	p.t.Helper()
	req := httptest.NewRequest(method, "http://fake-host"+target, bytes.NewReader(body))
	req.Header.Set("CF-KV-FLPROD-405", "https://fake-host"+target)
	req.Header.Set(workerd.KVHeader, p.account+"/"+p.ns)
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	rec := httptest.NewRecorder()
	p.h.ServeHTTP(rec, req)
	return rec
}

func (p *kvProtoEnv) expect(rec *httptest.ResponseRecorder, status int) {
	p.t.Helper()
	if rec.Code != status {
		p.t.Fatalf("status %d, want %d: %s", rec.Code, status, rec.Body)
	}
}

func TestKVProtocolRoundTrip(t *testing.T) {
	p := newKVProtoEnv(t)
	text := map[string]string{"Content-Type": "text/plain;charset=UTF-8"}

	// put(k, v, {metadata}) and getWithMetadata.
	p.expect(p.do(http.MethodPut, "/k1?urlencoded=true", []byte("v1"),
		map[string]string{"cf-kv-metadata": `{"m":1}`, "Content-Type": "text/plain;charset=UTF-8"}), http.StatusOK)
	rec := p.do(http.MethodGet, "/k1?urlencoded=true", nil, nil)
	p.expect(rec, http.StatusOK)
	if rec.Body.String() != "v1" || rec.Header().Get("CF-KV-Metadata") != `{"m":1}` {
		t.Fatalf("get = %q metadata %q", rec.Body, rec.Header().Get("CF-KV-Metadata"))
	}
	// A key with "/", space and unicode, encoded as encodeURIComponent does.
	key := "dir/a b/ключ?&=%"
	esc := url.PathEscape(key)
	p.expect(p.do(http.MethodPut, "/"+esc+"?urlencoded=true", []byte("nested"), text), http.StatusOK)
	rec = p.do(http.MethodGet, "/"+esc+"?urlencoded=true", nil, nil)
	p.expect(rec, http.StatusOK)
	if rec.Body.String() != "nested" || rec.Header().Get("CF-KV-Metadata") != "" {
		t.Fatalf("get nested = %q %q", rec.Body, rec.Header().Get("CF-KV-Metadata"))
	}
	// It went through the same store as the API.
	if got := p.get(p.ns, key); string(got) != "nested" {
		t.Fatalf("the store holds %q", got)
	}
	// A missing key is 404 (workerd: null).
	p.expect(p.do(http.MethodGet, "/nope?urlencoded=true", nil, nil), http.StatusNotFound)

	// list({prefix}).
	for _, k := range []string{"p1", "p2", "p3", "q"} {
		p.expect(p.do(http.MethodPut, "/"+k+"?urlencoded=true", []byte(k), text), http.StatusOK)
	}
	var l struct {
		Keys []struct {
			Name       string          `json:"name"`
			Expiration int64           `json:"expiration"`
			Metadata   json.RawMessage `json:"metadata"`
		} `json:"keys"`
		ListComplete bool    `json:"list_complete"`
		Cursor       *string `json:"cursor"`
	}
	rec = p.do(http.MethodGet, "/?prefix=p", nil, nil)
	p.expect(rec, http.StatusOK)
	p.decode(rec, &l)
	if len(l.Keys) != 3 || l.Keys[0].Name != "p1" || !l.ListComplete || l.Cursor != nil {
		t.Fatalf("list = %s", rec.Body)
	}
	// Paging with key_count_limit and cursor.
	rec = p.do(http.MethodGet, "/?prefix=p&key_count_limit=2", nil, nil)
	p.decode(rec, &l)
	if len(l.Keys) != 2 || l.ListComplete || l.Cursor == nil || *l.Cursor == "" {
		t.Fatalf("page 1 = %s", rec.Body)
	}
	rec = p.do(http.MethodGet, "/?prefix=p&key_count_limit=2&cursor="+url.QueryEscape(*l.Cursor), nil, nil)
	l.Cursor = nil
	p.decode(rec, &l)
	if len(l.Keys) != 1 || l.Keys[0].Name != "p3" || !l.ListComplete || l.Cursor != nil {
		t.Fatalf("page 2 = %s", rec.Body)
	}
	// Metadata appears in the listing.
	rec = p.do(http.MethodGet, "/?prefix=k1", nil, nil)
	p.decode(rec, &l)
	if len(l.Keys) != 1 || string(l.Keys[0].Metadata) != `{"m":1}` {
		t.Fatalf("list with metadata = %s", rec.Body)
	}

	// Bulk get, in the request's order, with a missing key.
	rec = p.do(http.MethodPost, "/bulk/get", []byte(`{"keys":["p2","nope","k1"],"withMetadata":true}`), nil)
	p.expect(rec, http.StatusOK)
	if want := `{"p2":{"value":"p2","metadata":null},"nope":null,"k1":{"value":"v1","metadata":{"m":1}}}`; rec.Body.String() != want {
		t.Fatalf("bulk get = %s, want %s", rec.Body, want)
	}
	p.expect(p.do(http.MethodPut, "/j?urlencoded=true", []byte(`{"a":[1,2]}`), text), http.StatusOK)
	rec = p.do(http.MethodPost, "/bulk/get", []byte(`{"keys":["j"],"type":"json"}`), nil)
	if rec.Body.String() != `{"j":{"a":[1,2]}}` {
		t.Fatalf("bulk get json = %s", rec.Body)
	}

	// delete(k).
	p.expect(p.do(http.MethodDelete, "/k1?urlencoded=true", nil, nil), http.StatusOK)
	p.expect(p.do(http.MethodGet, "/k1?urlencoded=true", nil, nil), http.StatusNotFound)
	p.expect(p.do(http.MethodDelete, "/k1?urlencoded=true", nil, nil), http.StatusOK)
}

func TestKVProtocolExpiration(t *testing.T) {
	p := newKVProtoEnv(t)
	p.expect(p.do(http.MethodPut, "/t?urlencoded=true&expiration_ttl=3600", []byte("x"), nil), http.StatusOK)
	rec := p.do(http.MethodGet, "/t?urlencoded=true", nil, nil)
	p.expect(rec, http.StatusOK)
	wantExp := p.now().Unix() + 3600
	if rec.Header().Get("CF-Expiration") != strconv.FormatInt(wantExp, 10) {
		t.Fatalf("expiration header %q, want %d", rec.Header().Get("CF-Expiration"), wantExp)
	}
	abs := p.now().Unix() + 120
	p.expect(p.do(http.MethodPut, "/a?urlencoded=true&expiration="+strconv.FormatInt(abs, 10), []byte("y"), nil), http.StatusOK)
	// Too short a TTL is refused like Cloudflare does.
	p.expect(p.do(http.MethodPut, "/s?urlencoded=true&expiration_ttl=30", []byte("z"), nil), http.StatusBadRequest)
	p.expect(p.do(http.MethodPut, "/s?urlencoded=true&expiration_ttl=abc", []byte("z"), nil), http.StatusBadRequest)

	p.advance(121 * time.Second)
	p.expect(p.do(http.MethodGet, "/a?urlencoded=true", nil, nil), http.StatusNotFound)
	p.expect(p.do(http.MethodGet, "/t?urlencoded=true", nil, nil), http.StatusOK)
	p.advance(time.Hour)
	p.expect(p.do(http.MethodGet, "/t?urlencoded=true", nil, nil), http.StatusNotFound)
}

func TestKVProtocolRefusals(t *testing.T) {
	p := newKVProtoEnv(t)
	p.expect(p.do(http.MethodGet, "/k?urlencoded=true", nil, map[string]string{workerd.KVHeader: ""}), http.StatusBadRequest)
	p.expect(p.do(http.MethodGet, "/k?urlencoded=true", nil, map[string]string{workerd.KVHeader: "no-slash"}), http.StatusBadRequest)
	other := "0123456789abcdef0123456789abcdef"
	p.expect(p.do(http.MethodGet, "/k?urlencoded=true", nil, map[string]string{workerd.KVHeader: p.account + "/" + other}), http.StatusNotFound)
	p.expect(p.do(http.MethodPut, "/k?urlencoded=true", []byte("v"), map[string]string{workerd.KVHeader: p.account + "/" + other}), http.StatusNotFound)
	p.expect(p.do(http.MethodGet, "/", nil, map[string]string{workerd.KVHeader: p.account + "/" + other}), http.StatusNotFound)
	// Another account's namespace id is unknown in this account.
	p.expect(p.do(http.MethodGet, "/k?urlencoded=true", nil, map[string]string{workerd.KVHeader: other + "/" + p.ns}), http.StatusNotFound)
	// Key rules and metadata validation.
	p.expect(p.do(http.MethodPut, "/"+url.PathEscape(string(bytes.Repeat([]byte("a"), 513)))+"?urlencoded=true", []byte("v"), nil), http.StatusBadRequest)
	p.expect(p.do(http.MethodPut, "/m?urlencoded=true", []byte("v"), map[string]string{"cf-kv-metadata": "{not json"}), http.StatusBadRequest)
	p.expect(p.do(http.MethodPatch, "/m?urlencoded=true", nil, nil), http.StatusMethodNotAllowed)
	p.expect(p.do(http.MethodPost, "/bulk/get", []byte(`{"keys":["a"],"type":"arrayBuffer"}`), nil), http.StatusBadRequest)
}

// decode parses a JSON answer into v.
func (p *kvProtoEnv) decode(rec *httptest.ResponseRecorder, v any) {
	p.t.Helper()
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		p.t.Fatalf("decode %s: %v", rec.Body, err)
	}
}
