package cfapi

import (
	"net/http"
	"testing"

	"github.com/octohq/octo/internal/store"
)

// TestObservabilitySetting: wrangler's [observability] arrives with the
// upload that deploys and with PATCH script-settings; the release keeps it
// (Workers Logs), and GET shows it back.
func TestObservabilitySetting(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	const script = "logged"
	meta := esmMeta()
	meta["observability"] = map[string]any{"enabled": true, "head_sampling_rate": 0.25}
	env.must(env.upload(http.MethodPut, "/scripts/"+script+"?excludeScript=true&bindings_inherit=strict", meta, esm("index.js", helloESM)))
	if o := env.release(script).Spec.Observability; o == nil || !o.Enabled || o.HeadSamplingRate != "0.25" || o.SamplingRate() != 0.25 {
		t.Fatalf("after the upload: %+v", o)
	}
	var got struct {
		Observability map[string]any `json:"observability"`
	}
	env.must(env.call(http.MethodGet, "/scripts/"+script+"/script-settings", nil)).into(t, &got)
	if got.Observability["enabled"] != true || got.Observability["head_sampling_rate"] != 0.25 {
		t.Errorf("GET script-settings = %v", got.Observability)
	}
	// wrangler's PATCH after a versions deploy; logs.enabled = false wins.
	env.must(env.call(http.MethodPatch, "/scripts/"+script+"/script-settings", `{"observability":{"enabled":true,"logs":{"enabled":false}},"tags":[]}`))
	if o := env.release(script).Spec.Observability; o != nil {
		t.Errorf("after logs.enabled = false: %+v, want none", o)
	}
	env.must(env.call(http.MethodPatch, "/scripts/"+script+"/script-settings", `{"observability":{"enabled":true}}`))
	if o := env.release(script).Spec.Observability; o == nil || o.SamplingRate() != 1 {
		t.Errorf("enabled without a rate: %+v, want all invocations", o)
	}
	before := env.snapshot()
	env.fails(env.call(http.MethodPatch, "/scripts/"+script+"/script-settings", `{"observability":{"enabled":true,"head_sampling_rate":2}}`), http.StatusBadRequest, store.CodeBadRequest, "from 0 to 1")
	env.unchanged(before)
}
