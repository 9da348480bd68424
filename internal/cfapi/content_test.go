package cfapi

import (
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
)

// content sends GET …/scripts/:script/content/v2<query> and returns the raw
// answer (not an envelope when it succeeds).
func (env *scEnv) content(script, query string) *httptest.ResponseRecorder {
	env.t.Helper()
	req := httptest.NewRequest(http.MethodGet, BasePath+"/accounts/"+env.acct.ID+"/workers/scripts/"+script+"/content/v2"+query, nil)
	req.Header.Set("Authorization", "Bearer "+scToken)
	req.Header.Set("User-Agent", "wrangler/4.86.0")
	rec := httptest.NewRecorder()
	env.e.ServeHTTP(rec, req)
	return rec
}

// contentParts reads a multipart content/v2 answer as wrangler's
// parseModules does: every part must be a file named like its form field.
// It returns the entrypoint and the parts (name, Content-Type, bytes).
func contentParts(t *testing.T, rec *httptest.ResponseRecorder) (string, []scPart) {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("content/v2 = %d %s", rec.Code, rec.Body)
	}
	mt, params, err := mime.ParseMediaType(rec.Header().Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		t.Fatalf("content/v2 Content-Type = %q (%v)", rec.Header().Get("Content-Type"), err)
	}
	mr := multipart.NewReader(rec.Body, params["boundary"])
	var parts []scPart
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("content/v2 body: %v", err)
		}
		data, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		// FileName() strips directories; wrangler keeps the raw filename.
		if _, cd, err := mime.ParseMediaType(p.Header.Get("Content-Disposition")); err != nil || cd["filename"] != p.FormName() {
			t.Errorf("part %q has Content-Disposition %q", p.FormName(), p.Header.Get("Content-Disposition"))
		}
		parts = append(parts, scPart{name: p.FormName(), ct: p.Header.Get("Content-Type"), data: string(data)})
	}
	return rec.Header().Get("cf-entrypoint"), parts
}

func TestContentV2ESModules(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	const script = "content-esm"
	lib := "export const who = \"world\";\n"
	main := "import { who } from \"./lib/who.js\";\nexport default { fetch() { return new Response(who); } };\n"
	env.must(env.upload(http.MethodPut, "/scripts/"+script, esmMeta(), esm("index.js", main), esm("lib/who.js", lib)))

	entry, parts := contentParts(t, env.content(script, ""))
	if entry != "index.js" {
		t.Errorf("cf-entrypoint = %q, want index.js", entry)
	}
	want := []scPart{esm("index.js", main), esm("lib/who.js", lib)}
	if !slices.Equal(parts, want) {
		t.Errorf("parts = %+v, want %+v", parts, want)
	}
}

func TestContentV2ModuleTypes(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	const script = "content-types"
	up := []scPart{
		esm("index.js", helloESM),
		{name: "cjs.js", ct: "text/javascript", data: "module.exports = 1;"},
		{name: "./banner.txt", ct: "text/plain; charset=utf-8", data: "banner"},
		{name: "blob.bin", ct: "application/octet-stream", data: "\x00\x01\xff"},
		{name: "add.wasm", ct: "application/wasm", data: wasmBytes},
		{name: "conf.json", ct: "application/json", data: `{"a":1}`},
		{name: "index.js.map", ct: "application/source-map", data: `{"version":3}`},
	}
	env.must(env.upload(http.MethodPut, "/scripts/"+script, esmMeta(), up...))

	entry, parts := contentParts(t, env.content(script, ""))
	if entry != "index.js" {
		t.Errorf("cf-entrypoint = %q", entry)
	}
	// The canonical media types wrangler's fromMimeType maps back.
	wantCT := []string{"application/javascript+module", "application/javascript", "text/plain", "application/octet-stream",
		"application/wasm", "application/json", "application/source-map"}
	if len(parts) != len(up) {
		t.Fatalf("parts = %+v, want %d", parts, len(up))
	}
	for i, p := range parts {
		if p.name != up[i].name || p.ct != wantCT[i] || p.data != up[i].data {
			t.Errorf("part %d = %s (%s, %q), want %s (%s, %q)", i, p.name, p.ct, p.data, up[i].name, wantCT[i], up[i].data)
		}
	}
}

func TestContentV2ServiceWorker(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	const script = "content-sw"
	code := `addEventListener("fetch", (e) => e.respondWith(new Response(BANNER)));`
	meta := map[string]any{
		"body_part": "worker.js", "compatibility_date": "2024-09-23", "compatibility_flags": []string{},
		"bindings": []map[string]any{{"name": "BANNER", "type": "text_blob", "part": "banner.txt"}},
	}
	env.must(env.upload(http.MethodPut, "/scripts/"+script, meta,
		scPart{name: "worker.js", ct: "application/javascript", data: code},
		scPart{name: "banner.txt", ct: "text/plain", data: "banner"}))

	rec := env.content(script, "?version="+env.latest(script).Spec.VersionID)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/javascript" || rec.Body.String() != code {
		t.Errorf("content/v2 = %d %q %q, want the script as application/javascript", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	if h := rec.Header().Get("cf-entrypoint"); h != "" {
		t.Errorf("cf-entrypoint = %q for a service worker", h)
	}
}

func TestContentV2Versions(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	const script = "content-versions"
	env.deployHello(script)
	v1 := env.latest(script)
	code2 := strings.Replace(helloESM, `"hi"`, `"v2"`, 1)
	env.must(env.upload(http.MethodPost, "/scripts/"+script+"/versions", esmMeta(), esm("index.js", code2)))
	v2 := env.latest(script)
	if v2.Spec.Number != 2 {
		t.Fatalf("latest version is %d", v2.Spec.Number)
	}

	for _, c := range []struct{ query, code string }{
		{"?version=" + v1.Spec.VersionID, helloESM},
		{"?version=" + strings.ReplaceAll(strings.ToUpper(v1.Spec.VersionID), "-", ""), helloESM},
		{"?version=" + v2.Spec.VersionID, code2},
		{"", code2}, // the latest version, not the deployed one
	} {
		_, parts := contentParts(t, env.content(script, c.query))
		if len(parts) != 1 || parts[0].data != c.code {
			t.Errorf("content/v2%s = %+v, want %q", c.query, parts, c.code)
		}
	}

	// Errors are envelopes: an unknown version, and an unknown script.
	env.fails(env.call(http.MethodGet, "/scripts/"+script+"/content/v2?version=00000000-0000-4000-8000-000000000000", nil),
		http.StatusNotFound, store.CodeVersionNotFound, "not found")
	for _, q := range []string{"", "?version=" + v1.Spec.VersionID} {
		env.fails(env.call(http.MethodGet, "/scripts/nope/content/v2"+q, nil), http.StatusNotFound, store.CodeNotFound, "does not exist")
	}
}

// wranglerVersionInfo is what copyWorkerVersionWithNewSecrets reads of
// GET …/versions/:id; the pointers tell absent fields from empty ones.
type wranglerVersionInfo struct {
	Resources struct {
		Bindings      *[]map[string]any `json:"bindings"`
		ScriptRuntime *struct {
			CompatibilityDate  *string         `json:"compatibility_date"`
			CompatibilityFlags *[]string       `json:"compatibility_flags"`
			Limits             json.RawMessage `json:"limits"`
		} `json:"script_runtime"`
		Script *struct {
			PlacementMode string `json:"placement_mode"`
		} `json:"script"`
	} `json:"resources"`
}

// TestContentV2SecretRoundTrip replays `wrangler versions secret put`
// (copyWorkerVersionWithNewSecrets): read the version, its content and the
// script settings, and post a new version of the same modules with every
// non-secret binding inherited plus the new secret.
func TestContentV2SecretRoundTrip(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	const script = "content-roundtrip"
	lib := "export const who = \"world\";\n"
	meta := esmMeta(map[string]any{"name": "GREETING", "type": "plain_text", "text": "hello"})
	meta["compatibility_flags"] = []string{"nodejs_compat"}
	env.must(env.upload(http.MethodPut, "/scripts/"+script, meta,
		esm("index.js", helloESM), esm("lib/who.js", lib),
		scPart{name: "index.js.map", ct: "application/source-map", data: `{"version":3}`}))
	env.must(env.call(http.MethodPut, "/scripts/"+script+"/secrets", map[string]string{"name": "OLD_SECRET", "text": "old", "type": "secret_text"}))
	from := env.latest(script)

	var info wranglerVersionInfo
	env.must(env.call(http.MethodGet, "/scripts/"+script+"/versions/"+from.Spec.VersionID, nil)).into(t, &info)
	rt := info.Resources.ScriptRuntime
	if info.Resources.Bindings == nil || rt == nil || rt.CompatibilityDate == nil || rt.CompatibilityFlags == nil || rt.Limits == nil || info.Resources.Script == nil {
		t.Fatalf("version info lacks fields wrangler reads: %+v", info)
	}
	entry, parts := contentParts(t, env.content(script, "?version="+from.Spec.VersionID))
	env.must(env.call(http.MethodGet, "/scripts/"+script+"/script-settings", nil))

	bindings := []map[string]any{}
	for _, b := range *info.Resources.Bindings {
		if b["type"] != "secret_text" {
			bindings = append(bindings, map[string]any{"name": b["name"], "type": "inherit"})
		}
	}
	bindings = append(bindings, map[string]any{"name": "NEW_SECRET", "type": "secret_text", "text": "new"})
	var limits any
	if err := json.Unmarshal(rt.Limits, &limits); err != nil {
		t.Fatal(err)
	}
	newMeta := map[string]any{
		"main_module": entry, "bindings": bindings,
		"compatibility_date": *rt.CompatibilityDate, "compatibility_flags": *rt.CompatibilityFlags,
		"keep_bindings": []string{"secret_key", "secret_text"}, "limits": limits,
		"annotations": map[string]string{"workers/message": "secret put"}, "keep_assets": true,
	}
	env.must(env.upload(http.MethodPost, "/scripts/"+script+"/versions?include_subdomain_availability=true&excludeScript=true", newMeta, parts...))

	to := env.latest(script)
	if to.Spec.Number != from.Spec.Number+1 || to.Spec.MainModule != "index.js" {
		t.Fatalf("new version = %d main %q", to.Spec.Number, to.Spec.MainModule)
	}
	if len(to.Spec.Modules) != len(from.Spec.Modules) {
		t.Fatalf("modules = %+v, want %+v", to.Spec.Modules, from.Spec.Modules)
	}
	for i, m := range to.Spec.Modules {
		o := from.Spec.Modules[i]
		if m.Name != o.Name || m.Type != o.Type || m.SHA256 != o.SHA256 || m.Size != o.Size {
			t.Errorf("module %d = %+v, want %+v", i, m, o)
		}
	}
	if got := bindingNames(to); !slices.Equal(got, []string{"GREETING", "NEW_SECRET", "OLD_SECRET"}) {
		t.Errorf("bindings = %v", got)
	}
	if b := bindingByName(to, "GREETING"); b == nil || b.Type != "plain_text" || b.Text != "hello" {
		t.Errorf("GREETING = %+v", b)
	}
	for name, value := range map[string]string{"NEW_SECRET": "new", "OLD_SECRET": "old"} {
		b := bindingByName(to, name)
		if b == nil || b.Type != "secret_text" || b.Text != "" || b.SecretRef == nil {
			t.Errorf("%s = %+v", name, b)
			continue
		}
		if got := string(env.secret(script).Data[b.SecretRef.Key]); got != value {
			t.Errorf("secret %s = %q, want %q", name, got, value)
		}
	}
	if !slices.Equal(to.Spec.CompatibilityFlags, []string{"nodejs_compat"}) || to.Spec.CompatibilityDate != from.Spec.CompatibilityDate {
		t.Errorf("compatibility = %s %v", to.Spec.CompatibilityDate, to.Spec.CompatibilityFlags)
	}
	if to.Spec.Annotations[apiv1.AnnotationMessage] != "secret put" {
		t.Errorf("annotations = %v", to.Spec.Annotations)
	}
	// The new version's content is the old one's.
	entry2, parts2 := contentParts(t, env.content(script, "?version="+to.Spec.VersionID))
	if entry2 != entry || !slices.Equal(parts2, parts) {
		t.Errorf("content after the round trip = %s %+v, want %s %+v", entry2, parts2, entry, parts)
	}
}
