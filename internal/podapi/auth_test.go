package podapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/store/storetest"
	"github.com/octohq/octo/internal/tail"
	"github.com/octohq/octo/internal/workerd"
)

// podAddr is the client address of a pod's requests in these tests.
const podAddr = "10.42.0.7:40000"

func TestKeyCredential(t *testing.T) {
	k1, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := GenerateKey()
	a, b := "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	ca := k1.Credential(a)
	if len(ca) != 64 || ca != k1.Credential(a) {
		t.Fatalf("credential %q is not 64 stable hex digits", ca)
	}
	if ca == k1.Credential(b) || ca == k2.Credential(a) {
		t.Fatal("credentials must differ by account and by key")
	}
	if !k1.Verify(a, ca) || !k1.Verify(a, strings.ToUpper(ca)) {
		t.Fatal("the account's credential does not verify")
	}
	for name, cred := range map[string]string{
		"none": "", "garbage": "not hex", "other account": k1.Credential(b), "other key": k2.Credential(a), "truncated": ca[:62],
	} {
		if k1.Verify(a, cred) {
			t.Errorf("%s verifies", name)
		}
	}
	if k1.Verify("", k1.Credential("")) {
		t.Error("an empty account verifies")
	}
	var nilKey *Key
	if nilKey.Verify(a, ca) {
		t.Error("a nil key verifies")
	}
	if _, err := NewKey(make([]byte, 16)); err == nil {
		t.Error("a 16-byte key was accepted")
	}
}

func TestEnsureKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "pod-api.key")
	k, err := EnsureKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != KeySize {
		t.Fatalf("key file mode %v size %d, want 0600 and %d bytes", fi.Mode().Perm(), fi.Size(), KeySize)
	}
	again, err := EnsureKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if again.Credential("a") != k.Credential("a") {
		t.Fatal("the key changed on reload")
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureKey(path); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a corrupt key file: %v", err)
	}
}

func TestPodSource(t *testing.T) {
	for addr, want := range map[string]bool{
		"10.42.0.7": true, "10.42.3.4": true, "::ffff:10.42.0.7": true,
		"10.42.0.1": false, "127.0.0.1": false, "::1": false, "10.43.0.1": false, "192.168.1.10": false, "::ffff:127.0.0.1": false,
	} {
		if got := podSource(netip.MustParseAddr(addr)); got != want {
			t.Errorf("podSource(%s) = %v, want %v", addr, got, want)
		}
	}
}

// A cluster's pod networks admit their addresses, never loopback.
func TestSourceIn(t *testing.T) {
	in := sourceIn([]netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00::/8")})
	for addr, want := range map[string]bool{
		"10.244.1.7": true, "::ffff:10.244.0.9": true, "fd00::5": true,
		"10.42.0.7": false, "127.0.0.1": false, "::1": false,
	} {
		if got := in(netip.MustParseAddr(addr)); got != want {
			t.Errorf("sourceIn(%s) = %v, want %v", addr, got, want)
		}
	}
	if sourceIn([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")})(netip.MustParseAddr("127.0.0.1")) {
		t.Error("0.0.0.0/0 admits loopback")
	}
}

// authEnv is a pod API server over a real KV store and tail hub, with two
// accounts: a (the victim, holding a secret value) and b (the attacker).
type authEnv struct {
	t          *testing.T
	s          *Server
	key        *Key
	kv         *store.KV
	hub        *tail.Hub
	a, b       string
	nsA, nsB   string
	serviceOfA string
}

func newAuthEnv(t *testing.T) *authEnv {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	e := &authEnv{t: t, key: key, kv: store.NewKV(testBlobs, time.Now),
		a: storetest.Account(t).ID, b: storetest.Account(t).ID, serviceOfA: "hello-0a1b2c3d"}
	e.hub = tail.New(ctx, tail.Options{Resolve: func(service string) (string, string, string, bool) {
		if service == e.serviceOfA {
			return e.a, "hello", "0a1b2c3d-0000-4000-8000-000000000000", true
		}
		return "", "", "", false
	}})
	for _, p := range []struct{ acct, ns *string }{{&e.a, &e.nsA}, {&e.b, &e.nsB}} {
		ns, err := e.kv.CreateNamespace(ctx, *p.acct, "auth")
		if err != nil {
			t.Fatal(err)
		}
		*p.ns = ns.ID
	}
	if err := e.kv.Put(ctx, e.a, e.nsA, "secret", store.KVEntry{Value: []byte("s3cret")}); err != nil {
		t.Fatal(err)
	}
	e.s = New(Options{Key: key, KV: e.kv, Tail: e.hub})
	return e
}

// do sends a request from remote through the server's handler.
func (e *authEnv) do(remote, method, target string, body io.Reader, hdr map[string]string) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequest(method, "http://fake-host"+target, body)
	req.RemoteAddr = remote
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.s.Handler().ServeHTTP(rec, req)
	return rec
}

// value is the victim's secret as the store holds it ("" when gone).
func (e *authEnv) value(key string) string {
	e.t.Helper()
	ent, err := e.kv.Get(context.Background(), e.a, e.nsA, key)
	if store.AsError(err) != nil && store.AsError(err).Kind == store.NotFound {
		return ""
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return string(ent.Value)
}

// attacks are the ways to call as account a without its credential.
func (e *authEnv) attacks() map[string]struct {
	remote string
	cred   string
} {
	other, _ := GenerateKey()
	return map[string]struct {
		remote string
		cred   string
	}{
		"no credential":            {podAddr, ""},
		"garbage credential":       {podAddr, "0000"},
		"another account's":        {podAddr, e.key.Credential(e.b)},
		"another key's":            {podAddr, other.Credential(e.a)},
		"right one from the host":  {"10.42.0.1:40000", e.key.Credential(e.a)},
		"right one from loopback":  {"127.0.0.1:40000", e.key.Credential(e.a)},
		"right one from elsewhere": {"192.168.1.10:40000", e.key.Credential(e.a)},
	}
}

// TestKVRefusesOtherAccounts: a pod (or a local user) that names another
// account's namespace in x-octo-kv, without that account's credential, can
// neither read nor change it.
func TestKVRefusesOtherAccounts(t *testing.T) {
	e := newAuthEnv(t)
	victim := e.a + "/" + e.nsA
	for name, at := range e.attacks() {
		hdr := map[string]string{workerd.KVHeader: victim}
		if at.cred != "" {
			hdr[workerd.AuthHeader] = at.cred
		}
		for _, rq := range []struct{ method, target, body string }{
			{http.MethodGet, "/secret?urlencoded=true", ""},
			{http.MethodHead, "/secret?urlencoded=true", ""},
			{http.MethodGet, "/?prefix=", ""},
			{http.MethodPost, "/bulk/get", `{"keys":["secret"]}`},
			{http.MethodPut, "/secret?urlencoded=true", "overwritten"},
			{http.MethodPut, "/planted?urlencoded=true", "evil"},
			{http.MethodDelete, "/secret?urlencoded=true", ""},
		} {
			rec := e.do(at.remote, rq.method, rq.target, strings.NewReader(rq.body), hdr)
			if rec.Code != http.StatusForbidden {
				t.Errorf("%s: %s %s: status %d, want 403", name, rq.method, rq.target, rec.Code)
			}
			if strings.Contains(rec.Body.String(), "s3cret") {
				t.Errorf("%s: %s %s leaked the value", name, rq.method, rq.target)
			}
		}
	}
	if got := e.value("secret"); got != "s3cret" {
		t.Fatalf("the victim's value is %q", got)
	}
	if got := e.value("planted"); got != "" {
		t.Fatalf("a key was planted: %q", got)
	}

	// The owner's pod, with its credential, reads and writes.
	own := map[string]string{workerd.KVHeader: victim, workerd.AuthHeader: e.key.Credential(e.a)}
	if rec := e.do(podAddr, http.MethodGet, "/secret?urlencoded=true", nil, own); rec.Code != http.StatusOK || rec.Body.String() != "s3cret" {
		t.Fatalf("owner get: %d %q", rec.Code, rec.Body)
	}
	if rec := e.do(podAddr, http.MethodPut, "/k?urlencoded=true", strings.NewReader("v"), own); rec.Code != http.StatusOK {
		t.Fatalf("owner put: %d %s", rec.Code, rec.Body)
	}
	// b's credential with b's account cannot reach a's namespace either:
	// the namespace is looked up in b.
	mine := map[string]string{workerd.KVHeader: e.b + "/" + e.nsA, workerd.AuthHeader: e.key.Credential(e.b)}
	if rec := e.do(podAddr, http.MethodGet, "/secret?urlencoded=true", nil, mine); rec.Code != http.StatusNotFound {
		t.Fatalf("b naming a's namespace in b: %d", rec.Code)
	}
}

// TestTailRefusesOtherAccounts: trace items can be injected neither into
// another account's tails nor without a credential.
func TestTailRefusesOtherAccounts(t *testing.T) {
	e := newAuthEnv(t)
	events, cancel := e.hub.Subscribe(e.a, "hello")
	defer cancel()
	items, _ := json.Marshal([]map[string]any{{"outcome": "ok", "logs": []any{map[string]any{"message": []any{"forged"}, "level": "log"}}}})
	post := func(remote, account, cred string) int {
		t.Helper()
		hdr := map[string]string{workerd.AccountHeader: account, workerd.TailHeader: e.serviceOfA}
		if cred != "" {
			hdr[workerd.AuthHeader] = cred
		}
		return e.do(remote, http.MethodPost, tail.Path+e.serviceOfA, bytes.NewReader(items), hdr).Code
	}
	for name, at := range e.attacks() {
		if code := post(at.remote, e.a, at.cred); code != http.StatusForbidden {
			t.Errorf("as a, %s: status %d, want 403", name, code)
		}
	}
	// b, authenticated as itself, posts for a's service.
	if code := post(podAddr, e.b, e.key.Credential(e.b)); code != http.StatusForbidden {
		t.Errorf("b for a's service: status %d, want 403", code)
	}
	select {
	case ev := <-events:
		t.Fatalf("a forged event was delivered: %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
	// a's own pod delivers.
	if code := post(podAddr, e.a, e.key.Credential(e.a)); code != http.StatusNoContent {
		t.Fatalf("owner: status %d", code)
	}
	select {
	case ev := <-events:
		if ev.Account != e.a || ev.ScriptName != "hello" {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the owner's event was not delivered")
	}
}

// countingReader yields n bytes and counts what was read.
type countingReader struct{ n, read int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	if c.read >= c.n {
		return 0, io.EOF
	}
	k := min(int64(len(p)), c.n-c.read)
	for i := range p[:k] {
		p[i] = 'x'
	}
	c.read += k
	return int(k), nil
}

// TestBodyLimits: oversized bodies are refused with 413 without being read
// (declared length) or read only up to the limit (chunked).
func TestBodyLimits(t *testing.T) {
	e := newAuthEnv(t)
	own := map[string]string{workerd.KVHeader: e.a + "/" + e.nsA, workerd.AuthHeader: e.key.Credential(e.a)}
	_, cancel := e.hub.Subscribe(e.a, "hello") // so that the collector reads
	defer cancel()
	tailHdr := map[string]string{workerd.AccountHeader: e.a, workerd.AuthHeader: e.key.Credential(e.a)}
	for _, c := range []struct {
		name, method, target string
		hdr                  map[string]string
		limit                int64
	}{
		{"KV put", http.MethodPut, "/big?urlencoded=true", own, store.KVMaxValueBytes},
		{"KV bulk get", http.MethodPost, "/bulk/get", own, maxBulkGetBody},
		{"tail", http.MethodPost, tail.Path + e.serviceOfA, tailHdr, 4 << 20},
	} {
		for _, declared := range []bool{true, false} {
			body := &countingReader{n: c.limit + 1<<20}
			req := httptest.NewRequest(c.method, "http://fake-host"+c.target, body)
			req.RemoteAddr = podAddr
			for k, v := range c.hdr {
				req.Header.Set(k, v)
			}
			req.ContentLength = -1
			if declared {
				req.ContentLength = body.n
			}
			rec := httptest.NewRecorder()
			e.s.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusRequestEntityTooLarge {
				t.Errorf("%s (declared %v): status %d, want 413: %.200s", c.name, declared, rec.Code, rec.Body)
			}
			if declared && body.read != 0 {
				t.Errorf("%s: read %d bytes of a body declared too large", c.name, body.read)
			}
			if body.read > c.limit+64<<10 {
				t.Errorf("%s (declared %v): read %d bytes past the limit %d", c.name, declared, body.read, c.limit)
			}
		}
	}
	if got := e.value("big"); got != "" {
		t.Fatalf("an oversized value was stored (%d bytes)", len(got))
	}
	// Unauthenticated, nothing is read at all.
	body := &countingReader{n: 1 << 20}
	req := httptest.NewRequest(http.MethodPut, "http://fake-host/big?urlencoded=true", body)
	req.RemoteAddr = podAddr
	req.Header.Set(workerd.KVHeader, e.a+"/"+e.nsA)
	rec := httptest.NewRecorder()
	e.s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || body.read != 0 {
		t.Fatalf("unauthenticated: status %d, read %d bytes", rec.Code, body.read)
	}
}

// TestServerTimeouts: slow clients are cut off.
func TestServerTimeouts(t *testing.T) {
	srv := New(Options{}).httpServer()
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
		t.Fatalf("timeouts: header %v read %v write %v idle %v, max header bytes %d",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
	if srv.ReadHeaderTimeout > ReadTimeout || ReadTimeout > time.Minute {
		t.Fatalf("read timeouts too long: %v, %v", srv.ReadHeaderTimeout, srv.ReadTimeout)
	}
}

// TestR2AndD1RefuseOtherAccounts: a pod that names another account's R2
// bucket or D1 database, without that account's credential, is refused
// before anything is read; with its own credential it names only its own
// account's buckets and databases, so a's bucket and database are not found
// from b.
func TestR2AndD1RefuseOtherAccounts(t *testing.T) {
	e := newAuthEnv(t)
	ctx := context.Background()
	r2 := store.NewR2(testBlobs, nil)
	if _, err := r2.CreateBucket(ctx, e.a, "private", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Put(ctx, e.a, "private", "secret", strings.NewReader("s3cret"), 6, store.R2PutOptions{}); err != nil {
		t.Fatal(err)
	}
	d1 := store.NewD1(t.TempDir(), nil)
	t.Cleanup(func() { _ = d1.Close() })
	db, err := d1.Create(ctx, e.a, "private")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d1.Query(ctx, e.a, db.UUID, []store.D1Statement{{SQL: "CREATE TABLE s (v TEXT)"}, {SQL: "INSERT INTO s VALUES ('s3cret')"}}); err != nil {
		t.Fatal(err)
	}
	e.s = New(Options{Key: e.key, KV: e.kv, Tail: e.hub, R2: r2, D1: d1})

	r2Get := func(hdr map[string]string) *httptest.ResponseRecorder {
		hdr["cf-r2-request"] = `{"version":1,"method":"get","object":"secret"}`
		return e.do(podAddr, http.MethodGet, "/", nil, hdr)
	}
	d1Query := func(remote string, hdr map[string]string) *httptest.ResponseRecorder {
		return e.do(remote, http.MethodPost, "/query?resultsFormat=ARRAY_OF_OBJECTS", strings.NewReader(`{"sql":"SELECT v FROM s","params":[]}`), hdr)
	}
	for name, at := range e.attacks() {
		for kind, hdr := range map[string]map[string]string{
			"r2": {workerd.R2Header: e.a + "/private"},
			"d1": {workerd.D1Header: e.a + "/" + db.UUID},
		} {
			if at.cred != "" {
				hdr[workerd.AuthHeader] = at.cred
			}
			var rec *httptest.ResponseRecorder
			if kind == "r2" {
				hdr["cf-r2-request"] = `{"version":1,"method":"get","object":"secret"}`
				rec = e.do(at.remote, http.MethodGet, "/", nil, hdr)
			} else {
				rec = d1Query(at.remote, hdr)
			}
			if rec.Code != http.StatusForbidden || strings.Contains(rec.Body.String(), "s3cret") {
				t.Errorf("%s, %s: status %d body %q, want 403", name, kind, rec.Code, rec.Body)
			}
		}
	}
	// b, as itself, naming a's bucket and database: not found in b.
	if rec := r2Get(map[string]string{workerd.R2Header: e.b + "/private", workerd.AuthHeader: e.key.Credential(e.b)}); rec.Code != http.StatusNotFound || strings.Contains(rec.Body.String(), "s3cret") {
		t.Errorf("b naming a's bucket: %d %q", rec.Code, rec.Body)
	}
	if rec := d1Query(podAddr, map[string]string{workerd.D1Header: e.b + "/" + db.UUID, workerd.AuthHeader: e.key.Credential(e.b)}); rec.Code == http.StatusOK || strings.Contains(rec.Body.String(), "s3cret") {
		t.Errorf("b naming a's database: %d %q", rec.Code, rec.Body)
	}
	// The owner reads both.
	if rec := r2Get(map[string]string{workerd.R2Header: e.a + "/private", workerd.AuthHeader: e.key.Credential(e.a)}); rec.Code != http.StatusOK || !strings.HasSuffix(rec.Body.String(), "s3cret") {
		t.Errorf("owner r2 get: %d %q", rec.Code, rec.Body)
	}
	if rec := d1Query(podAddr, map[string]string{workerd.D1Header: e.a + "/" + db.UUID, workerd.AuthHeader: e.key.Credential(e.a)}); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "s3cret") {
		t.Errorf("owner d1 query: %d %q", rec.Code, rec.Body)
	}
}

// TestCodeRefusesOtherAccounts: a version's code (with its secrets) goes to
// the loader host of its own account's pods only.
func TestCodeRefusesOtherAccounts(t *testing.T) {
	e := newAuthEnv(t)
	const id = "11111111-0000-4000-8000-000000000001"
	e.s = New(Options{Key: e.key, Code: func(_ context.Context, account, script, version string) (workerd.LoaderCode, error) {
		if account != e.a || script != "hello" || version != id {
			return workerd.LoaderCode{}, store.Errorf(store.NotFound, 0, "version %s of script %q not found", version, script)
		}
		secret := "s3cret"
		return workerd.LoaderCode{MainModule: "index.js", Env: []workerd.LoaderBinding{{Name: "TOKEN", Text: &secret}}}, nil
	}})
	target := workerd.LoaderCodePath + "hello/" + id
	for name, at := range e.attacks() {
		hdr := map[string]string{workerd.AccountHeader: e.a}
		if at.cred != "" {
			hdr[workerd.AuthHeader] = at.cred
		}
		rec := e.do(at.remote, http.MethodGet, target, nil, hdr)
		if rec.Code != http.StatusForbidden || strings.Contains(rec.Body.String(), "s3cret") {
			t.Errorf("%s: status %d %q, want 403", name, rec.Code, rec.Body)
		}
	}
	// b, as itself, names a's version: looked up in b, not found.
	rec := e.do(podAddr, http.MethodGet, target, nil, map[string]string{workerd.AccountHeader: e.b, workerd.AuthHeader: e.key.Credential(e.b)})
	if rec.Code != http.StatusNotFound || strings.Contains(rec.Body.String(), "s3cret") {
		t.Errorf("b naming a's version: %d %q, want 404", rec.Code, rec.Body)
	}
	own := map[string]string{workerd.AccountHeader: e.a, workerd.AuthHeader: e.key.Credential(e.a)}
	if rec := e.do(podAddr, http.MethodGet, target, nil, own); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"text":"s3cret"`) {
		t.Fatalf("owner: %d %q", rec.Code, rec.Body)
	}
	for _, bad := range []string{workerd.LoaderCodePath + "hello", workerd.LoaderCodePath + "hello/" + id + "/x", workerd.LoaderCodePath + "/" + id} {
		if rec := e.do(podAddr, http.MethodGet, bad, nil, own); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", bad, rec.Code)
		}
	}
}
