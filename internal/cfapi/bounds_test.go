package cfapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/store/storetest"
	"github.com/octohq/octo/internal/tail"
)

// TestAnnotationBounds: a message over 100 characters or a tag over 25 is
// refused, with nothing stored, on uploads and on deployments.
func TestAnnotationBounds(t *testing.T) {
	env := newScriptsEnv(t)
	const script = "bounds"
	env.deployHello(script)
	v1 := env.latest(script)
	withAnnotations := func(a map[string]string) map[string]any {
		m := esmMeta()
		m["annotations"] = a
		return m
	}
	long, tag := strings.Repeat("m", store.MaxMessageLength+1), strings.Repeat("t", store.MaxTagLength+1)
	before := env.snapshot()
	for _, c := range []struct {
		method, path string
		ann          map[string]string
		msg          string
	}{
		{http.MethodPost, "/scripts/" + script + "/versions", map[string]string{"workers/message": long}, "workers/message"},
		{http.MethodPost, "/scripts/" + script + "/versions", map[string]string{"workers/tag": tag}, "workers/tag"},
		{http.MethodPut, "/scripts/" + script, map[string]string{"workers/message": long}, "workers/message"},
	} {
		env.fails(env.upload(c.method, c.path, withAnnotations(c.ann), esm("index.js", helloESM)), http.StatusBadRequest, store.CodeBadRequest, c.msg)
	}
	env.fails(env.call(http.MethodPost, "/scripts/"+script+"/deployments", map[string]any{
		"strategy":    "percentage",
		"versions":    []map[string]any{{"version_id": v1.Spec.VersionID, "percentage": 100}},
		"annotations": map[string]string{"workers/message": long},
	}), http.StatusBadRequest, store.CodeBadRequest, "workers/message")
	env.unchanged(before)

	// At the limits (in characters, not bytes) both are kept.
	ok := map[string]string{"workers/message": strings.Repeat("é", store.MaxMessageLength), "workers/tag": strings.Repeat("t", store.MaxTagLength)}
	env.must(env.upload(http.MethodPost, "/scripts/"+script+"/versions", withAnnotations(ok), esm("index.js", helloESM)))
	if got := env.latest(script).Spec.Annotations[apiv1.AnnotationMessage]; got != ok["workers/message"] {
		t.Errorf("stored message %q", got)
	}
}

// TestUploadPartBounds: the 1001st module is refused as soon as it comes,
// and so is a metadata part over 1 MiB.
func TestUploadPartBounds(t *testing.T) {
	env := newScriptsEnv(t)
	parts := []scPart{esm("index.js", helloESM)}
	for i := range store.MaxModules {
		parts = append(parts, scPart{name: fmt.Sprintf("m%d.txt", i), ct: "text/plain", data: "x"})
	}
	body, ct := wranglerForm(esmMeta(), parts...)
	// Cut the body short after the headers of the 1001st module: the
	// refusal must not wait for the rest.
	i := bytes.Index(body, []byte(`filename="m999.txt"`))
	body = body[:i+bytes.Index(body[i:], []byte("\r\n\r\n"))+4]
	env.fails(env.send(scReq{method: http.MethodPut, path: "/scripts/many", body: body, contentType: ct}),
		http.StatusBadRequest, store.CodeScriptValidation, "too many modules")

	meta := esmMeta()
	meta["padding"] = strings.Repeat(" ", store.MaxMetadataSize)
	env.fails(env.upload(http.MethodPut, "/scripts/bigmeta", meta, esm("index.js", helloESM)),
		http.StatusRequestEntityTooLarge, store.CodeTooLarge, "metadata")
	if env.release("many") != nil || env.release("bigmeta") != nil {
		t.Error("a refused upload made a release")
	}
}

// TestKVBindingNamespaceID: a kv_namespace binding needs an ID of the form
// octo makes (32 lowercase hex digits).
func TestKVBindingNamespaceID(t *testing.T) {
	env := newScriptsEnv(t).withKVNamespace()
	for _, id := range []string{"D5D2B0405F5FF994B5805E2A7E9068CA", "d5d2b0405f5ff994b5805e2a7e9068c", "../../d5d2b0405f5ff994b5805e2a7e", "zzzzb0405f5ff994b5805e2a7e9068ca"} {
		env.fails(env.upload(http.MethodPut, "/scripts/kvid", esmMeta(map[string]any{"name": "KV", "type": "kv_namespace", "namespace_id": id}), esm("index.js", helloESM)),
			http.StatusBadRequest, store.CodeKVBadNamespaceID, "namespace_id")
	}
	env.deployHello("kvid", map[string]any{"name": "KV", "type": "kv_namespace", "namespace_id": "d5d2b0405f5ff994b5805e2a7e9068ca"})
}

// TestTailLimitAPI: the 11th live tail of a script is refused with a 429.
func TestTailLimitAPI(t *testing.T) {
	const acct = "0123456789abcdef0123456789abcdef"
	scheme := runtime.NewScheme()
	if err := apiv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	rel := &apiv1.WorkerRelease{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: store.DefaultNamespace},
		Spec:       apiv1.WorkerReleaseSpec{AccountID: acct, ScriptName: "hello"},
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(rel).Build()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hub := tail.New(ctx, tail.Options{})
	st := store.New(store.Options{Client: c, Accounts: store.StaticAccounts{{ID: acct, Name: "octo", Subdomain: "octo", Namespace: store.DefaultNamespace}}})
	s := New(Options{Identity: store.Identity{Token: kvTestToken, AccountID: acct}, Store: st, Tails: hub})
	e := echo.New()
	e.HTTPErrorHandler = ErrorHandler
	s.Register(e)
	create := func() kvReply {
		req := httptest.NewRequest(http.MethodPost, BasePath+"/accounts/"+acct+"/workers/scripts/hello/tails", strings.NewReader(`{"filters":[]}`))
		req.Header.Set("Authorization", "Bearer "+kvTestToken)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return decodeReply(t, rec)
	}
	for i := range tail.DefaultMaxPerScript {
		if r := create(); !r.Success {
			t.Fatalf("tail %d = %d %+v", i+1, r.Status, r.Errors)
		}
	}
	r := create()
	if r.Status != http.StatusTooManyRequests || r.Success || r.code() != codeTailRefused || !strings.Contains(r.Errors[0].Message, "too many tails") {
		t.Fatalf("11th tail = %d %+v", r.Status, r.Errors)
	}
	if n := len(hub.List(acct, "hello")); n != tail.DefaultMaxPerScript {
		t.Fatalf("%d sessions", n)
	}
}

// TestShortToken: a token shorter than 32 characters verifies (it made
// /user/tokens/verify panic), and the token id reveals nothing of it.
func TestShortToken(t *testing.T) {
	for _, token := range []string{"t", "secret"} {
		s := New(Options{Identity: store.Identity{Token: token, AccountID: "0123456789abcdef0123456789abcdef"}, Store: store.New(store.Options{Accounts: store.StaticAccounts{}})})
		e := echo.New()
		e.HTTPErrorHandler = ErrorHandler
		s.Register(e)
		get := func(auth string) kvReply {
			req := httptest.NewRequest(http.MethodGet, BasePath+"/user/tokens/verify", nil)
			req.Header.Set("Authorization", auth)
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			return decodeReply(t, rec)
		}
		r := get("Bearer " + token)
		var res struct{ ID, Status string }
		unmarshal(t, r.Result, &res)
		if !r.Success || len(res.ID) != 32 || strings.Contains(res.ID, token) || res.Status != "active" {
			t.Errorf("verify with %q = %d %s", token, r.Status, r.Result)
		}
		for _, wrong := range []string{"Bearer " + token + "x", "Bearer " + token[:len(token)-1], "Bearer "} {
			if r := get(wrong); r.Success || r.code() != store.CodeAuthentication {
				t.Errorf("%q accepted: %d %+v", wrong, r.Status, r.Errors)
			}
		}
	}
	// Without a configured token nothing authenticates, not even "Bearer ".
	s := New(Options{Store: store.New(store.Options{Accounts: store.StaticAccounts{}})})
	e := echo.New()
	e.HTTPErrorHandler = ErrorHandler
	s.Register(e)
	req := httptest.NewRequest(http.MethodGet, BasePath+"/user/tokens/verify", nil)
	req.Header.Set("Authorization", "Bearer ")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if r := decodeReply(t, rec); r.Success {
		t.Error("an empty token authenticated")
	}
}

// TestKVStorageLimitAPI: a write over the account's KV storage limit is
// refused with 413 and code 10048, and nothing is stored.
func TestKVStorageLimitAPI(t *testing.T) {
	acct := storetest.Account(t).ID
	st := store.New(store.Options{Blobs: testBlobs, Accounts: store.StaticAccounts{{ID: acct, Name: "kv quota"}},
		KVLimits: store.KVLimits{StorageBytes: 4096}})
	s := New(Options{Identity: store.Identity{Token: kvTestToken, AccountID: acct}, Store: st})
	env := &kvEnv{t: t, account: acct, e: echo.New()}
	env.clock.Store(time.Now().UnixNano())
	env.e.HTTPErrorHandler = ErrorHandler
	s.Register(env.e)
	var ns kvNamespaceJSON
	unmarshal(t, env.must(http.MethodPost, "", map[string]string{"title": "quota"}).Result, &ns)
	if r := decodeReply(t, env.raw(http.MethodPut, "/"+ns.ID+"/values/small", make([]byte, 1000), "application/octet-stream")); !r.Success {
		t.Fatalf("small put = %d %+v", r.Status, r.Errors)
	}
	r := decodeReply(t, env.raw(http.MethodPut, "/"+ns.ID+"/values/big", make([]byte, 3000), "application/octet-stream"))
	env.fail(r, http.StatusRequestEntityTooLarge, store.CodeKVStorageLimit)
	env.fail(decodeReply(t, env.raw(http.MethodGet, "/"+ns.ID+"/values/big", nil, "")), http.StatusNotFound, store.CodeKVKeyNotFound)
	r = env.call(http.MethodPut, "/"+ns.ID+"/bulk", []map[string]any{{"key": "b1", "value": strings.Repeat("v", 1500)}, {"key": "b2", "value": strings.Repeat("v", 1500)}})
	env.fail(r, http.StatusRequestEntityTooLarge, store.CodeKVStorageLimit)

	// A malformed namespace ID is refused before the body is read.
	env.fail(env.call(http.MethodPut, "/NOT-A-NAMESPACE/bulk", []byte("not even JSON")), http.StatusNotFound, store.CodeKVNotFound)
}
