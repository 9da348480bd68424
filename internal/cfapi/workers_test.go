package cfapi

import (
	"net/http"
	"slices"
	"testing"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
)

// workerPath is the newer Workers resource of script (wrangler after 4.86).
func (env *scEnv) workerPath(script string) string {
	return "/workers/" + script
}

func TestWorkersResource(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	const script = "res-app"

	// What wrangler 4.164 calls after an upload: without the Worker, 10007.
	env.fails(env.call(http.MethodGet, env.workerPath(script), nil), http.StatusNotFound, store.CodeNotFound, "does not exist")
	env.deployHello(script)

	var w struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		Subdomain struct {
			Enabled          *bool  `json:"enabled"`
			PreviewsEnabled  *bool  `json:"previews_enabled"`
			URL              string `json:"url"`
			PreviewURLSuffix string `json:"preview_url_suffix"`
		} `json:"subdomain"`
		PreviewsBaseConfig map[string]any `json:"previews_base_config"`
		CreatedOn          string         `json:"created_on"`
	}
	env.must(env.call(http.MethodGet, env.workerPath(script), nil)).into(t, &w)
	host := script + "." + env.acct.Subdomain + ".workers.dev"
	if w.Name != script || w.ID == "" || w.CreatedOn == "" {
		t.Errorf("worker = %+v", w)
	}
	if w.Subdomain.Enabled == nil || !*w.Subdomain.Enabled || w.Subdomain.PreviewsEnabled == nil || !*w.Subdomain.PreviewsEnabled {
		t.Errorf("subdomain = %+v, want enabled and previews_enabled true", w.Subdomain)
	}
	if w.Subdomain.URL != "https://"+host || w.Subdomain.PreviewURLSuffix != "-"+host {
		t.Errorf("subdomain url = %q, suffix %q; want https://%s and -%s", w.Subdomain.URL, w.Subdomain.PreviewURLSuffix, host, host)
	}
	if w.PreviewsBaseConfig == nil {
		t.Error("previews_base_config missing (wrangler reads it for previews)")
	}

	// PATCH is a merge patch: the answer carries the change, other fields stay.
	var patched map[string]any
	env.must(env.call(http.MethodPatch, env.workerPath(script), `{"subdomain":{"previews_enabled":false},"tags":["a"]}`)).into(t, &patched)
	sub, _ := patched["subdomain"].(map[string]any)
	if sub["previews_enabled"] != false || sub["enabled"] != true || patched["name"] != script {
		t.Errorf("patched = %v", patched)
	}
	env.fails(env.call(http.MethodPatch, env.workerPath(script), `{"subdomain":`), http.StatusBadRequest, store.CodeBadRequest, "merge patch")
}

func TestSecretsBulk(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	const script = "bulk-app"
	path := "/scripts/" + script + "/secrets-bulk"

	before := env.snapshot()
	env.fails(env.call(http.MethodPatch, path, `{"secrets":{"A":{"name":"A","text":"1","type":"secret_text"}}}`), http.StatusNotFound, store.CodeNotFound, "does not exist")
	env.unchanged(before)

	env.deployHello(script, map[string]any{"name": "GREETING", "type": "plain_text", "text": "hello"})
	var set []map[string]string
	env.must(env.call(http.MethodPatch, path, `{"secrets":{"A":{"name":"A","text":"one","type":"secret_text"},"B":{"name":"B","text":"two","type":"secret_text"}}}`)).into(t, &set)
	if len(set) != 2 {
		t.Errorf("result = %v, want the two secrets", set)
	}
	v := env.latest(script)
	if got := bindingNames(v); !slices.Equal(got, []string{"A", "B", "GREETING"}) {
		t.Errorf("bindings = %v", got)
	}
	checkDeployed(t, env, script, v, 2)
	withAB := v
	for name, value := range map[string]string{"A": "one", "B": "two"} {
		if got, ok := env.secretOf(v, name); !ok || got != value {
			t.Errorf("%s = %q, want %q (Secret data %q)", name, got, value, env.secret(script).Data)
		}
	}
	env.noValueIn("two")

	// null removes from the new version; a null for an unknown secret is
	// ignored. The version before keeps its value of A.
	env.must(env.call(http.MethodPatch, path, `{"secrets":{"A":null,"NOPE":null}}`))
	v = env.latest(script)
	if got := bindingNames(v); !slices.Equal(got, []string{"B", "GREETING"}) {
		t.Errorf("bindings after removing A = %v", got)
	}
	if got, _ := env.secretOf(v, "B"); got != "two" {
		t.Errorf("B = %q after removing A", got)
	}
	if got, _ := env.secretOf(withAB, "A"); got != "one" {
		t.Errorf("removing A took it from version %d: %q", withAB.Spec.Number, got)
	}

	// A var is not a secret; a bad entry is refused; nothing changes.
	before = env.snapshot()
	env.fails(env.call(http.MethodPatch, path, `{"secrets":{"GREETING":{"name":"GREETING","text":"x","type":"secret_text"}}}`), http.StatusBadRequest, store.CodeBadRequest, "not a secret")
	env.fails(env.call(http.MethodPatch, path, `{"secrets":{"C":{"type":"plain_text","text":"x"}}}`), http.StatusBadRequest, store.CodeBadRequest, "secret_text")
	env.unchanged(before)

	// After `versions upload` the latest version is not deployed: 10215.
	env.must(env.upload(http.MethodPost, "/scripts/"+script+"/versions", esmMeta(), esm("index.js", helloESM)))
	before = env.snapshot()
	env.fails(env.call(http.MethodPatch, path, `{"secrets":{"C":{"name":"C","text":"x","type":"secret_text"}}}`), http.StatusBadRequest, store.CodeSecretEditNotDeployed, "isn't currently deployed")
	env.unchanged(before)
}

func TestPatchLatestVersion(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	const script = "vsec-app"
	path := env.workerPath(script) + "/versions/latest"

	env.fails(env.call(http.MethodPatch, path, `{"env":{"S":{"type":"secret_text","text":"x"}}}`), http.StatusNotFound, store.CodeNotFound, "does not exist")

	env.deployHello(script)
	deployed := env.latest(script)
	env.must(env.call(http.MethodPut, "/scripts/"+script+"/secrets", map[string]string{"name": "KEEP", "text": "kept", "type": "secret_text"}))
	prod := env.latest(script)

	// versions secret put: a new version with the secret, not deployed.
	var res struct {
		ID          string            `json:"id"`
		Number      int64             `json:"number"`
		Annotations map[string]string `json:"annotations"`
	}
	env.must(env.call(http.MethodPatch, path, `{"env":{"NEW":{"type":"secret_text","text":"fresh"}},"annotations":{"workers/message":"add NEW","workers/tag":null}}`)).into(t, &res)
	v := env.latest(script)
	if res.ID != v.Spec.VersionID || res.Number != prod.Spec.Number+1 {
		t.Errorf("result %+v, latest version %s #%d", res, v.Spec.VersionID, v.Spec.Number)
	}
	if got := bindingNames(v); !slices.Equal(got, []string{"KEEP", "NEW"}) {
		t.Errorf("bindings = %v", got)
	}
	if v.Spec.Annotations[apiv1.AnnotationMessage] != "add NEW" || res.Annotations[apiv1.AnnotationMessage] != "add NEW" {
		t.Errorf("annotations = %v / %v", v.Spec.Annotations, res.Annotations)
	}
	if rel := env.release(script); rel.ActiveDeployment().Versions[0].VersionID != prod.Spec.VersionID {
		t.Errorf("production moved to %v, want it on %s", rel.ActiveDeployment().Versions, prod.Spec.VersionID)
	}
	if deployed.Spec.VersionID == prod.Spec.VersionID {
		t.Fatal("secret put did not make a version")
	}

	// versions secret delete: the new version drops KEEP, production keeps its value.
	env.must(env.call(http.MethodPatch, path, `{"env":{"KEEP":null}}`))
	v = env.latest(script)
	if got := bindingNames(v); !slices.Equal(got, []string{"NEW"}) {
		t.Errorf("bindings after delete = %v", got)
	}
	if got, _ := env.secretOf(prod, "KEEP"); got != "kept" {
		t.Errorf("Secret data = %q: production's KEEP must stay", env.secret(script).Data)
	}

	before := env.snapshot()
	env.fails(env.call(http.MethodPatch, path, `{"env":{"GONE":null}}`), http.StatusNotFound, store.CodeSecretNotFound, "not found")
	env.fails(env.call(http.MethodPatch, path, `{"env":{"V":{"type":"plain_text","text":"x"}}}`), http.StatusBadRequest, store.CodeBadRequest, "secret_text")
	env.fails(env.call(http.MethodPatch, path, `not json`), http.StatusBadRequest, store.CodeBadRequest, "merge patch")
	env.unchanged(before)
}

// TestVersionKeepBindingsSecrets: a new version keeps the script's secrets
// unless its keep_bindings leaves secret_text out, as wrangler 3 and 4.86
// send for `versions secret delete` (overrideAllSecrets).
func TestVersionKeepBindingsSecrets(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	const script = "keep-secrets-app"
	env.deployHello(script)
	for _, name := range []string{"A", "B"} {
		env.must(env.call(http.MethodPut, "/scripts/"+script+"/secrets", map[string]string{"name": name, "text": "v-" + name, "type": "secret_text"}))
	}
	post := func(meta map[string]any) {
		t.Helper()
		env.must(env.upload(http.MethodPost, "/scripts/"+script+"/versions", meta, esm("index.js", helloESM)))
	}
	post(esmMeta())
	if got := bindingNames(env.latest(script)); !slices.Equal(got, []string{"A", "B"}) {
		t.Errorf("without keep_bindings: bindings %v, want the secrets kept", got)
	}
	m := esmMeta(map[string]any{"name": "B", "type": "inherit"})
	m["keep_bindings"] = []string{"secret_key"}
	post(m)
	if got := bindingNames(env.latest(script)); !slices.Equal(got, []string{"B"}) {
		t.Errorf("keep_bindings [secret_key] with B inherited: bindings %v, want only B", got)
	}
	if got, _ := env.secretOf(env.deployed(script), "A"); got != "v-A" {
		t.Errorf("Secret data = %q: the deployed version still needs A", env.secret(script).Data)
	}
}
