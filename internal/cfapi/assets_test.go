package cfapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"github.com/octohq/octo/internal/store"
)

// assetsUpload is one bucket as wrangler sends it: a part per hash, named
// by it, the content in base64, the file's media type.
func (env *scEnv) assetsUpload(token string, files map[string]string, types map[string]string) scReply {
	env.t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for hash, content := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="`+hash+`"; filename="`+hash+`"`)
		h.Set("Content-Type", types[hash])
		pw, _ := mw.CreatePart(h)
		_, _ = pw.Write([]byte(base64.StdEncoding.EncodeToString([]byte(content))))
	}
	_ = mw.Close()
	return env.send(scReq{method: http.MethodPost, path: strings.TrimPrefix(AssetsUploadPath, "/workers") + "?base64=true", body: b.Bytes(), contentType: mw.FormDataContentType(), token: &token})
}

type sessionReply struct {
	JWT     string     `json:"jwt"`
	Buckets [][]string `json:"buckets"`
}

const (
	hIndex = "0123456789abcdef0123456789abcd01"
	hCSS   = "0123456789abcdef0123456789abcd02"
	hAbout = "0123456789abcdef0123456789abcd03"
)

// TestAssetsUploadFlow is wrangler deploy with [assets]: the session lists
// what is missing, bucket uploads with the session token store it, the
// last answers the completion token, and the script upload (assets only,
// then with code) records the manifest on the version; a second session
// with the same files has nothing to upload.
func TestAssetsUploadFlow(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	manifest := map[string]any{
		"/index.html": map[string]any{"hash": hIndex, "size": 11},
		"/style.css":  map[string]any{"hash": hCSS, "size": 13},
		"/about.html": map[string]any{"hash": hAbout, "size": 5},
	}
	var sess sessionReply
	env.must(env.call(http.MethodPost, "/scripts/site/assets-upload-session", map[string]any{"manifest": manifest})).into(t, &sess)
	var all []string
	for _, b := range sess.Buckets {
		all = append(all, b...)
	}
	if len(all) != 3 || sess.JWT == "" {
		t.Fatalf("session = %+v, want the 3 files to upload", sess)
	}
	// The API token is not the session's: refused, nothing stored.
	if r := env.assetsUpload(scToken, map[string]string{hIndex: "<h1>hi</h1>"}, nil); r.Status != http.StatusUnauthorized || r.code() != store.CodeAuthentication {
		t.Errorf("upload with the API token = %d %s", r.Status, r.Body)
	}
	// A size other than the manifest's, or a hash it does not list: refused.
	if r := env.assetsUpload(sess.JWT, map[string]string{hIndex: "<h1>hi</h1>!"}, nil); r.Status != http.StatusBadRequest || r.code() != store.CodeAssets {
		t.Errorf("upload of a wrong size = %d %s", r.Status, r.Body)
	}
	if r := env.assetsUpload(sess.JWT, map[string]string{"ffffffffffffffffffffffffffffffff": "x"}, nil); r.Status != http.StatusBadRequest {
		t.Errorf("upload of a file not in the manifest = %d %s", r.Status, r.Body)
	}
	r := env.assetsUpload(sess.JWT, map[string]string{hIndex: "<h1>hi</h1>", hCSS: "body{margin:0"}, map[string]string{hIndex: "text/html", hCSS: "text/css"})
	if r.Status != http.StatusAccepted || !r.Success {
		t.Fatalf("first bucket = %d %s, want 202 (more to come)", r.Status, r.Body)
	}
	var done struct {
		JWT string `json:"jwt"`
	}
	r = env.assetsUpload(sess.JWT, map[string]string{hAbout: "about"}, map[string]string{hAbout: "text/html"})
	if r.Status != http.StatusCreated {
		t.Fatalf("last bucket = %d %s, want 201 with the completion token", r.Status, r.Body)
	}
	r.into(t, &done)
	if done.JWT == "" || done.JWT == sess.JWT {
		t.Fatalf("completion token %q", done.JWT)
	}
	data, meta, err := testBlobs.Get(context.Background(), store.AssetBlobKey(env.acct.ID, hCSS))
	if err != nil || string(data) != "body{margin:0" {
		t.Fatalf("stored css = %q %v %v", data, meta, err)
	}
	// The session token is no completion token.
	env.fails(env.upload(http.MethodPut, "/scripts/site", map[string]any{"assets": map[string]any{"jwt": sess.JWT}}), http.StatusBadRequest, store.CodeAssets, "completion token is not valid")

	// An assets-only Worker: no main module, no parts.
	env.must(env.upload(http.MethodPut, "/scripts/site", map[string]any{
		"assets":             map[string]any{"jwt": done.JWT, "config": map[string]any{"html_handling": "auto-trailing-slash", "not_found_handling": "single-page-application"}},
		"compatibility_date": "2025-01-01",
	}))
	v := env.latest("site")
	if a := v.Spec.Assets; a == nil || a.Files != 3 || a.NotFoundHandling != "single-page-application" || len(v.Spec.Modules) != 0 || v.Spec.MainModule != "" {
		t.Fatalf("assets-only version = %+v", v.Spec)
	}
	manifestDigest := v.Spec.Assets.Manifest

	// The same files again: nothing to upload, the token completes at once.
	env.must(env.call(http.MethodPost, "/scripts/app/assets-upload-session", map[string]any{"manifest": manifest})).into(t, &sess)
	if len(sess.Buckets) != 0 {
		t.Fatalf("second session buckets = %v, want none (stored once per account)", sess.Buckets)
	}
	// A Worker with code and an assets binding; run_worker_first as patterns.
	env.must(env.upload(http.MethodPut, "/scripts/app", map[string]any{
		"main_module": "index.js",
		"bindings":    []any{map[string]any{"name": "ASSETS", "type": "assets"}},
		"assets":      map[string]any{"jwt": sess.JWT, "config": map[string]any{"run_worker_first": []string{"/api/*"}}},
	}, esm("index.js", helloESM)))
	v = env.latest("app")
	if a := v.Spec.Assets; a == nil || a.Binding != "ASSETS" || a.Manifest != manifestDigest || len(a.RunWorkerFirstPaths) != 1 || len(v.Spec.Bindings) != 0 {
		t.Fatalf("worker with assets = %+v bindings %+v", v.Spec.Assets, v.Spec.Bindings)
	}
	// A secret change keeps the assets (wrangler sends keep_assets).
	env.must(env.call(http.MethodPut, "/scripts/app/secrets", map[string]string{"name": "K", "text": "v", "type": "secret_text"}))
	if v2 := env.latest("app"); v2.Spec.Assets == nil || v2.Spec.Assets.Manifest != manifestDigest || v2.Spec.Assets.Binding != "ASSETS" {
		t.Errorf("after a secret put the assets are %+v", v2.Spec.Assets)
	}

	// Refusals.
	env.fails(env.call(http.MethodPost, "/scripts/site/assets-upload-session", map[string]any{"manifest": map[string]any{}}), http.StatusBadRequest, store.CodeAssets, "no files")
	env.fails(env.call(http.MethodPost, "/scripts/site/assets-upload-session", map[string]any{"manifest": map[string]any{"/../x": map[string]any{"hash": hIndex, "size": 1}}}), http.StatusBadRequest, store.CodeAssets, "invalid asset path")
	env.fails(env.call(http.MethodPost, "/scripts/site/assets-upload-session", map[string]any{"manifest": map[string]any{"/x": map[string]any{"hash": "nothex", "size": 1}}}), http.StatusBadRequest, store.CodeAssets, "invalid hash")
	env.fails(env.call(http.MethodPost, "/scripts/site/assets-upload-session", map[string]any{"manifest": map[string]any{"/x": map[string]any{"hash": hIndex, "size": 26 << 20}}}), http.StatusBadRequest, store.CodeAssets, "25 MiB")
	env.fails(env.upload(http.MethodPut, "/scripts/app2", map[string]any{"main_module": "index.js", "bindings": []any{map[string]any{"name": "ASSETS", "type": "assets"}}}, esm("index.js", helloESM)),
		http.StatusBadRequest, store.CodeScriptValidation, "needs assets")
	env.fails(env.upload(http.MethodPut, "/scripts/app2", map[string]any{"assets": map[string]any{"jwt": done.JWT, "config": map[string]any{"html_handling": "sometimes"}}}),
		http.StatusBadRequest, store.CodeScriptValidation, "html_handling")
}
