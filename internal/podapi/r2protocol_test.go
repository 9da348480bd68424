package podapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/store/storetest"
	"github.com/octohq/octo/internal/workerd"
)

// TestR2ProtocolWire checks the bytes of the protocol as workerd reads
// them: size-prefixed metadata, cf-r2-error and the statuses workerd
// interprets.
func TestR2ProtocolWire(t *testing.T) {
	acct := storetest.Account(t).ID
	r2 := store.NewR2(testBlobs, nil)
	if _, err := r2.CreateBucket(context.Background(), acct, "wire", ""); err != nil {
		t.Fatal(err)
	}
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Key: key, R2: r2})
	s.source = func(netip.Addr) bool { return true }
	h := s.Handler()
	do := func(method, meta string, value string, auth bool) *httptest.ResponseRecorder {
		t.Helper()
		var req *http.Request
		if method == http.MethodGet {
			req = httptest.NewRequest(method, "http://fake-host/", nil)
			req.Header.Set(r2RequestHeader, meta)
		} else {
			req = httptest.NewRequest(method, "http://fake-host/", strings.NewReader(meta+value))
			req.Header.Set(r2MetadataSizeHeader, strconv.Itoa(len(meta)))
		}
		req.Header.Set(workerd.R2Header, acct+"/wire")
		if auth {
			req.Header.Set(workerd.AuthHeader, key.Credential(acct))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	r2Error := func(rec *httptest.ResponseRecorder) (code int) {
		var e struct {
			V4Code int `json:"v4code"`
		}
		_ = json.Unmarshal([]byte(rec.Header().Get(r2ErrorHeader)), &e)
		return e.V4Code
	}
	// splitMeta returns the metadata JSON and the body after it.
	splitMeta := func(rec *httptest.ResponseRecorder) (map[string]any, string) {
		t.Helper()
		n, err := strconv.Atoi(rec.Header().Get(r2MetadataSizeHeader))
		b := rec.Body.Bytes()
		if err != nil || n > len(b) {
			t.Fatalf("bad %s %q for a body of %d bytes", r2MetadataSizeHeader, rec.Header().Get(r2MetadataSizeHeader), len(b))
		}
		var m map[string]any
		if err := json.Unmarshal(b[:n], &m); err != nil {
			t.Fatalf("metadata %q: %v", b[:n], err)
		}
		return m, string(b[n:])
	}

	if rec := do(http.MethodGet, `{"version":1,"method":"head","object":"k"}`, "", false); rec.Code != http.StatusForbidden {
		t.Errorf("without credential = %d", rec.Code)
	}
	rec := do(http.MethodPut, `{"version":1,"method":"put","object":"k","customFields":[{"k":"a","v":"b"}],"httpFields":{"contentType":"text/x","cacheExpiry":"1900000000000"}}`, "0123456789", true)
	if rec.Code != http.StatusOK {
		t.Fatalf("put = %d %s %s", rec.Code, rec.Header(), rec.Body)
	}
	var put map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &put); err != nil || put["name"] != "k" || put["size"] != 10.0 {
		t.Errorf("put answer = %s", rec.Body)
	}
	rec = do(http.MethodGet, `{"version":1,"method":"get","object":"k","range":{"offset":"2","length":"3"}}`, "", true)
	meta, body := splitMeta(rec)
	if rec.Code != http.StatusOK || body != "234" || rec.Header().Get("Content-Length") != strconv.Itoa(rec.Body.Len()) {
		t.Errorf("get = %d %q %v", rec.Code, body, meta)
	}
	if hf, _ := meta["httpFields"].(map[string]any); hf["contentType"] != "text/x" || hf["cacheExpiry"] != 1900000000000.0 {
		t.Errorf("httpFields = %v", meta["httpFields"])
	}
	if cf, _ := meta["customFields"].([]any); len(cf) != 1 {
		t.Errorf("customFields = %v", meta["customFields"])
	}
	// A failed condition: 412, 10031, and the metadata without the body.
	rec = do(http.MethodGet, `{"version":1,"method":"get","object":"k","onlyIf":{"etagMatches":[{"value":"x","type":"strong"}]}}`, "", true)
	meta, body = splitMeta(rec)
	if rec.Code != http.StatusPreconditionFailed || r2Error(rec) != store.CodeR2Precondition || body != "" || meta["etag"] != put["etag"] {
		t.Errorf("precondition = %d %d %q %v", rec.Code, r2Error(rec), body, meta)
	}
	rec = do(http.MethodPut, `{"version":1,"method":"put","object":"k","onlyIf":{"etagDoesNotMatch":[{"type":"wildcard"}]}}`, "x", true)
	if rec.Code != http.StatusPreconditionFailed || r2Error(rec) != store.CodeR2Precondition {
		t.Errorf("conditional put = %d %d", rec.Code, r2Error(rec))
	}
	// A missing key: 404 and 10007, which workerd turns into null.
	for _, m := range []string{"head", "get"} {
		rec = do(http.MethodGet, `{"version":1,"method":"`+m+`","object":"missing"}`, "", true)
		if rec.Code != http.StatusNotFound || r2Error(rec) != store.CodeR2NoSuchKey {
			t.Errorf("%s missing = %d %d", m, rec.Code, r2Error(rec))
		}
	}
	rec = do(http.MethodGet, `{"version":1,"method":"list","limit":1,"include":[1],"newRuntime":true}`, "", true)
	meta, _ = splitMeta(rec)
	objs, _ := meta["objects"].([]any)
	if rec.Code != http.StatusOK || len(objs) != 1 || meta["truncated"] != false || objs[0].(map[string]any)["httpFields"] != nil ||
		objs[0].(map[string]any)["customFields"] == nil {
		t.Errorf("list = %d %v", rec.Code, meta)
	}
	rec = do(http.MethodGet, `{"version":1,"method":"list","limit":"0"}`, "", true)
	if rec.Code != http.StatusBadRequest || r2Error(rec) != store.CodeR2InvalidMaxKeys {
		t.Errorf("list limit 0 = %d %d", rec.Code, r2Error(rec))
	}
	for _, bad := range []string{``, `{`, `{"version":1,"method":"frobnicate"}`} {
		rec = do(http.MethodGet, bad, "", true)
		if rec.Code != http.StatusBadRequest || r2Error(rec) != store.CodeR2InvalidArgument {
			t.Errorf("request %q = %d %d", bad, rec.Code, r2Error(rec))
		}
	}
	rec = do(http.MethodPut, `{"version":1,"method":"delete","objects":["k","missing"]}`, "", true)
	if rec.Code != http.StatusOK {
		t.Errorf("delete = %d %s", rec.Code, rec.Body)
	}
	req := httptest.NewRequest(http.MethodGet, "http://fake-host/", nil)
	req.Header.Set(r2RequestHeader, `{"version":1,"method":"head","object":"k"}`)
	req.Header.Set(workerd.R2Header, acct+"/no-such-bucket")
	req.Header.Set(workerd.AuthHeader, key.Credential(acct))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound || r2Error(rec) != store.CodeR2NoSuchBucket {
		t.Errorf("missing bucket = %d %d", rec.Code, r2Error(rec))
	}
	// Another account's credential does not open this account's bucket.
	other := storetest.Account(t).ID
	req = httptest.NewRequest(http.MethodPut, "http://fake-host/", bytes.NewReader(nil))
	req.Header.Set(workerd.R2Header, acct+"/wire")
	req.Header.Set(workerd.AuthHeader, key.Credential(other))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("other account's credential = %d", rec.Code)
	}
}
