package cfapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
)

var uuidRE = regexp.MustCompile(apiv1.UUIDPattern)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// wasmAdd is a minimal valid Wasm module header.
const wasmBytes = "\x00asm\x01\x00\x00\x00"

// wantModuleKey is the documented key of a module below its version: the
// escaped name, or sha256-<hex> of the name when the escaped name is longer
// than 200 bytes.
func wantModuleKey(name string) string {
	if esc := url.PathEscape(name); len(esc) <= 200 {
		return esc
	}
	return "sha256-" + sha(name)
}

// checkStoredVersion asserts what one successful upload of parts stored: the
// S3 keys of the version (modules and metadata.json, nothing else), their
// content, and the modules of the WorkerVersion.
func checkStoredVersion(t *testing.T, env *scEnv, script string, v apiv1.WorkerVersion, parts []scPart, types map[string]apiv1.ModuleType) {
	t.Helper()
	prefix := fmt.Sprintf("accounts/%s/workers/%s/versions/%s/", env.acct.ID, script, v.Spec.VersionID)
	if v.Spec.Storage.Prefix != prefix || v.Spec.Storage.Bucket != store.Bucket || v.Spec.Storage.MetadataKey != prefix+"metadata.json" {
		t.Errorf("storage = %+v, want prefix %s", v.Spec.Storage, prefix)
	}
	want := []string{prefix + "metadata.json"}
	for _, p := range parts {
		want = append(want, prefix+"modules/"+wantModuleKey(p.name))
	}
	slices.Sort(want)
	var got []string
	for _, k := range env.keys("workers/" + script + "/") {
		if strings.HasPrefix(k, prefix) {
			got = append(got, k)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("S3 keys of version %d:\n got %q\nwant %q", v.Spec.Number, got, want)
	}
	if len(v.Spec.Modules) != len(parts) {
		t.Fatalf("modules = %+v, want %d", v.Spec.Modules, len(parts))
	}
	for i, p := range parts {
		m := v.Spec.Modules[i]
		if m.Name != p.name || m.ContentType != p.ct || m.Size != int64(len(p.data)) || m.SHA256 != sha(p.data) {
			t.Errorf("module %d = %+v, want %s (%s, %d bytes)", i, m, p.name, p.ct, len(p.data))
		}
		if esc := url.PathEscape(p.name); len(esc) <= 200 && m.Key != prefix+"modules/"+esc {
			t.Errorf("module %s is stored as %s", p.name, m.Key)
		}
		if typ, ok := types[p.name]; ok && m.Type != typ {
			t.Errorf("module %s has type %s, want %s", p.name, m.Type, typ)
		}
		if got := string(env.blob(m.Key)); got != p.data {
			t.Errorf("S3 content of %s = %q, want %q", m.Name, got, p.data)
		}
	}
	var meta map[string]any
	if err := json.Unmarshal(env.blob(prefix+"metadata.json"), &meta); err != nil {
		t.Fatalf("metadata.json: %v", err)
	}
	if meta["id"] != v.Spec.VersionID || meta["script"] != script || meta["number"] != float64(v.Spec.Number) {
		t.Errorf("metadata.json = %v", meta)
	}
}

// checkDeployed asserts the release's newest deployment sends 100% to v and
// that it has n deployments.
func checkDeployed(t *testing.T, env *scEnv, script string, v apiv1.WorkerVersion, n int) *apiv1.WorkerRelease {
	t.Helper()
	rel := env.release(script)
	if rel == nil {
		t.Fatalf("no WorkerRelease for %s", script)
	}
	if rel.Spec.ScriptName != script || rel.Spec.AccountID != env.acct.ID {
		t.Errorf("release spec = %+v", rel.Spec)
	}
	if len(rel.Spec.Deployments) != n {
		t.Fatalf("release has %d deployments, want %d: %+v", len(rel.Spec.Deployments), n, rel.Spec.Deployments)
	}
	d := rel.Spec.Deployments[0]
	if len(d.Versions) != 1 || d.Versions[0].VersionID != v.Spec.VersionID || d.Versions[0].Percentage != 100 {
		t.Errorf("newest deployment = %+v, want 100%% to %s", d, v.Spec.VersionID)
	}
	if !uuidRE.MatchString(d.ID) || d.Strategy != apiv1.DeploymentStrategyPercentage || d.AuthorEmail != scEmail {
		t.Errorf("deployment = %+v", d)
	}
	return rel
}

func TestScriptsUploadShapes(t *testing.T) {
	t.Parallel()
	type tc struct {
		name     string
		meta     any
		parts    []scPart
		types    map[string]apiv1.ModuleType
		bindings string // GET settings result.bindings, compact JSON
		date     string // stored compatibility date
		flags    []string
		notes    []string // substrings of envelope messages
	}
	cases := []tc{
		{
			name:     "es module",
			meta:     esmMeta(),
			parts:    []scPart{esm("index.js", helloESM)},
			types:    map[string]apiv1.ModuleType{"index.js": apiv1.ModuleESModule},
			bindings: `[]`, date: "2025-01-01",
		},
		{
			name: "es module with extra modules named with and without ./",
			meta: esmMeta(),
			parts: []scPart{
				esm("index.js", `import banner from "./69fba63fd4d3c9c1ea2f153579ff4d4fa7309fe8-banner.txt"; export default {fetch(){return new Response(banner)}}`),
				{name: "./69fba63fd4d3c9c1ea2f153579ff4d4fa7309fe8-banner.txt", ct: "text/plain", data: "hello banner\n"},
				esm("util/lib.js", "export const x = 1;"),
				{name: "./data.bin", ct: "application/octet-stream", data: "\x00\x01\x02\xff"},
				{name: "add.wasm", ct: "application/wasm", data: wasmBytes},
				{name: "cjs.js", ct: "application/javascript", data: "module.exports = 1;"},
				{name: "conf.json", ct: "application/json", data: `{"a":1}`},
				{name: "index.js.map", ct: "application/source-map", data: `{"version":3}`},
			},
			types: map[string]apiv1.ModuleType{
				"index.js": apiv1.ModuleESModule, "./69fba63fd4d3c9c1ea2f153579ff4d4fa7309fe8-banner.txt": apiv1.ModuleText,
				"util/lib.js": apiv1.ModuleESModule, "./data.bin": apiv1.ModuleData, "add.wasm": apiv1.ModuleWasm,
				"cjs.js": apiv1.ModuleCommonJS, "conf.json": apiv1.ModuleJSON, "index.js.map": apiv1.ModuleSourceMap,
			},
			bindings: `[]`, date: "2025-01-01",
		},
		{
			name: "service worker with text, data and wasm globals",
			meta: map[string]any{
				"body_part": "worker.js", "compatibility_date": "2024-09-23", "compatibility_flags": []string{},
				"bindings": []map[string]any{
					{"name": "BANNER", "type": "text_blob", "part": "./banner.txt"},
					{"name": "BLOB", "type": "data_blob", "part": "blob.bin"},
					{"name": "ADD", "type": "wasm_module", "part": "add.wasm"},
				},
			},
			parts: []scPart{
				{name: "worker.js", ct: "application/javascript", data: `(() => { addEventListener("fetch", (e) => e.respondWith(new Response(BANNER))); })();`},
				{name: "./banner.txt", ct: "text/plain", data: "banner"},
				{name: "blob.bin", ct: "application/octet-stream", data: "\x01\x02"},
				{name: "add.wasm", ct: "application/wasm", data: wasmBytes},
			},
			types: map[string]apiv1.ModuleType{
				"worker.js": apiv1.ModuleServiceWorker, "./banner.txt": apiv1.ModuleText, "blob.bin": apiv1.ModuleData, "add.wasm": apiv1.ModuleWasm,
			},
			bindings: `[{"name":"BANNER","part":"./banner.txt","type":"text_blob"},{"name":"BLOB","part":"blob.bin","type":"data_blob"},{"name":"ADD","part":"add.wasm","type":"wasm_module"}]`,
			date:     "2024-09-23",
		},
		{
			name: "vars, json var and kv namespace",
			meta: map[string]any{
				"main_module": "index.js", "compatibility_date": "2025-01-01", "compatibility_flags": []string{"nodejs_compat"},
				"bindings": []map[string]any{
					{"name": "GREETING", "type": "plain_text", "text": "hello"},
					{"name": "CONF", "type": "json", "json": map[string]any{"a": 1, "b": []any{true, nil}}},
					{"name": "MYKV", "type": "kv_namespace", "namespace_id": "d5d2b0405f5ff994b5805e2a7e9068ca"},
				},
			},
			parts:    []scPart{esm("index.js", helloESM)},
			bindings: `[{"name":"GREETING","text":"hello","type":"plain_text"},{"json":{"a":1,"b":[true,null]},"name":"CONF","type":"json"},{"name":"MYKV","namespace_id":"d5d2b0405f5ff994b5805e2a7e9068ca","type":"kv_namespace"}]`,
			date:     "2025-01-01", flags: []string{"nodejs_compat"},
		},
		{
			name:     "draft worker made by secret put",
			meta:     `{"main_module":"fresh-worker","bindings":[],"logpush":false}`,
			parts:    []scPart{esm("fresh-worker", "export default { fetch() {} }")},
			types:    map[string]apiv1.ModuleType{"fresh-worker": apiv1.ModuleESModule},
			bindings: `[]`,
		},
		{
			name:     "commonjs main module",
			meta:     map[string]any{"main_module": "index.cjs", "compatibility_date": "2025-01-01"},
			parts:    []scPart{{name: "index.cjs", ct: "application/javascript", data: "module.exports = { fetch() { return new Response('hi') } }"}},
			types:    map[string]apiv1.ModuleType{"index.cjs": apiv1.ModuleCommonJS},
			bindings: `[]`, date: "2025-01-01",
		},
		{
			name:     "compatibility date newer than the runtime is clamped",
			meta:     map[string]any{"main_module": "index.js", "compatibility_date": "2099-01-01", "compatibility_flags": []string{}},
			parts:    []scPart{esm("index.js", helloESM)},
			bindings: `[]`, date: store.MaxCompatibilityDate,
			notes: []string{"2099-01-01", "using " + store.MaxCompatibilityDate},
		},
		{
			name:     "unknown metadata fields and extra query parameters are ignored",
			meta:     `{"main_module":"index.js","bindings":[],"compatibility_date":"2025-01-01","compatibility_flags":[],"placement":{},"observability":{"enabled":true},"tail_consumers":[],"migrations":null}`,
			parts:    []scPart{esm("index.js", helloESM)},
			bindings: `[]`, date: "2025-01-01",
		},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := newScriptsEnv(t).withKVNamespace()
			script := fmt.Sprintf("shape-%d", i)
			env.fails(env.call(http.MethodGet, "/services/"+script, nil), http.StatusNotFound, store.CodeNotFound, "does not exist")
			r := env.must(env.upload(http.MethodPut, "/scripts/"+script+"?include_subdomain_availability=true&excludeScript=true&bindings_inherit=strict", c.meta, c.parts...))
			var res struct {
				ID                 string   `json:"id"`
				DeploymentID       string   `json:"deployment_id"`
				Etag               string   `json:"etag"`
				CompatibilityDate  string   `json:"compatibility_date"`
				CompatibilityFlags []string `json:"compatibility_flags"`
			}
			r.into(t, &res)
			vs := env.versions(script)
			if len(vs) != 1 {
				t.Fatalf("%d versions after the first upload", len(vs))
			}
			v := vs[0]
			if v.Spec.Number != 1 || v.Name != store.VersionObjectName(script, 1) || v.Namespace != scNamespace {
				t.Errorf("version = %s/%s number %d", v.Namespace, v.Name, v.Spec.Number)
			}
			if res.DeploymentID != v.Spec.VersionID || !uuidRE.MatchString(res.DeploymentID) || res.ID != script {
				t.Errorf("result = %+v, want deployment_id %s", res, v.Spec.VersionID)
			}
			if res.CompatibilityDate != c.date || v.Spec.CompatibilityDate != c.date {
				t.Errorf("compatibility date: answered %q, stored %q, want %q", res.CompatibilityDate, v.Spec.CompatibilityDate, c.date)
			}
			if !slices.Equal(v.Spec.CompatibilityFlags, c.flags) || res.CompatibilityFlags == nil {
				t.Errorf("flags: stored %q answered %q, want %q", v.Spec.CompatibilityFlags, res.CompatibilityFlags, c.flags)
			}
			if v.Spec.Annotations[apiv1.AnnotationTriggeredBy] != store.TriggerUpload {
				t.Errorf("version annotations = %v", v.Spec.Annotations)
			}
			if main := c.parts[0]; res.Etag != sha(main.data)[:32] {
				t.Errorf("etag = %q, want %q", res.Etag, sha(main.data)[:32])
			}
			checkStoredVersion(t, env, script, v, c.parts, c.types)
			rel := checkDeployed(t, env, script, v, 1)
			if _, ok := rel.Spec.Deployments[0].Annotations[apiv1.AnnotationTriggeredBy]; ok {
				t.Errorf("an upload's deployment is annotated %v", rel.Spec.Deployments[0].Annotations)
			}
			for _, n := range c.notes {
				found := false
				for _, m := range r.Messages {
					found = found || strings.Contains(m.Message, n)
				}
				if !found {
					t.Errorf("messages %+v lack %q", r.Messages, n)
				}
			}
			if len(c.notes) == 0 && len(r.Messages) != 0 {
				t.Errorf("unexpected messages %+v", r.Messages)
			}

			svc := env.must(env.call(http.MethodGet, "/services/"+script, nil))
			var sv struct {
				DefaultEnvironment struct {
					Script map[string]any `json:"script"`
				} `json:"default_environment"`
			}
			svc.into(t, &sv)
			if sv.DefaultEnvironment.Script == nil || sv.DefaultEnvironment.Script["id"] != script {
				t.Errorf("services = %s", svc.Result)
			}
			if ldf := sv.DefaultEnvironment.Script["last_deployed_from"]; ldf != nil && ldf != "wrangler" {
				t.Errorf("last_deployed_from = %v", ldf)
			}

			settings := env.must(env.call(http.MethodGet, "/scripts/"+script+"/settings", nil))
			var st struct {
				Bindings json.RawMessage `json:"bindings"`
			}
			settings.into(t, &st)
			if compactJSON(t, st.Bindings) != compactJSON(t, []byte(c.bindings)) {
				t.Errorf("settings bindings = %s, want %s", st.Bindings, c.bindings)
			}
		})
	}
}

// compactJSON re-encodes JSON with sorted keys.
func compactJSON(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

// apiVersion is GET …/versions/:id as wrangler reads it.
type apiVersion struct {
	ID       string `json:"id"`
	Number   int64  `json:"number"`
	Metadata struct {
		CreatedOn   string `json:"created_on"`
		AuthorEmail string `json:"author_email"`
		Source      string `json:"source"`
	} `json:"metadata"`
	Annotations map[string]string `json:"annotations"`
	Resources   struct {
		Script struct {
			Etag     string   `json:"etag"`
			Handlers []string `json:"handlers"`
		} `json:"script"`
		ScriptRuntime struct {
			CompatibilityDate  string   `json:"compatibility_date"`
			CompatibilityFlags []string `json:"compatibility_flags"`
		} `json:"script_runtime"`
		Bindings []map[string]any `json:"bindings"`
	} `json:"resources"`
}

// apiDeployment is one entry of GET …/deployments.
type apiDeployment struct {
	ID          string            `json:"id"`
	CreatedOn   string            `json:"created_on"`
	Source      string            `json:"source"`
	Strategy    string            `json:"strategy"`
	AuthorEmail string            `json:"author_email"`
	Annotations map[string]string `json:"annotations"`
	Versions    []struct {
		VersionID  string `json:"version_id"`
		Percentage int    `json:"percentage"`
	} `json:"versions"`
}

func (env *scEnv) deployments(script string) []apiDeployment {
	env.t.Helper()
	var res struct {
		Deployments []apiDeployment `json:"deployments"`
	}
	env.must(env.call(http.MethodGet, "/scripts/"+script+"/deployments", nil)).into(env.t, &res)
	for _, d := range res.Deployments {
		if _, err := time.Parse(time.RFC3339, d.CreatedOn); err != nil || d.Strategy != "percentage" || d.Annotations == nil {
			env.t.Errorf("deployment %+v: created_on %v", d, err)
		}
	}
	return res.Deployments
}

func traffic(d apiDeployment) string {
	var parts []string
	for _, v := range d.Versions {
		parts = append(parts, fmt.Sprintf("%s@%d", v.VersionID, v.Percentage))
	}
	return strings.Join(parts, ",")
}

func TestScriptsLifecycle(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	const script = "hello-esm"

	// Before the first deploy: 404 + 10007 everywhere wrangler looks.
	for _, p := range []string{"/services/" + script, "/scripts/" + script + "/deployments", "/scripts/" + script + "/settings",
		"/scripts/" + script + "/versions", "/scripts/" + script + "/secrets", "/scripts/" + script + "/references"} {
		env.fails(env.call(http.MethodGet, p, nil), http.StatusNotFound, store.CodeNotFound, "does not exist")
	}
	if keys := env.keys(""); len(keys) != 0 {
		t.Fatalf("keys before anything: %q", keys)
	}

	// deploy #1: PUT = version 1 + 100% deployment.
	r1 := env.deployHello(script, map[string]any{"name": "GREETING", "type": "plain_text", "text": "hello"})
	var put struct {
		DeploymentID string `json:"deployment_id"`
	}
	r1.into(t, &put)
	v1 := env.latest(script)
	if put.DeploymentID != v1.Spec.VersionID {
		t.Fatalf("deployment_id %s, version %s", put.DeploymentID, v1.Spec.VersionID)
	}
	checkDeployed(t, env, script, v1, 1)
	env.must(env.call(http.MethodGet, "/services/"+script, nil))

	// deploy #2 of an existing ES-module worker: POST versions, then POST deployments.
	before := env.release(script)
	code2 := strings.Replace(helloESM, `"hi"`, `"v2"`, 1)
	r2 := env.must(env.upload(http.MethodPost, "/scripts/"+script+"/versions?bindings_inherit=strict",
		map[string]any{"main_module": "index.js", "compatibility_date": "2025-01-01", "compatibility_flags": []string{},
			"bindings":      []map[string]any{{"name": "GREETING", "type": "inherit"}},
			"keep_bindings": []string{"secret_text", "secret_key"},
			"annotations":   map[string]string{"workers/message": "second version", "workers/tag": "v2", "other": "dropped"}},
		esm("index.js", code2)))
	var pv apiVersion
	r2.into(t, &pv)
	v2 := env.latest(script)
	if v2.Spec.Number != 2 || pv.ID != v2.Spec.VersionID || pv.Resources.Script.Etag != sha(code2)[:32] {
		t.Fatalf("POST versions = %s; stored version %d %s", r2.Result, v2.Spec.Number, v2.Spec.VersionID)
	}
	if pv.Annotations["workers/message"] != "second version" || pv.Annotations["workers/tag"] != "v2" ||
		pv.Annotations["workers/triggered_by"] != "upload" || pv.Annotations["other"] != "" {
		t.Errorf("version annotations = %v", pv.Annotations)
	}
	if b := bindingByName(v2, "GREETING"); b == nil || b.Text != "hello" {
		t.Errorf("inherit GREETING = %+v", b)
	}
	checkStoredVersion(t, env, script, v2, []scPart{esm("index.js", code2)}, nil)
	if after := env.release(script); after.ResourceVersion != before.ResourceVersion || len(after.Spec.Deployments) != 1 {
		t.Fatalf("POST versions touched the release: %+v", after.Spec.Deployments)
	}

	// GET versions: newest first (wrangler sorts by created_on itself).
	var list struct {
		Items []apiVersion `json:"items"`
	}
	env.must(env.call(http.MethodGet, "/scripts/"+script+"/versions?deployable=true", nil)).into(t, &list)
	if len(list.Items) != 2 || list.Items[0].ID != v2.Spec.VersionID || list.Items[1].ID != v1.Spec.VersionID {
		t.Fatalf("versions list = %+v", list.Items)
	}
	for _, it := range list.Items {
		if _, err := time.Parse(time.RFC3339, it.Metadata.CreatedOn); err != nil || it.Resources.Bindings == nil {
			t.Errorf("version item %+v: %v", it, err)
		}
	}
	if !(list.Items[1].Metadata.CreatedOn < list.Items[0].Metadata.CreatedOn) {
		t.Errorf("created_on not increasing: %s, %s", list.Items[1].Metadata.CreatedOn, list.Items[0].Metadata.CreatedOn)
	}

	// GET versions/:id with and without hyphens, any case.
	for _, id := range []string{v1.Spec.VersionID, strings.ReplaceAll(v1.Spec.VersionID, "-", ""), strings.ToUpper(strings.ReplaceAll(v1.Spec.VersionID, "-", ""))} {
		var got apiVersion
		env.must(env.call(http.MethodGet, "/scripts/"+script+"/versions/"+id, nil)).into(t, &got)
		if got.ID != v1.Spec.VersionID || got.Number != 1 || got.Metadata.AuthorEmail != scEmail || got.Metadata.Source != "wrangler" ||
			got.Resources.ScriptRuntime.CompatibilityDate != "2025-01-01" || got.Resources.ScriptRuntime.CompatibilityFlags == nil ||
			len(got.Resources.Bindings) != 1 || got.Resources.Bindings[0]["text"] != "hello" {
			t.Errorf("GET versions/%s = %+v", id, got)
		}
	}
	env.fails(env.call(http.MethodGet, "/scripts/"+script+"/versions/"+uuid.NewString(), nil), http.StatusNotFound, store.CodeVersionNotFound, "not found")

	// versions deploy A@30% B@70%.
	snap := env.snapshot()
	split := env.must(env.call(http.MethodPost, "/scripts/"+script+"/deployments", map[string]any{
		"strategy":    "percentage",
		"versions":    []map[string]any{{"version_id": v1.Spec.VersionID, "percentage": 30}, {"version_id": strings.ReplaceAll(v2.Spec.VersionID, "-", ""), "percentage": 70}},
		"annotations": map[string]string{"workers/message": "gradual"},
	}))
	var sd apiDeployment
	split.into(t, &sd)
	if !uuidRE.MatchString(sd.ID) || traffic(sd) != v1.Spec.VersionID+"@30,"+v2.Spec.VersionID+"@70" || sd.Annotations["workers/message"] != "gradual" {
		t.Errorf("split deployment = %+v", sd)
	}
	if now := env.snapshot(); !slices.Equal(now.Keys, snap.Keys) || len(env.versions(script)) != 2 {
		t.Errorf("a deployment wrote S3 keys or versions")
	}
	ds := env.deployments(script)
	if len(ds) != 2 || ds[0].ID != sd.ID || traffic(ds[1]) != v1.Spec.VersionID+"@100" {
		t.Fatalf("deployments = %+v", ds)
	}
	if !(ds[1].CreatedOn < ds[0].CreatedOn) {
		t.Errorf("deployments not newest first: %s, %s", ds[0].CreatedOn, ds[1].CreatedOn)
	}

	// rollback to v1: a new deployment at 100%.
	rb := env.must(env.call(http.MethodPost, "/scripts/"+script+"/deployments?force=true", map[string]any{
		"strategy": "percentage", "versions": []map[string]any{{"version_id": v1.Spec.VersionID, "percentage": 100}},
		"annotations": map[string]string{"workers/message": "roll it back"},
	}))
	var rd apiDeployment
	rb.into(t, &rd)
	ds = env.deployments(script)
	if len(ds) != 3 || ds[0].ID != rd.ID || traffic(ds[0]) != v1.Spec.VersionID+"@100" || ds[0].Annotations["workers/message"] != "roll it back" || ds[1].ID != sd.ID {
		t.Fatalf("deployments after rollback = %+v", ds)
	}
	rel := env.release(script)
	if len(rel.Spec.Deployments) != 3 || rel.Spec.Deployments[0].ID != rd.ID {
		t.Errorf("release deployments = %+v", rel.Spec.Deployments)
	}

	// The non-versioned calls deploy makes afterwards.
	env.must(env.call(http.MethodPatch, "/scripts/"+script+"/script-settings", `{"observability":{"enabled":false},"tags":[]}`))
	env.must(env.call(http.MethodGet, "/scripts/"+script+"/subdomain", nil))
	env.must(env.call(http.MethodPost, "/scripts/"+script+"/subdomain", `{"enabled":true}`))
	env.must(env.call(http.MethodGet, "/scripts/"+script+"/references", nil))
	var scripts []map[string]any
	env.must(env.call(http.MethodGet, "/scripts", nil)).into(t, &scripts)
	if len(scripts) != 1 || scripts[0]["id"] != script {
		t.Errorf("scripts = %v", scripts)
	}

	// A second script is untouched by deleting the first.
	env.deployHello("other")
	otherKeys := env.keys("workers/other/")

	// After the rollback the latest version (v2) is not deployed: a secret
	// change is refused (it would deploy v2 again), as Cloudflare does.
	snap = env.snapshot()
	env.fails(env.call(http.MethodPut, "/scripts/"+script+"/secrets", map[string]string{"name": "API_KEY", "text": "s3cr3t", "type": "secret_text"}),
		http.StatusBadRequest, store.CodeSecretEditNotDeployed, "isn't currently deployed")
	env.unchanged(snap)
	// Deploying v2 makes it possible again.
	env.must(env.call(http.MethodPost, "/scripts/"+script+"/deployments", map[string]any{"versions": []map[string]any{{"version_id": v2.Spec.VersionID, "percentage": 100}}}))

	// delete: DELETE services/:name removes every object, the Secret and all S3 objects.
	env.must(env.call(http.MethodPut, "/scripts/"+script+"/secrets", map[string]string{"name": "API_KEY", "text": "s3cr3t", "type": "secret_text"}))
	if v := env.latest(script); v.Spec.Number != 3 || v.Spec.Modules[0].SHA256 != sha(code2) {
		t.Errorf("the secret's version %d is not made from v2", v.Spec.Number)
	}
	if env.secret(script) == nil {
		t.Fatal("no Secret before delete")
	}
	env.must(env.call(http.MethodDelete, "/services/"+script+"?force=false", nil))
	if vs := env.versions(script); len(vs) != 0 {
		t.Errorf("%d versions survive delete", len(vs))
	}
	if env.release(script) != nil || env.secret(script) != nil {
		t.Errorf("release or Secret survives delete")
	}
	if keys := env.keys("workers/" + script + "/"); len(keys) != 0 {
		t.Errorf("S3 keys survive delete: %q", keys)
	}
	if keys := env.keys("workers/other/"); !slices.Equal(keys, otherKeys) || env.release("other") == nil || len(env.versions("other")) != 1 {
		t.Errorf("deleting %s touched other: %q", script, keys)
	}
	env.fails(env.call(http.MethodGet, "/services/"+script, nil), http.StatusNotFound, store.CodeNotFound, "does not exist")
	env.fails(env.call(http.MethodDelete, "/services/"+script, nil), http.StatusNotFound, store.CodeNotFound, "does not exist")

	// DELETE scripts/:name works the same; a new deploy starts at version 1 again.
	env.must(env.call(http.MethodDelete, "/scripts/other", nil))
	if env.release("other") != nil || len(env.keys("")) != 0 {
		t.Errorf("DELETE scripts/other left %q", env.keys(""))
	}
	env.deployHello(script)
	if v := env.latest(script); v.Spec.Number != 1 {
		t.Errorf("redeploy after delete is version %d", v.Spec.Number)
	}
}

// settingsForm is the multipart body of `wrangler secret bulk`: one part
// named "settings" without filename.
func settingsForm(t *testing.T, bindings []map[string]any) ([]byte, string) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"bindings": bindings})
	if err != nil {
		t.Fatal(err)
	}
	return formWith(undiciBoundary(), scPart{name: "settings", data: string(b)})
}

// secretNames is GET …/secrets.
func (env *scEnv) secretNames(script string) []string {
	env.t.Helper()
	var list []map[string]string
	env.must(env.call(http.MethodGet, "/scripts/"+script+"/secrets", nil)).into(env.t, &list)
	var out []string
	for _, s := range list {
		if s["type"] != "secret_text" {
			env.t.Errorf("secret %v", s)
		}
		out = append(out, s["name"])
	}
	slices.Sort(out)
	return out
}

// noValueIn fails when value appears in any WorkerVersion or S3 object.
func (env *scEnv) noValueIn(value string) {
	env.t.Helper()
	var l apiv1.WorkerVersionList
	if err := env.c.List(context.Background(), &l); err != nil {
		env.t.Fatal(err)
	}
	b, err := json.Marshal(l)
	if err != nil {
		env.t.Fatal(err)
	}
	if strings.Contains(string(b), value) {
		env.t.Errorf("a serialized WorkerVersion contains the secret value %q", value)
	}
	for _, k := range env.keys("") {
		if strings.Contains(string(env.blob(k)), value) {
			env.t.Errorf("S3 object %s contains the secret value %q", k, value)
		}
	}
}

func TestScriptsSecrets(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	const script = "secret-app"
	const dbURL = "postgres://user:pw-9f8e7d6c@db.internal:5432/app"

	// secret put on a missing worker: 404 10007 (wrangler then makes a draft worker).
	before := env.snapshot()
	env.fails(env.call(http.MethodPut, "/scripts/"+script+"/secrets", map[string]string{"name": "DATABASE_URL", "text": dbURL, "type": "secret_text"}),
		http.StatusNotFound, store.CodeNotFound, "does not exist")
	env.unchanged(before)

	env.deployHello(script,
		map[string]any{"name": "GREETING", "type": "plain_text", "text": "hello"},
		map[string]any{"name": "CONF", "type": "json", "json": []int{1, 2}})
	if n := len(env.versions(script)); n != 1 {
		t.Fatalf("%d versions", n)
	}

	// secret put: the Secret holds the value under a key of the new
	// version, the version only a reference.
	r := env.must(env.call(http.MethodPut, "/scripts/"+script+"/secrets", map[string]string{"name": "DATABASE_URL", "text": dbURL, "type": "secret_text"}))
	var put map[string]string
	r.into(t, &put)
	if put["name"] != "DATABASE_URL" || put["type"] != "secret_text" {
		t.Errorf("secret put result = %v", put)
	}
	sec := env.secret(script)
	if sec == nil || len(sec.Data) != 1 || string(sec.Data["DATABASE_URL.v2"]) != dbURL {
		t.Fatalf("Secret = %+v", sec)
	}
	if rel := env.release(script); len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].Name != rel.Name || sec.OwnerReferences[0].Kind != "WorkerRelease" {
		t.Errorf("Secret owners = %+v", sec.OwnerReferences)
	}
	if sec.Labels[apiv1.LabelScript] != store.ObjectName(script) || sec.Labels[apiv1.LabelAccount] != env.acct.ID {
		t.Errorf("Secret labels = %v", sec.Labels)
	}
	v2 := env.latest(script)
	if v2.Spec.Number != 2 {
		t.Fatalf("secret put made version %d", v2.Spec.Number)
	}
	b := bindingByName(v2, "DATABASE_URL")
	if b == nil || b.Type != "secret_text" || b.Text != "" || b.SecretRef == nil || *b.SecretRef != (apiv1.SecretKeyRef{Name: store.SecretName(script), Key: store.VersionSecretKey("DATABASE_URL", 2)}) {
		t.Errorf("secret binding = %+v", b)
	}
	if got := bindingNames(v2); !slices.Equal(got, []string{"CONF", "DATABASE_URL", "GREETING"}) {
		t.Errorf("bindings after secret put = %v", got)
	}
	if v2.Spec.Annotations[apiv1.AnnotationTriggeredBy] != store.TriggerSecret {
		t.Errorf("version annotations = %v", v2.Spec.Annotations)
	}
	// Same code, stored again under the new version.
	checkStoredVersion(t, env, script, v2, []scPart{esm("index.js", helloESM)}, map[string]apiv1.ModuleType{"index.js": apiv1.ModuleESModule})
	rel := checkDeployed(t, env, script, v2, 2)
	if rel.Spec.Deployments[0].Annotations[apiv1.AnnotationTriggeredBy] != store.TriggerSecret {
		t.Errorf("deployment annotations = %v", rel.Spec.Deployments[0].Annotations)
	}
	var ver apiVersion
	env.must(env.call(http.MethodGet, "/scripts/"+script+"/versions/"+v2.Spec.VersionID, nil)).into(t, &ver)
	if ver.Annotations["workers/triggered_by"] != "secret" {
		t.Errorf("GET version annotations = %v", ver.Annotations)
	}
	env.noValueIn(dbURL)
	if got := env.secretNames(script); !slices.Equal(got, []string{"DATABASE_URL"}) {
		t.Errorf("secret list = %v", got)
	}
	env.must(env.call(http.MethodGet, "/scripts/"+script+"/secrets/DATABASE_URL", nil))
	env.fails(env.call(http.MethodGet, "/scripts/"+script+"/secrets/GREETING", nil), http.StatusNotFound, store.CodeSecretNotFound, "not found")
	// settings never show secret values.
	settings := env.must(env.call(http.MethodGet, "/scripts/"+script+"/settings", nil))
	if strings.Contains(settings.Body, dbURL) {
		t.Errorf("settings show the secret value: %s", settings.Body)
	}

	// A second secret put with a new value stores it under the new
	// version's key: the version before keeps reading its own value.
	env.must(env.call(http.MethodPut, "/scripts/"+script+"/secrets", map[string]string{"name": "api_key", "text": "k1", "type": "secret_text"}))
	env.must(env.call(http.MethodPut, "/scripts/"+script+"/secrets", map[string]string{"name": "api_key", "text": "k2", "type": "secret_text"}))
	vs := env.versions(script)
	if v := vs[len(vs)-1]; v.Spec.Number != 4 {
		t.Errorf("two secret puts made version %d, want 4", v.Spec.Number)
	}
	for _, c := range []struct {
		v           apiv1.WorkerVersion
		name, value string
	}{{vs[2], "api_key", "k1"}, {vs[3], "api_key", "k2"}, {vs[3], "DATABASE_URL", dbURL}} {
		if got, ok := env.secretOf(c.v, c.name); !ok || got != c.value {
			t.Errorf("version %d reads %s = %q, want %q", c.v.Spec.Number, c.name, got, c.value)
		}
	}
	if sec := env.secret(script); len(sec.Data) != 3 || string(sec.Data["api_key.v3"]) != "k1" || string(sec.Data["api_key.v4"]) != "k2" {
		t.Errorf("Secret data = %q", sec.Data)
	}

	// A later plain deploy (no secrets, no keep_bindings) keeps the secrets, drops the vars it does not send.
	env.deployHello(script, map[string]any{"name": "GREETING", "type": "plain_text", "text": "hi again"})
	v5 := env.latest(script)
	if got := bindingNames(v5); !slices.Equal(got, []string{"DATABASE_URL", "GREETING", "api_key"}) {
		t.Errorf("bindings after plain deploy = %v", got)
	}
	if b := bindingByName(v5, "DATABASE_URL"); b == nil || b.SecretRef == nil || b.SecretRef.Key != "DATABASE_URL.v2" {
		t.Errorf("secret after deploy = %+v", b)
	}
	if b := bindingByName(v5, "GREETING"); b.Text != "hi again" {
		t.Errorf("GREETING = %+v", b)
	}
	if got, _ := env.secretOf(v5, "DATABASE_URL"); got != dbURL || len(env.secret(script).Data) != 3 {
		t.Errorf("deploy changed the Secret")
	}
	if got := env.secretNames(script); !slices.Equal(got, []string{"DATABASE_URL", "api_key"}) {
		t.Errorf("secret list = %v", got)
	}

	// secret bulk: PATCH settings with one "settings" part; existing bindings as {type,name}.
	body, ct := settingsForm(t, []map[string]any{
		{"type": "plain_text", "name": "GREETING"},
		{"type": "secret_text", "name": "DATABASE_URL"},
		{"type": "secret_text", "name": "api_key"},
		{"type": "secret_text", "name": "A", "text": "1"},
		{"type": "secret_text", "name": "B", "text": "two"},
	})
	pr := env.must(env.send(scReq{method: http.MethodPatch, path: "/scripts/" + script + "/settings", body: body, contentType: ct}))
	if strings.Contains(pr.Body, "two") {
		t.Errorf("PATCH settings echoes a secret value: %s", pr.Body)
	}
	v6 := env.latest(script)
	if got := bindingNames(v6); !slices.Equal(got, []string{"A", "B", "DATABASE_URL", "GREETING", "api_key"}) {
		t.Errorf("bindings after secret bulk = %v", got)
	}
	if b := bindingByName(v6, "GREETING"); b.Text != "hi again" {
		t.Errorf("GREETING after bulk = %+v", b)
	}
	for name, value := range map[string]string{"A": "1", "B": "two", "DATABASE_URL": dbURL, "api_key": "k2"} {
		if got, ok := env.secretOf(v6, name); !ok || got != value {
			t.Errorf("after bulk, %s = %q, want %q", name, got, value)
		}
	}
	checkDeployed(t, env, script, v6, 6)
	if v6.Spec.Annotations[apiv1.AnnotationTriggeredBy] != store.TriggerSecret {
		t.Errorf("bulk version annotations = %v", v6.Spec.Annotations)
	}
	// secret bulk naming a binding the worker does not have: 10057, nothing written.
	before = env.snapshot()
	body, ct = settingsForm(t, []map[string]any{{"type": "plain_text", "name": "NOPE"}, {"type": "secret_text", "name": "C", "text": "c"}})
	env.fails(env.send(scReq{method: http.MethodPatch, path: "/scripts/" + script + "/settings", body: body, contentType: ct}),
		http.StatusBadRequest, store.CodeInheritBinding, "inherit binding 'NOPE' is invalid")
	env.unchanged(before)
	// secret bulk with a plain JSON body works the same.
	env.must(env.call(http.MethodPatch, "/scripts/"+script+"/settings", map[string]any{"bindings": []map[string]any{
		{"type": "plain_text", "name": "GREETING"}, {"type": "secret_text", "name": "DATABASE_URL"}, {"type": "secret_text", "name": "api_key"},
		{"type": "secret_text", "name": "A"}, {"type": "secret_text", "name": "B", "text": "three"},
	}}))
	if got, _ := env.secretOf(env.latest(script), "B"); got != "three" {
		t.Errorf("JSON PATCH settings did not set B")
	}
	if got, _ := env.secretOf(v6, "B"); got != "two" {
		t.Errorf("JSON PATCH settings changed B of version 6 to %q", got)
	}

	// secret delete: a new version without it; the value stays for the
	// versions that bind it (a rollback to them).
	env.must(env.call(http.MethodDelete, "/scripts/"+script+"/secrets/A?url_encoded=true", nil))
	v8 := env.latest(script)
	if bindingByName(v8, "A") != nil || v8.Spec.Annotations[apiv1.AnnotationTriggeredBy] != store.TriggerSecret {
		t.Errorf("after delete: bindings %v, annotations %v", bindingNames(v8), v8.Spec.Annotations)
	}
	if got, ok := env.secretOf(v6, "A"); !ok || got != "1" {
		t.Errorf("secret delete removed A of version 6: %q", got)
	}
	checkDeployed(t, env, script, v8, 8)
	if got := env.secretNames(script); !slices.Equal(got, []string{"B", "DATABASE_URL", "api_key"}) {
		t.Errorf("secret list after delete = %v", got)
	}
	// The deleted secret does not come back with the next deploy.
	env.deployHello(script)
	if got := bindingNames(env.latest(script)); !slices.Equal(got, []string{"B", "DATABASE_URL", "api_key"}) {
		t.Errorf("bindings after deploy = %v", got)
	}
	before = env.snapshot()
	env.fails(env.call(http.MethodDelete, "/scripts/"+script+"/secrets/A", nil), http.StatusNotFound, store.CodeSecretNotFound, "not found")
	env.fails(env.call(http.MethodDelete, "/scripts/"+script+"/secrets/GREETING", nil), http.StatusNotFound, store.CodeSecretNotFound, "not found")
	env.unchanged(before)

	env.noValueIn(dbURL)
	env.noValueIn("three")
}

func TestScriptsKeepAndInheritBindings(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t).withKVNamespace()
	const script = "keep-app"
	env.deployHello(script,
		map[string]any{"name": "GREETING", "type": "plain_text", "text": "hello"},
		map[string]any{"name": "CONF", "type": "json", "json": map[string]int{"a": 1}},
		map[string]any{"name": "MYKV", "type": "kv_namespace", "namespace_id": "d5d2b0405f5ff994b5805e2a7e9068ca"})
	env.must(env.call(http.MethodPut, "/scripts/"+script+"/secrets", map[string]string{"name": "TOKEN", "text": "tok", "type": "secret_text"}))

	put := func(meta map[string]any) scReply {
		return env.upload(http.MethodPut, "/scripts/"+script+"?bindings_inherit=strict", meta, esm("index.js", helloESM))
	}
	withKeep := func(keep []string, bindings ...map[string]any) map[string]any {
		m := esmMeta(bindings...)
		if keep != nil {
			m["keep_bindings"] = keep
		}
		return m
	}

	// keep_bindings ["plain_text"] carries the plain vars only (and the secret, always).
	env.must(put(withKeep([]string{"plain_text"})))
	if got := bindingNames(env.latest(script)); !slices.Equal(got, []string{"GREETING", "TOKEN"}) {
		t.Errorf("keep plain_text: bindings = %v", got)
	}
	// wrangler's --keep-vars: plain_text and json.
	env.deployHello(script,
		map[string]any{"name": "GREETING", "type": "plain_text", "text": "hello"},
		map[string]any{"name": "CONF", "type": "json", "json": map[string]int{"a": 1}},
		map[string]any{"name": "MYKV", "type": "kv_namespace", "namespace_id": "d5d2b0405f5ff994b5805e2a7e9068ca"})
	env.must(put(withKeep([]string{"plain_text", "json", "secret_text", "secret_key"})))
	v := env.latest(script)
	if got := bindingNames(v); !slices.Equal(got, []string{"CONF", "GREETING", "TOKEN"}) {
		t.Errorf("keep vars: bindings = %v", got)
	}
	if b := bindingByName(v, "CONF"); b == nil || b.JSON == nil || string(b.JSON.Raw) != `{"a":1}` {
		t.Errorf("CONF = %+v", b)
	}
	// Without keep_bindings the vars are dropped; the secret stays.
	env.must(put(withKeep(nil)))
	if got := bindingNames(env.latest(script)); !slices.Equal(got, []string{"TOKEN"}) {
		t.Errorf("no keep: bindings = %v", got)
	}

	// inherit resolves from the previous version.
	env.deployHello(script, map[string]any{"name": "AUTO_KV", "type": "kv_namespace", "namespace_id": scKVNamespace})
	env.must(put(withKeep(nil,
		map[string]any{"name": "AUTO_KV", "type": "inherit"},
		map[string]any{"name": "TOKEN", "type": "inherit"},
		map[string]any{"name": "NEW", "type": "plain_text", "text": "n"})))
	v = env.latest(script)
	if b := bindingByName(v, "AUTO_KV"); b == nil || b.Type != "kv_namespace" || b.NamespaceID != scKVNamespace {
		t.Errorf("inherited AUTO_KV = %+v", b)
	}
	if b := bindingByName(v, "TOKEN"); b == nil || b.SecretRef == nil {
		t.Errorf("inherited TOKEN = %+v", b)
	}
	// A secret_text without text (secrets.required) is an inherit of the secret.
	env.must(put(withKeep(nil, map[string]any{"name": "TOKEN", "type": "secret_text"})))
	if b := bindingByName(env.latest(script), "TOKEN"); b == nil || b.SecretRef == nil {
		t.Errorf("TOKEN without text = %+v", b)
	}
	if got, _ := env.secretOf(env.latest(script), "TOKEN"); got != "tok" || len(env.secret(script).Data) != 1 {
		t.Errorf("Secret changed: %q", env.secret(script).Data)
	}

	// Unresolvable inherit: 400 + 10057 with wrangler's exact message; nothing written.
	for _, c := range []struct {
		name     string
		binding  map[string]any
		script   string
		wantName string
	}{
		{"unknown name", map[string]any{"name": "MISSING_KV", "type": "inherit"}, script, "MISSING_KV"},
		{"no previous version", map[string]any{"name": "AUTO_KV", "type": "inherit"}, "brand-new", "AUTO_KV"},
		{"required secret never set", map[string]any{"name": "NOT_SET", "type": "secret_text"}, script, "NOT_SET"},
		{"required secret that is a var", map[string]any{"name": "NEW", "type": "secret_text"}, script, "NEW"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := env.sub(t)
			before := env.snapshot()
			for _, method := range []string{http.MethodPut, http.MethodPost} {
				p := "/scripts/" + c.script + "?bindings_inherit=strict"
				if method == http.MethodPost {
					p = "/scripts/" + c.script + "/versions?bindings_inherit=strict"
				}
				r := env.upload(method, p, esmMeta(c.binding), esm("index.js", helloESM))
				env.fails(r, http.StatusBadRequest, store.CodeInheritBinding, "")
				if want := "inherit binding '" + c.wantName + "' is invalid"; r.msg() != want {
					t.Errorf("message = %q, want %q", r.msg(), want)
				}
			}
			env.unchanged(before)
		})
	}
}

// badUploadCase is one refused upload.
type badUploadCase struct {
	name        string
	body        func() ([]byte, string) // body and content type
	status      int
	code        int
	msg         string // substring of errors[0].message
	freshScript bool   // also refused as the first upload of a new script
}

func badUploadCases() []badUploadCase {
	form := func(meta any, parts ...scPart) func() ([]byte, string) {
		return func() ([]byte, string) { return wranglerForm(meta, parts...) }
	}
	hello := esm("index.js", helloESM)
	truncate := func(cut func(body []byte, boundary string) []byte) func() ([]byte, string) {
		return func() ([]byte, string) {
			boundary := undiciBoundary()
			meta, _ := json.Marshal(esmMeta())
			body, ct := formWith(boundary, scPart{name: "metadata", data: string(meta)}, hello, esm("lib.js", "export const x = 1;"))
			return cut(body, boundary), ct
		}
	}
	bindings := func(bs ...map[string]any) map[string]any { return esmMeta(bs...) }
	const bad, val, large = http.StatusBadRequest, store.CodeScriptValidation, http.StatusRequestEntityTooLarge
	big := strings.Repeat("x", store.MaxScriptSize-len(helloESM)+1)
	return []badUploadCase{
		{name: "not multipart", body: func() ([]byte, string) { return []byte(`{"main_module":"index.js"}`), "application/json" },
			status: bad, code: store.CodeBadRequest, msg: "multipart/form-data"},
		{name: "no content type", body: func() ([]byte, string) { b, _ := wranglerForm(esmMeta(), hello); return b, "" },
			status: bad, code: store.CodeBadRequest, msg: "multipart/form-data"},
		{name: "multipart without boundary", body: func() ([]byte, string) { b, _ := wranglerForm(esmMeta(), hello); return b, "multipart/form-data" },
			status: bad, code: store.CodeBadRequest, msg: "boundary"},
		{name: "wrong boundary", body: func() ([]byte, string) {
			b, _ := wranglerForm(esmMeta(), hello)
			return b, "multipart/form-data; boundary=----formdata-undici-099999999999"
		}, status: bad, code: store.CodeBadRequest, msg: "malformed multipart"},
		{name: "empty body", body: func() ([]byte, string) { return nil, "multipart/form-data; boundary=" + undiciBoundary() },
			status: bad, code: store.CodeBadRequest, msg: "malformed multipart"},
		{name: "truncated inside the metadata", body: truncate(func(b []byte, _ string) []byte { return b[:80] }),
			status: bad, code: store.CodeBadRequest, msg: "malformed multipart"},
		{name: "truncated inside a module", body: truncate(func(b []byte, _ string) []byte {
			return b[:strings.Index(string(b), "index_default as default")]
		}), status: bad, code: store.CodeBadRequest, msg: "malformed multipart"},
		{name: "truncated after a part's boundary line", body: truncate(func(b []byte, boundary string) []byte {
			i := strings.LastIndex(string(b), "--"+boundary+"\r\n")
			return b[:i+len(boundary)+4]
		}), status: bad, code: store.CodeBadRequest, msg: "malformed multipart"},
		{name: "truncated before the closing boundary", body: truncate(func(b []byte, boundary string) []byte {
			return b[:strings.LastIndex(string(b), "--"+boundary+"--")]
		}), status: bad, code: store.CodeBadRequest, msg: "malformed multipart"},
		{name: "closing boundary without its dashes", body: truncate(func(b []byte, boundary string) []byte {
			return []byte(strings.TrimSuffix(string(b), "--\r\n") + "\r\n")
		}), status: bad, code: store.CodeBadRequest, msg: "malformed multipart"},
		{name: "missing metadata part", body: func() ([]byte, string) { return formWith(undiciBoundary(), hello) },
			status: bad, code: val, msg: `no "metadata" part`},
		{name: "two metadata parts", body: func() ([]byte, string) {
			meta, _ := json.Marshal(esmMeta())
			return formWith(undiciBoundary(), scPart{name: "metadata", data: string(meta)}, scPart{name: "metadata", data: `{"main_module":"x.js"}`}, hello)
		}, status: bad, code: val, msg: `two "metadata" parts`},
		{name: "metadata not JSON", body: form(`{"main_module":"index.js",`, hello), status: bad, code: val, msg: "metadata is not valid JSON"},
		{name: "metadata is a JSON array", body: form(`[]`, hello), status: bad, code: val, msg: "metadata is not valid JSON"},
		{name: "metadata with trailing data", body: form(`{"main_module":"index.js"} {}`, hello), status: bad, code: val, msg: "metadata is not valid JSON"},
		{name: "neither main_module nor body_part", body: form(map[string]any{"bindings": []any{}}, hello), status: bad, code: val, msg: "exactly one of main_module"},
		{name: "both main_module and body_part", body: form(map[string]any{"main_module": "index.js", "body_part": "index.js"}, hello), status: bad, code: val, msg: "exactly one of main_module"},
		{name: "no modules", body: form(esmMeta()), status: bad, code: val, msg: "no modules"},
		{name: "main module not among parts", body: form(map[string]any{"main_module": "main.js"}, hello), status: bad, code: val, msg: `"main.js" is not among the uploaded parts`},
		{name: "main module with ./ not matching", body: form(map[string]any{"main_module": "./index.js"}, hello), status: bad, code: val, msg: "not among the uploaded parts"},
		{name: "body_part not among parts", body: form(map[string]any{"body_part": "worker.js"}, hello), status: bad, code: val, msg: "not among the uploaded parts"},
		{name: "body_part is an ES module", body: form(map[string]any{"body_part": "index.js"}, hello), status: bad, code: val, msg: "must be application/javascript"},
		{name: "main module is text", body: form(map[string]any{"main_module": "a.txt"}, scPart{name: "a.txt", ct: "text/plain", data: "x"}), status: bad, code: val, msg: "must be a JavaScript module"},
		{name: "path traversal ../x.js", body: form(esmMeta(), hello, esm("../x.js", "x")), status: bad, code: val, msg: "invalid module name"},
		{name: "absolute module name", body: form(esmMeta(), hello, esm("/abs.js", "x")), status: bad, code: val, msg: "invalid module name"},
		{name: "path traversal a/../../b", body: form(esmMeta(), hello, esm("a/../../b", "x")), status: bad, code: val, msg: "invalid module name"},
		{name: "path traversal ./../x.js", body: form(esmMeta(), hello, esm("./../x.js", "x")), status: bad, code: val, msg: "invalid module name"},
		{name: "non-canonical a//b.js", body: form(esmMeta(), hello, esm("a//b.js", "x")), status: bad, code: val, msg: "invalid module name"},
		{name: "module name ..", body: form(esmMeta(), hello, esm("..", "x")), status: bad, code: val, msg: "invalid module name"},
		{name: "module name .", body: form(esmMeta(), hello, esm(".", "x")), status: bad, code: val, msg: "invalid module name"},
		{name: "backslash in module name", body: form(esmMeta(), hello, esm(`a\..\..\b.js`, "x")), status: bad, code: val, msg: "invalid module name"},
		{name: "main module with traversal", body: form(map[string]any{"main_module": "../index.js"}, esm("../index.js", helloESM)), status: bad, code: val, msg: "invalid module name"},
		{name: "duplicate module", body: form(esmMeta(), hello, esm("lib.js", "a"), esm("lib.js", "b")), status: bad, code: val, msg: `"lib.js" is uploaded twice`},
		{name: "duplicate main module", body: form(esmMeta(), hello, hello), status: bad, code: val, msg: "uploaded twice"},
		{name: "unsupported part content type", body: form(esmMeta(), hello, scPart{name: "logo.png", ct: "image/png", data: "png"}), status: bad, code: val, msg: "unsupported content type"},
		{name: "content type over 256 characters", body: form(esmMeta(), hello, scPart{name: "a.txt", ct: "text/plain; x=" + strings.Repeat("y", 250), data: "a"}), status: bad, code: val, msg: "unsupported content type"},
		{name: "oversize upload", body: form(esmMeta(), hello, scPart{name: "big.txt", ct: "text/plain", data: big}), status: large, code: store.CodeTooLarge, msg: "larger than"},
		{name: "unknown binding type queue", body: form(bindings(map[string]any{"name": "Q", "type": "queue", "queue_name": "q"}), hello), status: bad, code: store.CodeBadRequest, msg: `type "queue", which octo does not support`},
		{name: "r2_bucket without bucket_name", body: form(bindings(map[string]any{"name": "B", "type": "r2_bucket"}), hello), status: bad, code: val, msg: "no bucket_name"},
		{name: "d1 without id", body: form(bindings(map[string]any{"name": "DB", "type": "d1"}), hello), status: bad, code: val, msg: "has no id"},
		{name: "kv namespace of no one", body: form(bindings(map[string]any{"name": "KV", "type": "kv_namespace", "namespace_id": "0123456789abcdef0123456789abcdef"}), hello), status: bad, code: store.CodeKVBadNamespaceID, msg: "KV namespace '0123456789abcdef0123456789abcdef' is not valid."},
		{name: "service binding to a missing script", body: form(bindings(map[string]any{"name": "S", "type": "service", "service": "nobody-here"}), hello), status: bad, code: store.CodeServiceBindingTarget, msg: "Target script 'nobody-here' not found"},
		{name: "durable object binding without a migration", body: form(bindings(map[string]any{"name": "C", "type": "durable_object_namespace", "class_name": "Counter"}), hello), status: bad, code: store.CodeObjectBinding, msg: "Cannot create binding for class 'Counter' because it is not currently configured to implement Durable Objects"},
		{name: "durable object of another script", body: form(bindings(map[string]any{"name": "C", "type": "durable_object_namespace", "class_name": "Counter", "script_name": "other"}), hello), status: bad, code: store.CodeBadRequest, msg: "only for the script that defines them"},
		{name: "containers", body: form(map[string]any{"main_module": "index.js", "containers": []any{map[string]any{"class_name": "C"}}}, hello), status: bad, code: store.CodeBadRequest, msg: "containers are not supported"},
		{name: "static assets with a forged token", body: form(map[string]any{"main_module": "index.js", "assets": map[string]any{"jwt": "x"}}, hello), status: bad, code: store.CodeAssets, msg: "completion token is not valid"},
		{name: "invalid binding name", body: form(bindings(map[string]any{"name": "MY-VAR", "type": "plain_text", "text": "x"}), hello), status: bad, code: val, msg: "invalid binding name"},
		{name: "duplicate binding", body: form(bindings(map[string]any{"name": "A", "type": "plain_text", "text": "x"}, map[string]any{"name": "A", "type": "json", "json": 1}), hello), status: bad, code: val, msg: "defined twice"},
		{name: "plain_text without text", body: form(bindings(map[string]any{"name": "A", "type": "plain_text"}), hello), status: bad, code: val, msg: "has no text"},
		{name: "json without value", body: form(bindings(map[string]any{"name": "A", "type": "json"}), hello), status: bad, code: val, msg: "no valid json"},
		{name: "kv without namespace id", body: form(bindings(map[string]any{"name": "KV", "type": "kv_namespace"}), hello), status: bad, code: val, msg: "no namespace_id"},
		{name: "text_blob naming a missing part", body: form(bindings(map[string]any{"name": "T", "type": "text_blob", "part": "t.txt"}), hello), status: bad, code: val, msg: "was not uploaded"},
		{name: "compatibility date 2025-13-45", body: form(map[string]any{"main_module": "index.js", "compatibility_date": "2025-13-45"}, hello), status: bad, code: val, msg: "not a valid date"},
		{name: "compatibility date 20250101", body: form(map[string]any{"main_module": "index.js", "compatibility_date": "20250101"}, hello), status: bad, code: val, msg: "not a date"},
		{name: "compatibility date with time", body: form(map[string]any{"main_module": "index.js", "compatibility_date": "2025-01-01T00:00:00Z"}, hello), status: bad, code: val, msg: "not a date"},
		{name: "compatibility date of wrong type", body: form(`{"main_module":"index.js","compatibility_date":20250101}`, hello), status: bad, code: val, msg: "metadata is not valid JSON"},
		{name: "invalid compatibility flag", body: form(map[string]any{"main_module": "index.js", "compatibility_flags": []string{"nodejs compat"}}, hello), status: bad, code: val, msg: "invalid compatibility flag"},
		{name: "cpu_ms 0", body: form(`{"main_module":"index.js","limits":{"cpu_ms":0}}`, hello), status: bad, code: val, msg: "limits.cpu_ms must be an integer number of milliseconds from 1 to 300000"},
		{name: "cpu_ms negative", body: form(`{"main_module":"index.js","limits":{"cpu_ms":-5}}`, hello), status: bad, code: val, msg: "limits.cpu_ms must be an integer number of milliseconds from 1 to 300000"},
		{name: "cpu_ms over 5 minutes", body: form(`{"main_module":"index.js","limits":{"cpu_ms":300001}}`, hello), status: bad, code: val, msg: "limits.cpu_ms must be an integer number of milliseconds from 1 to 300000"},
		{name: "cpu_ms not an integer", body: form(`{"main_module":"index.js","limits":{"cpu_ms":1.5}}`, hello), status: bad, code: val, msg: "limits.cpu_ms must be an integer number of milliseconds from 1 to 300000"},
		{name: "cpu_ms in exponent form", body: form(`{"main_module":"index.js","limits":{"cpu_ms":1e3}}`, hello), status: bad, code: val, msg: "limits.cpu_ms must be an integer number of milliseconds from 1 to 300000"},
		{name: "cpu_ms a string", body: form(`{"main_module":"index.js","limits":{"cpu_ms":"50"}}`, hello), status: bad, code: val, msg: "limits.cpu_ms must be an integer number of milliseconds from 1 to 300000"},
		{name: "cpu_ms an object", body: form(`{"main_module":"index.js","limits":{"cpu_ms":{"ms":50}}}`, hello), status: bad, code: val, msg: "limits.cpu_ms must be an integer number of milliseconds from 1 to 300000"},
	}
}

func TestScriptsBadUploads(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	const existing = "existing"
	env.deployHello(existing, map[string]any{"name": "GREETING", "type": "plain_text", "text": "hello"})
	env.must(env.call(http.MethodPut, "/scripts/"+existing+"/secrets", map[string]string{"name": "TOKEN", "text": "tok", "type": "secret_text"}))
	for i, c := range badUploadCases() {
		t.Run(c.name, func(t *testing.T) {
			env := env.sub(t)
			targets := []struct{ method, path string }{
				{http.MethodPut, "/scripts/" + existing + "?excludeScript=true&bindings_inherit=strict"},
				{http.MethodPost, "/scripts/" + existing + "/versions?bindings_inherit=strict"},
				{http.MethodPut, fmt.Sprintf("/scripts/fresh-%d", i)},
				{http.MethodPost, fmt.Sprintf("/scripts/fresh-%d/versions", i)},
			}
			for _, tg := range targets {
				before := env.snapshot()
				body, ct := c.body()
				r := env.send(scReq{method: tg.method, path: tg.path, body: body, contentType: ct})
				env.fails(r, c.status, c.code, c.msg)
				env.unchanged(before)
			}
		})
	}
}

func TestScriptsBadRequests(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	const script = "bad-req"
	env.deployHello(script, map[string]any{"name": "GREETING", "type": "plain_text", "text": "hello"})
	env.must(env.call(http.MethodPut, "/scripts/"+script+"/secrets", map[string]string{"name": "TOKEN", "text": "tok", "type": "secret_text"}))
	env.must(env.upload(http.MethodPost, "/scripts/"+script+"/versions", esmMeta(), esm("index.js", helloESM)))
	vs := env.versions(script)
	a, b := vs[0].Spec.VersionID, vs[len(vs)-1].Spec.VersionID
	pct := func(pairs ...any) map[string]any {
		var vv []map[string]any
		for i := 0; i < len(pairs); i += 2 {
			vv = append(vv, map[string]any{"version_id": pairs[i], "percentage": pairs[i+1]})
		}
		return map[string]any{"strategy": "percentage", "versions": vv, "annotations": map[string]string{}}
	}
	bulk := func(bs ...map[string]any) func() ([]byte, string) {
		return func() ([]byte, string) { return settingsForm(t, bs) }
	}
	jsonBody := func(v any) func() ([]byte, string) {
		return func() ([]byte, string) {
			if s, ok := v.(string); ok {
				return []byte(s), "application/json"
			}
			b, _ := json.Marshal(v)
			return b, "application/json"
		}
	}
	sp := "/scripts/" + script
	cases := []struct {
		name, method, path string
		body               func() ([]byte, string)
		status, code       int
		msg                string
	}{
		// deployments
		{"deployment: invalid JSON", "POST", sp + "/deployments", jsonBody(`{"versions":[`), 400, store.CodeBadRequest, "invalid JSON"},
		{"deployment: not JSON at all", "POST", sp + "/deployments", jsonBody(`versions=1`), 400, store.CodeBadRequest, "invalid JSON"},
		{"deployment: percentages sum to 90", "POST", sp + "/deployments", jsonBody(pct(a, 30, b, 60)), 400, store.CodeBadDeployment, "add up to 100"},
		{"deployment: percentages sum to 110", "POST", sp + "/deployments", jsonBody(pct(a, 50, b, 60)), 400, store.CodeBadDeployment, "add up to 100"},
		{"deployment: single version at 50", "POST", sp + "/deployments", jsonBody(pct(a, 50)), 400, store.CodeBadDeployment, "add up to 100"},
		{"deployment: three versions", "POST", sp + "/deployments", jsonBody(pct(a, 30, b, 30, vs[1].Spec.VersionID, 40)), 400, store.CodeBadDeployment, "1 or 2 versions"},
		{"deployment: no versions", "POST", sp + "/deployments", jsonBody(pct()), 400, store.CodeBadDeployment, "1 or 2 versions"},
		{"deployment: unknown version", "POST", sp + "/deployments", jsonBody(pct(uuid.NewString(), 100)), 404, store.CodeVersionNotFound, "not found"},
		{"deployment: garbage version id", "POST", sp + "/deployments", jsonBody(pct("nope", 100)), 404, store.CodeVersionNotFound, "not found"},
		{"deployment: duplicate version", "POST", sp + "/deployments", jsonBody(pct(a, 50, strings.ReplaceAll(a, "-", ""), 50)), 400, store.CodeBadDeployment, "listed twice"},
		{"deployment: missing percentage", "POST", sp + "/deployments", jsonBody(`{"versions":[{"version_id":"` + a + `"}]}`), 400, store.CodeBadDeployment, "percentage"},
		{"deployment: negative percentage", "POST", sp + "/deployments", jsonBody(pct(a, -10, b, 110)), 400, store.CodeBadDeployment, "between 0 and 100"},
		{"deployment: fractional percentage", "POST", sp + "/deployments", jsonBody(pct(a, 33.5, b, 66.5)), 400, store.CodeBadRequest, "invalid JSON"},
		{"deployment: unknown strategy", "POST", sp + "/deployments", jsonBody(map[string]any{"strategy": "immediate", "versions": []map[string]any{{"version_id": a, "percentage": 100}}}), 400, store.CodeBadDeployment, "strategy"},
		{"deployment: missing script", "POST", "/scripts/nope/deployments", jsonBody(pct(a, 100)), 404, store.CodeNotFound, "does not exist"},
		// secrets
		{"secret: invalid JSON", "PUT", sp + "/secrets", jsonBody(`{"name":"A",`), 400, store.CodeBadRequest, "invalid JSON"},
		{"secret: empty body", "PUT", sp + "/secrets", jsonBody(``), 400, store.CodeBadRequest, "invalid JSON"},
		{"secret: invalid name", "PUT", sp + "/secrets", jsonBody(map[string]string{"name": "MY-SECRET", "text": "x", "type": "secret_text"}), 400, store.CodeBadRequest, "invalid secret name"},
		{"secret: empty name", "PUT", sp + "/secrets", jsonBody(map[string]string{"name": "", "text": "x", "type": "secret_text"}), 400, store.CodeBadRequest, "invalid secret name"},
		{"secret: name with $", "PUT", sp + "/secrets", jsonBody(map[string]string{"name": "$X", "text": "x", "type": "secret_text"}), 400, store.CodeBadRequest, "invalid secret name"},
		{"secret: name of 254 characters", "PUT", sp + "/secrets", jsonBody(map[string]string{"name": strings.Repeat("S", 254), "text": "x", "type": "secret_text"}), 400, store.CodeBadRequest, "invalid secret name"},
		{"secret: no text", "PUT", sp + "/secrets", jsonBody(map[string]string{"name": "A", "type": "secret_text"}), 400, store.CodeBadRequest, `"text"`},
		{"secret: secret_key", "PUT", sp + "/secrets", jsonBody(map[string]string{"name": "A", "text": "x", "type": "secret_key"}), 400, store.CodeBadRequest, "secret_key"},
		{"secret: plain_text type", "PUT", sp + "/secrets", jsonBody(map[string]string{"name": "A", "text": "x", "type": "plain_text"}), 400, store.CodeBadRequest, "secret_text"},
		{"secret: missing script", "PUT", "/scripts/nope/secrets", jsonBody(map[string]string{"name": "A", "text": "x", "type": "secret_text"}), 404, store.CodeNotFound, "does not exist"},
		{"secret put: latest version not deployed", "PUT", sp + "/secrets", jsonBody(map[string]string{"name": "NEW", "text": "x", "type": "secret_text"}), 400, store.CodeSecretEditNotDeployed, "latest version of your Worker isn't currently deployed"},
		{"secret delete: latest version not deployed", "DELETE", sp + "/secrets/TOKEN", nil, 400, store.CodeSecretEditNotDeployed, "latest version of your Worker isn't currently deployed"},
		{"secret bulk: latest version not deployed", "PATCH", sp + "/settings", bulk(map[string]any{"type": "plain_text", "name": "GREETING"}, map[string]any{"type": "secret_text", "name": "TOKEN", "text": "new"}), 400, store.CodeSettingsEditNotDeployed, "latest version isn't currently deployed"},
		{"secret delete: missing script", "DELETE", "/scripts/nope/secrets/A", nil, 404, store.CodeNotFound, "does not exist"},
		{"secret list: missing script", "GET", "/scripts/nope/secrets", nil, 404, store.CodeNotFound, "does not exist"},
		// settings (secret bulk)
		{"settings: no settings part", "PATCH", sp + "/settings", func() ([]byte, string) { return formWith(undiciBoundary(), scPart{name: "other", data: "{}"}) }, 400, store.CodeBadRequest, `no "settings" part`},
		{"settings: not JSON", "PATCH", sp + "/settings", func() ([]byte, string) { return formWith(undiciBoundary(), scPart{name: "settings", data: "{"}) }, 400, store.CodeBadRequest, "not valid JSON"},
		{"settings: not multipart", "PATCH", sp + "/settings", func() ([]byte, string) { return []byte("{}"), "text/plain" }, 400, store.CodeBadRequest, "multipart"},
		{"settings: invalid binding name", "PATCH", sp + "/settings", bulk(map[string]any{"type": "secret_text", "name": "A-B", "text": "x"}), 400, store.CodeBadRequest, "invalid binding name"},
		{"settings: secret name with $", "PATCH", sp + "/settings", bulk(map[string]any{"type": "secret_text", "name": "TOKEN"}, map[string]any{"type": "secret_text", "name": "$X", "text": "x"}), 400, store.CodeBadRequest, "invalid secret name"},
		{"settings: duplicate binding", "PATCH", sp + "/settings", bulk(map[string]any{"type": "secret_text", "name": "A", "text": "1"}, map[string]any{"type": "secret_text", "name": "A", "text": "2"}), 400, store.CodeBadRequest, "twice"},
		{"settings: missing script", "PATCH", "/scripts/nope/settings", bulk(map[string]any{"type": "secret_text", "name": "A", "text": "x"}), 404, store.CodeNotFound, "does not exist"},
		// script names
		{"name: uppercase", "PUT", "/scripts/Hello", nil, 400, store.CodeBadRequest, "invalid script name"},
		{"name: 64 characters", "PUT", "/scripts/" + strings.Repeat("a", 64), nil, 400, store.CodeBadRequest, "invalid script name"},
		{"name: leading dash", "PUT", "/scripts/-hello", nil, 400, store.CodeBadRequest, "invalid script name"},
		{"name: leading underscore", "PUT", "/scripts/_hello", nil, 400, store.CodeBadRequest, "invalid script name"},
		{"name: unicode", "PUT", "/scripts/h%C3%A9llo", nil, 400, store.CodeBadRequest, "invalid script name"},
		{"name: dot", "PUT", "/scripts/a.b", nil, 400, store.CodeBadRequest, "invalid script name"},
		{"name: encoded slash", "PUT", "/scripts/a%2Fb", nil, 400, store.CodeBadRequest, "invalid script name"},
		{"name: encoded traversal", "PUT", "/scripts/..%2F..%2Fx", nil, 400, store.CodeBadRequest, "invalid script name"},
		{"name: on versions", "POST", "/scripts/Hello/versions", nil, 400, store.CodeBadRequest, "invalid script name"},
		{"name: on secrets", "PUT", "/scripts/Hello/secrets", jsonBody(map[string]string{"name": "A", "text": "x", "type": "secret_text"}), 400, store.CodeBadRequest, "invalid script name"},
		{"name: GET services", "GET", "/services/Hello", nil, 400, store.CodeBadRequest, "invalid script name"},
		{"name: DELETE services", "DELETE", "/services/-x", nil, 400, store.CodeBadRequest, "invalid script name"},
		// routes
		{"unknown route", "GET", "/nope", nil, 404, 7003, "No route"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := env.sub(t)
			before := env.snapshot()
			var body []byte
			var ct string
			if c.body != nil {
				body, ct = c.body()
			} else if c.method == http.MethodPut || c.method == http.MethodPost {
				body, ct = wranglerForm(esmMeta(), esm("index.js", helloESM))
			}
			env.fails(env.send(scReq{method: c.method, path: c.path, body: body, contentType: ct}), c.status, c.code, c.msg)
			env.unchanged(before)
		})
	}

	// Authentication and accounts: nothing is written either.
	t.Run("auth and accounts", func(t *testing.T) {
		env := env.sub(t)
		before := env.snapshot()
		body, ct := wranglerForm(esmMeta(), esm("index.js", helloESM))
		acctPath := BasePath + "/accounts/" + env.acct.ID + "/workers/scripts/" + script
		for _, c := range []struct {
			name   string
			token  string
			header string // raw Authorization header, when set
			path   string
			status int
			code   int
			msg    string
		}{
			{name: "missing token", token: "", path: acctPath, status: 400, code: store.CodeAuthentication, msg: "missing Authorization"},
			{name: "wrong token", token: "wrong", path: acctPath, status: 400, code: store.CodeAuthentication, msg: "invalid API token"},
			{name: "token prefix", token: scToken[:5], path: acctPath, status: 400, code: store.CodeAuthentication, msg: "invalid API token"},
			{name: "basic auth", header: "Basic " + scToken, path: acctPath, status: 400, code: store.CodeAuthentication, msg: "missing Authorization"},
			{name: "unknown account", token: scToken, path: BasePath + "/accounts/0123456789abcdef0123456789abcdef/workers/scripts/" + script, status: 404, code: 7003, msg: "Could not route"},
			{name: "unknown account, wrong token", token: "wrong", path: BasePath + "/accounts/0123456789abcdef0123456789abcdef/workers/scripts/" + script, status: 400, code: store.CodeAuthentication, msg: "invalid API token"},
		} {
			for _, method := range []string{http.MethodPut, http.MethodDelete} {
				tok := c.token
				r := scReq{method: method, path: c.path, abs: true, body: body, contentType: ct, token: &tok}
				if c.header != "" {
					none := ""
					r.token = &none
				}
				var got scReply
				if c.header != "" {
					got = env.sendWithAuth(r, c.header)
				} else {
					got = env.send(r)
				}
				if got.Status != c.status || got.Success || got.code() != c.code || !strings.Contains(got.msg(), c.msg) {
					t.Errorf("%s %s: answer %d %s, want %d/%d %q", c.name, method, got.Status, got.Body, c.status, c.code, c.msg)
				}
			}
		}
		env.unchanged(before)
	})
}

// TestScriptsObjectsAdmitted runs uploads whose stored objects hit limits of
// the CRDs, Kubernetes names or S3: each is refused with a 4xx or stored
// with valid objects, never a 500.
func TestScriptsObjectsAdmitted(t *testing.T) {
	t.Parallel()
	hello := esm("index.js", helloESM)
	flags := make([]string, 129)
	for i := range flags {
		flags[i] = fmt.Sprintf("flag_%d", i)
	}
	cases := []struct {
		name   string
		script string
		meta   any
		parts  []scPart
		status int // 200 or the refusal
		msg    string
	}{
		{name: "underscore name", script: "my_worker", meta: esmMeta(), parts: []scPart{hello}, status: 200},
		{name: "trailing underscore", script: "worker_", meta: esmMeta(), parts: []scPart{hello}, status: 200},
		{name: "trailing dash", script: "worker-", meta: esmMeta(), parts: []scPart{hello}, status: 200},
		{name: "double dash", script: "a--b", meta: esmMeta(), parts: []scPart{hello}, status: 200},
		{name: "63 characters", script: strings.Repeat("a", 63), meta: esmMeta(), parts: []scPart{hello}, status: 200},
		{name: "63 characters with underscore", script: "a_" + strings.Repeat("b", 61), meta: esmMeta(), parts: []scPart{hello}, status: 200},
		{name: "63 characters ending in dash", script: strings.Repeat("c", 62) + "-", meta: esmMeta(), parts: []scPart{hello}, status: 200},
		{name: "digits only", script: "123", meta: esmMeta(), parts: []scPart{hello}, status: 200},
		{name: "128 compatibility flags", script: "flags-ok", meta: map[string]any{"main_module": "index.js", "compatibility_flags": flags[:128]}, parts: []scPart{hello}, status: 200},
		{name: "129 compatibility flags", script: "flags", meta: map[string]any{"main_module": "index.js", "compatibility_flags": flags}, parts: []scPart{hello}, status: 400, msg: "compatibility flags"},
		{name: "64 KiB plain_text", script: "text-ok", meta: esmMeta(map[string]any{"name": "V", "type": "plain_text", "text": strings.Repeat("v", 64<<10)}), parts: []scPart{hello}, status: 200},
		{name: "plain_text over 64 KiB", script: "text", meta: esmMeta(map[string]any{"name": "V", "type": "plain_text", "text": strings.Repeat("v", 64<<10+1)}), parts: []scPart{hello}, status: 400, msg: "too long"},
		{name: "long namespace id", script: "kv", meta: esmMeta(map[string]any{"name": "KV", "type": "kv_namespace", "namespace_id": strings.Repeat("a", 65)}), parts: []scPart{hello}, status: 400, msg: "namespace_id"},
		{name: "json null var", script: "json-null", meta: esmMeta(map[string]any{"name": "J", "type": "json", "json": nil}), parts: []scPart{hello}, status: 400, msg: "no valid json"},
		{name: "json string var", script: "json-str", meta: esmMeta(map[string]any{"name": "J", "type": "json", "json": "s"}), parts: []scPart{hello}, status: 200},
		{name: "binding name with $", script: "dollar", meta: esmMeta(map[string]any{"name": "$x", "type": "plain_text", "text": "x"}), parts: []scPart{hello}, status: 200},
		{name: "secret binding name with $", script: "dollar-secret", meta: esmMeta(map[string]any{"name": "$x", "type": "secret_text", "text": "x"}), parts: []scPart{hello}, status: 400, msg: "secret name"},
		{name: "secret binding name too long for its key", script: "long-secret", meta: esmMeta(map[string]any{"name": strings.Repeat("S", store.MaxSecretName+1), "type": "secret_text", "text": "x"}), parts: []scPart{hello}, status: 400, msg: "secret name"},
		{name: "secret binding name of the longest length", script: "long-secret-ok", meta: esmMeta(map[string]any{"name": strings.Repeat("S", store.MaxSecretName), "type": "secret_text", "text": "x"}), parts: []scPart{hello}, status: 200},
		{name: "module name of 300 characters", script: "long-module", meta: esmMeta(), parts: []scPart{hello, esm(strings.Repeat("m", 297)+".js", "x")}, status: 200},
		{name: "module name of 1024 characters with slashes", script: "deep-module", meta: esmMeta(), parts: []scPart{hello, esm(strings.Repeat("d/", 510)+"x.js", "x")}, status: 200},
		{name: "module names a and a/b", script: "file-dir", meta: esmMeta(), parts: []scPart{hello, esm("lib", "x"), esm("lib/x.js", "y")}, status: 200},
		{name: "module names differing in case", script: "case", meta: esmMeta(), parts: []scPart{hello, esm("Lib.js", "x"), esm("lib.js", "y")}, status: 200},
		{name: "module name with spaces and percent", script: "odd-module", meta: esmMeta(), parts: []scPart{hello, {name: "./a b%20c?.txt", ct: "text/plain", data: "z"}}, status: 200},
		{name: "content type with parameters", script: "ct-params", meta: esmMeta(), parts: []scPart{hello, {name: "a.txt", ct: "text/plain; charset=utf-8", data: "a"}}, status: 200},
		{name: "module name with unicode", script: "unicode-module", meta: esmMeta(), parts: []scPart{hello, {name: "données/é.txt", ct: "text/plain", data: "z"}}, status: 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := newScriptsEnv(t)
			before := env.snapshot()
			r := env.upload(http.MethodPut, "/scripts/"+c.script, c.meta, c.parts...)
			if c.status != http.StatusOK {
				env.fails(r, c.status, r.code(), c.msg)
				if r.code() == store.CodeInternal {
					t.Errorf("refused as an internal error")
				}
				env.unchanged(before)
				return
			}
			env.must(r)
			v := env.latest(c.script)
			checkStoredVersion(t, env, c.script, v, c.parts, nil)
			rel := checkDeployed(t, env, c.script, v, 1)
			if errs := validation.IsDNS1123Label(rel.Name); len(errs) > 0 {
				t.Errorf("release name %q: %v", rel.Name, errs)
			}
			if errs := validation.IsValidLabelValue(rel.Labels[apiv1.LabelScript]); len(errs) > 0 {
				t.Errorf("script label %q: %v", rel.Labels[apiv1.LabelScript], errs)
			}
			// A secret and a delete work on the same objects.
			env.must(env.call(http.MethodPut, "/scripts/"+c.script+"/secrets", map[string]string{"name": "K", "text": "v", "type": "secret_text"}))
			if got, ok := env.secretOf(env.latest(c.script), "K"); !ok || got != "v" {
				t.Errorf("Secret = %+v", env.secret(c.script))
			}
			env.must(env.call(http.MethodDelete, "/services/"+c.script, nil))
			if keys := env.keys(""); len(keys) != 0 || env.release(c.script) != nil || env.secret(c.script) != nil || len(env.versions(c.script)) != 0 {
				t.Errorf("after delete: keys %q", keys)
			}
		})
	}
}

// TestScriptsNameMapping: script names that differ only in '_' and '-' get
// distinct objects, and deleting one leaves the other.
func TestScriptsNameMapping(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	names := []string{"a_b", "a-b", "a_b_", "a-b-", "a_b-", "a-b_"}
	seen := map[string]string{}
	for _, n := range names {
		env.deployHello(n)
		on := store.ObjectName(n)
		if prev, dup := seen[on]; dup {
			t.Errorf("%q and %q share the object name %q", prev, n, on)
		}
		seen[on] = n
		for _, name := range []string{on, store.VersionObjectName(n, 1), store.SecretName(n)} {
			if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
				t.Errorf("%q → %q: %v", n, name, errs)
			}
		}
		if errs := validation.IsDNS1123Label(on); len(errs) > 0 {
			t.Errorf("%q → %q is not a DNS label: %v", n, on, errs)
		}
	}
	var scripts []map[string]any
	env.must(env.call(http.MethodGet, "/scripts", nil)).into(t, &scripts)
	if len(scripts) != len(names) {
		t.Errorf("%d scripts listed, want %d", len(scripts), len(names))
	}
	env.must(env.call(http.MethodDelete, "/services/a_b", nil))
	for _, n := range names[1:] {
		if env.release(n) == nil || len(env.versions(n)) != 1 || len(env.keys("workers/"+n+"/")) != 2 {
			t.Errorf("deleting a_b touched %s", n)
		}
	}
	if env.release("a_b") != nil || len(env.keys("workers/a_b/")) != 0 {
		t.Errorf("a_b survives")
	}
}

// scState is what a failed request must leave as it was: S3 keys, object
// names, the deployments and the Secret's data.
func (env *scEnv) state() string {
	env.t.Helper()
	snap := env.snapshot()
	var b strings.Builder
	fmt.Fprintf(&b, "keys %q\n", snap.Keys)
	for _, o := range snap.Objects {
		fmt.Fprintf(&b, "object %s\n", o[:strings.LastIndex(o, "@")])
	}
	var rl apiv1.WorkerReleaseList
	if err := env.c.List(context.Background(), &rl); err != nil {
		env.t.Fatal(err)
	}
	for _, r := range rl.Items {
		for _, d := range r.Spec.Deployments {
			fmt.Fprintf(&b, "deployment %s %s %v\n", r.Name, d.ID, d.Versions)
		}
	}
	var sl corev1.SecretList
	if err := env.c.List(context.Background(), &sl); err != nil {
		env.t.Fatal(err)
	}
	for _, s := range sl.Items {
		fmt.Fprintf(&b, "secret %s %q\n", s.Name, s.Data)
	}
	return b.String()
}

// failOn makes the client fail verb on objects of kind's Go type.
func failOn(verb string, kind runtime.Object) scHook {
	want := fmt.Sprintf("%T", kind)
	return func(_ context.Context, v string, obj runtime.Object) error {
		if v == verb && fmt.Sprintf("%T", obj) == want {
			return apierrors.NewInternalError(errors.New("injected failure"))
		}
		return nil
	}
}

func TestScriptsFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	secretPut := func(name, value string) func(env *scEnv) scReply {
		return func(env *scEnv) scReply {
			return env.call(http.MethodPut, "/scripts/app/secrets", map[string]string{"name": name, "text": value, "type": "secret_text"})
		}
	}
	deploy := func(bindings ...map[string]any) func(env *scEnv) scReply {
		return func(env *scEnv) scReply {
			return env.upload(http.MethodPut, "/scripts/app", esmMeta(bindings...), esm("index.js", strings.Replace(helloESM, "hi", "new", 1)))
		}
	}
	secretBinding := map[string]any{"name": "NEW_SECRET", "type": "secret_text", "text": "fresh-value"}
	cases := []struct {
		name     string
		existing bool // the script exists (with secret OLD) before
		hook     scHook
		req      func(env *scEnv) scReply
	}{
		{"first deploy: WorkerVersion create fails", false, failOn("create", &apiv1.WorkerVersion{}), deploy()},
		{"first deploy with a secret: WorkerVersion create fails", false, failOn("create", &apiv1.WorkerVersion{}), deploy(secretBinding)},
		{"first deploy with a secret: Secret create fails", false, failOn("create", &corev1.Secret{}), deploy(secretBinding)},
		{"first deploy: WorkerRelease create fails", false, failOn("create", &apiv1.WorkerRelease{}), deploy()},
		{"first deploy: recording the deployment fails", false, failOn("update", &apiv1.WorkerRelease{}), deploy(secretBinding)},
		{"deploy: WorkerVersion create fails", true, failOn("create", &apiv1.WorkerVersion{}), deploy(secretBinding)},
		{"deploy: recording the deployment fails", true, failOn("update", &apiv1.WorkerRelease{}), deploy(secretBinding)},
		{"deploy: Secret update fails", true, failOn("update", &corev1.Secret{}), deploy(secretBinding)},
		{"versions upload: WorkerVersion create fails", true, failOn("create", &apiv1.WorkerVersion{}), func(env *scEnv) scReply {
			return env.upload(http.MethodPost, "/scripts/app/versions", esmMeta(secretBinding), esm("index.js", helloESM))
		}},
		{"secret put (changed value): WorkerVersion create fails", true, failOn("create", &apiv1.WorkerVersion{}), secretPut("OLD", "changed")},
		{"secret put (new name): WorkerVersion create fails", true, failOn("create", &apiv1.WorkerVersion{}), secretPut("OTHER", "x")},
		{"secret put: recording the deployment fails", true, failOn("update", &apiv1.WorkerRelease{}), secretPut("OLD", "changed")},
		{"secret put: reading S3 fails", true, func(_ context.Context, v string, obj runtime.Object) error { return nil }, func(env *scEnv) scReply {
			// The previous version's module is gone from S3: the derived version cannot be made.
			v := env.latest("app")
			if err := testBlobs.Delete(context.Background(), v.Spec.Modules[0].Key); err != nil {
				env.t.Fatal(err)
			}
			return secretPut("OLD", "changed")(env)
		}},
		{"secret delete: WorkerVersion create fails", true, failOn("create", &apiv1.WorkerVersion{}), func(env *scEnv) scReply {
			return env.call(http.MethodDelete, "/scripts/app/secrets/OLD", nil)
		}},
		{"secret bulk: Secret update fails", true, failOn("update", &corev1.Secret{}), func(env *scEnv) scReply {
			body, ct := settingsForm(env.t.(*testing.T), []map[string]any{{"type": "secret_text", "name": "OLD"}, {"type": "secret_text", "name": "B", "text": "b"}})
			return env.send(scReq{method: http.MethodPatch, path: "/scripts/app/settings", body: body, contentType: ct})
		}},
		{"deployment: release update fails", true, failOn("update", &apiv1.WorkerRelease{}), func(env *scEnv) scReply {
			return env.call(http.MethodPost, "/scripts/app/deployments", map[string]any{"versions": []map[string]any{{"version_id": env.latest("app").Spec.VersionID, "percentage": 100}}})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := newScriptsEnv(t)
			if c.existing {
				env.deployHello("app", map[string]any{"name": "GREETING", "type": "plain_text", "text": "hello"})
				env.must(env.call(http.MethodPut, "/scripts/app/secrets", map[string]string{"name": "OLD", "text": "old-value", "type": "secret_text"}))
			}
			if c.name == "secret put: reading S3 fails" {
				// state is taken after the module is removed, inside req.
				before := ""
				env.setHook(func(_ context.Context, verb string, obj runtime.Object) error {
					if before == "" && verb == "get" {
						if _, ok := obj.(*apiv1.WorkerRelease); ok {
							before = env.state()
						}
					}
					return nil
				})
				r := c.req(env)
				env.setHook(nil)
				env.fails(r, http.StatusInternalServerError, store.CodeInternal, "internal error")
				if after := env.state(); after != before {
					t.Errorf("state changed:\nbefore\n%s\nafter\n%s", before, after)
				}
				return
			}
			before := env.state()
			env.setHook(c.hook)
			r := c.req(env)
			env.setHook(nil)
			env.fails(r, http.StatusInternalServerError, store.CodeInternal, "internal error")
			if after := env.state(); after != before {
				t.Errorf("state changed:\nbefore\n%s\nafter\n%s", before, after)
			}
			// The script still works afterwards.
			env.deployHello("app")
			if c.existing {
				if got, _ := env.secretOf(env.latest("app"), "OLD"); got != "old-value" {
					t.Errorf("Secret = %q", env.secret("app").Data)
				}
			}
		})
	}
}

func TestScriptsConcurrentUploads(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	type result struct {
		script string
		status int
		body   string
	}
	results := make(chan result, 20)
	var wg sync.WaitGroup
	for i := range 20 {
		script := "shared"
		if i%2 == 0 {
			script = fmt.Sprintf("conc-%d", i/2)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, ct := wranglerForm(esmMeta(map[string]any{"name": "N", "type": "plain_text", "text": fmt.Sprint(i)}),
				esm("index.js", fmt.Sprintf("export default { fetch() { return new Response(%q) } }", fmt.Sprint(i))))
			req := httptest.NewRequest(http.MethodPut, BasePath+"/accounts/"+env.acct.ID+"/workers/scripts/"+script, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+scToken)
			req.Header.Set("Content-Type", ct)
			rec := httptest.NewRecorder()
			env.e.ServeHTTP(rec, req)
			results <- result{script, rec.Code, rec.Body.String()}
		}()
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r.status != http.StatusOK || !strings.Contains(r.body, `"success":true`) {
			t.Errorf("PUT %s = %d %s", r.script, r.status, r.body)
		}
	}
	for i := range 10 {
		script := fmt.Sprintf("conc-%d", i)
		vs := env.versions(script)
		if len(vs) != 1 || vs[0].Spec.Number != 1 {
			t.Errorf("%s has %d versions", script, len(vs))
			continue
		}
		checkDeployed(t, env, script, vs[0], 1)
	}
	vs := env.versions("shared")
	var numbers []int64
	ids := map[string]bool{}
	for _, v := range vs {
		numbers = append(numbers, v.Spec.Number)
		ids[v.Spec.VersionID] = true
		if n := len(env.keys("workers/shared/versions/" + v.Spec.VersionID + "/")); n != 2 {
			t.Errorf("version %d has %d S3 keys", v.Spec.Number, n)
		}
	}
	if !slices.Equal(numbers, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) {
		t.Fatalf("shared version numbers = %v", numbers)
	}
	if n := len(env.keys("workers/shared/")); n != 20 {
		t.Errorf("shared has %d S3 keys, want 20", n)
	}
	rel := checkDeployed(t, env, "shared", vs[9], 10)
	deployed := map[string]bool{}
	for i, d := range rel.Spec.Deployments {
		id := d.Versions[0].VersionID
		if deployed[id] || !ids[id] {
			t.Errorf("deployment %d sends traffic to %s (duplicate or unknown)", i, id)
		}
		deployed[id] = true
		// Newest first: deployment i is version 10-i.
		if want := vs[9-i].Spec.VersionID; id != want {
			t.Errorf("deployment %d is %s, want version %d", i, id, 10-i)
		}
	}
}

// TestScriptsSecretPutRacesDeploy: a secret change derives its version from
// the latest one; a deploy that lands while the secret request runs must not
// be reverted by it.
func TestScriptsSecretPutRacesDeploy(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	env.deployHello("race", map[string]any{"name": "GREETING", "type": "plain_text", "text": "hello"})

	type pauseKey struct{}
	reached, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	env.setHook(func(ctx context.Context, verb string, obj runtime.Object) error {
		if _, ok := obj.(*apiv1.WorkerVersionList); ok && verb == "listed" && ctx.Value(pauseKey{}) != nil {
			once.Do(func() {
				close(reached)
				<-resume
			})
		}
		return nil
	})
	secretDone := make(chan scReply, 1)
	go func() {
		body, _ := json.Marshal(map[string]string{"name": "TOKEN", "text": "tok", "type": "secret_text"})
		req := httptest.NewRequest(http.MethodPut, BasePath+"/accounts/"+env.acct.ID+"/workers/scripts/race/secrets", bytes.NewReader(body))
		req = req.WithContext(context.WithValue(req.Context(), pauseKey{}, true))
		req.Header.Set("Authorization", "Bearer "+scToken)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		env.e.ServeHTTP(rec, req)
		var r scReply
		_ = json.Unmarshal(rec.Body.Bytes(), &r)
		r.Status = rec.Code
		secretDone <- r
	}()
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the secret request never listed versions")
	}
	const newCode = "export default { fetch() { return new Response('v2') } }"
	deployDone := make(chan scReply, 1)
	go func() {
		body, ct := wranglerForm(esmMeta(map[string]any{"name": "GREETING", "type": "plain_text", "text": "hello"}), esm("index.js", newCode))
		req := httptest.NewRequest(http.MethodPut, BasePath+"/accounts/"+env.acct.ID+"/workers/scripts/race", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+scToken)
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		env.e.ServeHTTP(rec, req)
		deployDone <- scReply{Status: rec.Code, Body: rec.Body.String()}
	}()
	var deployed *scReply
	select { // the deploy may finish now (no ordering) or wait for the secret change
	case r := <-deployDone:
		deployed = &r
	case <-time.After(300 * time.Millisecond):
	}
	close(resume)
	if r := <-secretDone; r.Status != http.StatusOK {
		t.Fatalf("secret put = %d %+v", r.Status, r.Errors)
	}
	if deployed == nil {
		r := <-deployDone
		deployed = &r
	}
	if deployed.Status != http.StatusOK {
		t.Fatalf("deploy = %d %s", deployed.Status, deployed.Body)
	}
	env.setHook(nil)
	latest := env.latest("race")
	if latest.Spec.Number != 3 {
		t.Fatalf("latest version is %d, want 3", latest.Spec.Number)
	}
	if latest.Spec.Modules[0].SHA256 != sha(newCode) {
		t.Errorf("the newest version (triggered by %s) runs the old code: the deploy was reverted", latest.Spec.Annotations[apiv1.AnnotationTriggeredBy])
	}
	if b := bindingByName(latest, "TOKEN"); b == nil || b.SecretRef == nil {
		t.Errorf("the newest version lost the secret: %v", bindingNames(latest))
	}
	checkDeployed(t, env, "race", latest, 3)
}

// scAccounts is an AccountSource whose accounts a test can change.
type scAccounts struct {
	mu sync.Mutex
	a  []store.Account
}

func (s *scAccounts) Accounts(context.Context) ([]store.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.a), nil
}

func (s *scAccounts) set(a ...store.Account) {
	s.mu.Lock()
	s.a = a
	s.mu.Unlock()
}

// TestScriptsReleaseLabels: objects carry the account's release labels, and
// the script keeps working when the WorkerAccount's selector changes.
func TestScriptsReleaseLabels(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	src := &scAccounts{}
	acct := env.acct
	acct.ReleaseLabels = map[string]string{"team": "a"}
	src.set(acct)
	env.storeOpts.Accounts = src
	env.build()

	env.deployHello("labelled", map[string]any{"name": "V", "type": "plain_text", "text": "1"})
	env.must(env.call(http.MethodPut, "/scripts/labelled/secrets", map[string]string{"name": "S", "text": "s", "type": "secret_text"}))
	v := env.latest("labelled")
	if rel := env.release("labelled"); rel.Labels["team"] != "a" || v.Labels["team"] != "a" || env.secret("labelled").Labels["team"] != "a" {
		t.Errorf("labels: release %v, version %v", rel.Labels, v.Labels)
	}

	acct.ReleaseLabels = map[string]string{"team": "b"}
	src.set(acct)
	env.must(env.upload(http.MethodPut, "/scripts/labelled", map[string]any{"main_module": "index.js", "keep_bindings": []string{"plain_text"}}, esm("index.js", helloESM)))
	v3 := env.latest("labelled")
	if v3.Spec.Number != 3 || bindingByName(v3, "V") == nil || bindingByName(v3, "S") == nil {
		t.Errorf("after the selector changed: version %d with %v", v3.Spec.Number, bindingNames(v3))
	}
	var list struct {
		Items []apiVersion `json:"items"`
	}
	env.must(env.call(http.MethodGet, "/scripts/labelled/versions", nil)).into(t, &list)
	if len(list.Items) != 3 {
		t.Errorf("versions list has %d items, want 3", len(list.Items))
	}
	env.must(env.call(http.MethodDelete, "/services/labelled", nil))
	if n := len(env.versions("labelled")); n != 0 {
		t.Errorf("%d versions survive delete", n)
	}
}

// TestScriptsBindingLimit: kept secrets count towards the 256 bindings a
// version may have.
func TestScriptsBindingLimit(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	vars := func(n int) []map[string]any {
		var out []map[string]any
		for i := range n {
			out = append(out, map[string]any{"name": fmt.Sprintf("V%d", i), "type": "plain_text", "text": "x"})
		}
		return out
	}
	env.deployHello("many", vars(255)...)
	env.must(env.call(http.MethodPut, "/scripts/many/secrets", map[string]string{"name": "S", "text": "s", "type": "secret_text"}))
	if n := len(env.latest("many").Spec.Bindings); n != 256 {
		t.Fatalf("%d bindings", n)
	}
	before := env.snapshot()
	env.fails(env.call(http.MethodPut, "/scripts/many/secrets", map[string]string{"name": "T", "text": "t", "type": "secret_text"}),
		http.StatusBadRequest, store.CodeScriptValidation, "too many bindings")
	env.fails(env.upload(http.MethodPut, "/scripts/many", esmMeta(vars(256)...), esm("index.js", helloESM)),
		http.StatusBadRequest, store.CodeScriptValidation, "too many bindings")
	env.unchanged(before)
	env.fails(env.upload(http.MethodPut, "/scripts/many", esmMeta(vars(257)...), esm("index.js", helloESM)),
		http.StatusBadRequest, store.CodeScriptValidation, "too many bindings")
	env.unchanged(before)
}

// TestScriptsDeploymentHistory: the release keeps the newest 100
// deployments, newest first.
func TestScriptsDeploymentHistory(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	env.deployHello("hist")
	env.must(env.upload(http.MethodPost, "/scripts/hist/versions", esmMeta(), esm("index.js", helloESM)))
	vs := env.versions("hist")
	var ids []string
	for i := range apiv1.MaxDeploymentHistory + 5 {
		body := map[string]any{"versions": []map[string]any{
			{"version_id": vs[0].Spec.VersionID, "percentage": i % 101},
			{"version_id": vs[1].Spec.VersionID, "percentage": 100 - i%101},
		}}
		var d apiDeployment
		env.must(env.call(http.MethodPost, "/scripts/hist/deployments", body)).into(t, &d)
		ids = append(ids, d.ID)
	}
	ds := env.deployments("hist")
	if len(ds) != apiv1.MaxDeploymentHistory {
		t.Fatalf("%d deployments kept, want %d", len(ds), apiv1.MaxDeploymentHistory)
	}
	for i, d := range ds {
		if want := ids[len(ids)-1-i]; d.ID != want {
			t.Fatalf("deployment %d = %s, want %s", i, d.ID, want)
		}
	}
}

// TestReferences: `wrangler delete` asks which Workers bind the one it
// deletes; only active versions count.
func TestReferences(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	env.deployHello("callee")
	env.deployHello("caller", map[string]any{"name": "C", "type": "service", "service": "callee"},
		map[string]any{"name": "SELF", "type": "service", "service": "caller"})
	env.deployHello("bystander")
	type refs struct {
		Services struct {
			Incoming []map[string]any `json:"incoming"`
			Outgoing []map[string]any `json:"outgoing"`
		} `json:"services"`
	}
	var r refs
	env.must(env.call(http.MethodGet, "/scripts/callee/references", nil)).into(t, &r)
	if fmt.Sprint(r.Services.Incoming, r.Services.Outgoing) != "[map[service:caller]] []" {
		t.Errorf("callee's references = %+v, want caller incoming", r.Services)
	}
	env.must(env.call(http.MethodGet, "/scripts/caller/references", nil)).into(t, &r)
	if fmt.Sprint(r.Services.Incoming, r.Services.Outgoing) != "[] [map[service:callee]]" {
		t.Errorf("caller's references = %+v, want callee outgoing (itself left out)", r.Services)
	}
	// A new active version without the binding ends the reference.
	env.deployHello("caller")
	env.must(env.call(http.MethodGet, "/scripts/callee/references", nil)).into(t, &r)
	if len(r.Services.Incoming) != 0 {
		t.Errorf("after caller dropped the binding: incoming %+v", r.Services.Incoming)
	}
}
