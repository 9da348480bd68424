package cfapi

import (
	"net/http"
	"testing"

	apiv1 "github.com/octohq/octo/api/v1"
)

// cpuMs is the limits.cpu_ms of a version, 0 without limits.
func cpuMs(v apiv1.WorkerVersion) int64 {
	if v.Spec.Limits == nil {
		return 0
	}
	return v.Spec.Limits.CPUMs
}

// TestUploadCPULimit: metadata limits.cpu_ms ([limits] cpu_ms in wrangler's
// configuration) is stored on the version, shown in its script_runtime, and
// kept by the versions a secret change derives from it.
func TestUploadCPULimit(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	const script = "cpu-limited"
	withLimits := func(limits any) map[string]any {
		m := esmMeta()
		m["limits"] = limits
		return m
	}
	hello := esm("index.js", helloESM)

	// PUT script: stored; other keys of limits are ignored.
	env.must(env.upload(http.MethodPut, "/scripts/"+script, withLimits(map[string]any{"cpu_ms": 50, "subrequests": 100}), hello))
	v1 := env.latest(script)
	if cpuMs(v1) != 50 || v1.Spec.CPULimit().Milliseconds() != 50 {
		t.Fatalf("limits = %+v", v1.Spec.Limits)
	}
	var info struct {
		Resources struct {
			ScriptRuntime struct {
				Limits map[string]any `json:"limits"`
			} `json:"script_runtime"`
		} `json:"resources"`
	}
	env.must(env.call(http.MethodGet, "/scripts/"+script+"/versions/"+v1.Spec.VersionID, nil)).into(t, &info)
	if got := info.Resources.ScriptRuntime.Limits; len(got) != 1 || got["cpu_ms"] != float64(50) {
		t.Errorf("script_runtime.limits = %v, want {cpu_ms: 50}", got)
	}

	// Versions derived by secret changes keep the limits: secret put,
	// secret bulk (PATCH settings), versions secret put (PATCH versions/latest).
	env.must(env.call(http.MethodPut, "/scripts/"+script+"/secrets", map[string]string{"name": "A", "text": "a", "type": "secret_text"}))
	if v := env.latest(script); v.Spec.Number != 2 || cpuMs(v) != 50 {
		t.Errorf("after secret put: version %d limits %+v", v.Spec.Number, v.Spec.Limits)
	}
	body, ct := settingsForm(t, []map[string]any{{"type": "secret_text", "name": "A"}, {"type": "secret_text", "name": "B", "text": "b"}})
	env.must(env.send(scReq{method: http.MethodPatch, path: "/scripts/" + script + "/settings", body: body, contentType: ct}))
	if v := env.latest(script); v.Spec.Number != 3 || cpuMs(v) != 50 {
		t.Errorf("after secret bulk: version %d limits %+v", v.Spec.Number, v.Spec.Limits)
	}
	env.must(env.call(http.MethodPatch, env.workerPath(script)+"/versions/latest", `{"env":{"C":{"type":"secret_text","text":"c"}}}`))
	if v := env.latest(script); v.Spec.Number != 4 || cpuMs(v) != 50 {
		t.Errorf("after versions secret put: version %d limits %+v", v.Spec.Number, v.Spec.Limits)
	}

	// versions upload: the maximum; an upload without limits (or with
	// empty or null ones) has none, and shows {}.
	env.must(env.upload(http.MethodPost, "/scripts/"+script+"/versions", withLimits(map[string]any{"cpu_ms": 300000}), hello))
	if v := env.latest(script); cpuMs(v) != 300000 || v.Spec.CPULimit() != apiv1.MaxCPULimit {
		t.Errorf("versions upload: limits %+v", v.Spec.Limits)
	}
	for _, limits := range []any{nil, map[string]any{}, map[string]any{"cpu_ms": nil}} {
		env.must(env.upload(http.MethodPost, "/scripts/"+script+"/versions", withLimits(limits), hello))
		v := env.latest(script)
		if v.Spec.Limits != nil || v.Spec.CPULimit() != apiv1.DefaultCPULimit {
			t.Errorf("limits %v: stored %+v", limits, v.Spec.Limits)
		}
		info.Resources.ScriptRuntime.Limits = nil
		env.must(env.call(http.MethodGet, "/scripts/"+script+"/versions/"+v.Spec.VersionID, nil)).into(t, &info)
		if got := info.Resources.ScriptRuntime.Limits; got == nil || len(got) != 0 {
			t.Errorf("limits %v: script_runtime.limits = %v, want {}", limits, got)
		}
	}

	// versions deploy of an existing version serves it with its limits.
	env.must(env.call(http.MethodPost, "/scripts/"+script+"/deployments", map[string]any{
		"strategy": "percentage", "versions": []map[string]any{{"version_id": v1.Spec.VersionID, "percentage": 100}},
	}))
	if d := env.deployed(script); d.Spec.VersionID != v1.Spec.VersionID || cpuMs(d) != 50 {
		t.Errorf("deployed %s with limits %+v", d.Spec.VersionID, d.Spec.Limits)
	}
}
