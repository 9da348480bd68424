package cfapi

import (
	"net/http"
	"os"
	"testing"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
)

// withWorkerd makes env validate uploads in the embedded workerd.
func withWorkerd(t *testing.T, env *scEnv) {
	t.Helper()
	if !workerd.Embedded() {
		t.Skip("built without workerd: run `make workerd` first")
	}
	bin, err := workerd.Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Sandboxed as in production; without root, there are no cgroups to make.
	env.storeOpts.Validate = store.WorkerdValidator(&workerd.Validator{Bin: bin, Sandbox: workerd.Sandbox{AllowNoCgroup: os.Geteuid() != 0}})
	env.build()
}

func TestUploadValidatedInWorkerd(t *testing.T) {
	env := newScriptsEnv(t).withKVNamespace()
	withWorkerd(t, env)

	// A good upload reports its startup time, in the answer and the version.
	r := env.deployHello("hello")
	var res struct {
		StartupTimeMs *int64 `json:"startup_time_ms"`
	}
	r.into(t, &res)
	if res.StartupTimeMs == nil || *res.StartupTimeMs <= 0 {
		t.Fatalf("startup_time_ms missing or zero: %s", r.Body)
	}
	if v := env.latest("hello"); v.Spec.StartupTimeMs != *res.StartupTimeMs {
		t.Fatalf("spec.startupTimeMs = %d, answer %d", v.Spec.StartupTimeMs, *res.StartupTimeMs)
	} else if got := v.Annotations[apiv1.AnnotationValidatedBy]; got != workerd.Version {
		t.Fatalf("validated-by annotation %q, want %q: the build would start it again", got, workerd.Version)
	}
	t.Logf("startup_time_ms = %d", *res.StartupTimeMs)

	// versions upload too.
	r = env.must(env.upload(http.MethodPost, "/scripts/hello/versions", esmMeta(), esm("index.js", helloESM)))
	r.into(t, &res)
	if res.StartupTimeMs == nil || *res.StartupTimeMs <= 0 {
		t.Fatalf("versions upload: startup_time_ms missing or zero: %s", r.Body)
	}

	// A syntax error: 400, code 10021, workerd's message, nothing stored.
	before := env.snapshot()
	r = env.upload(http.MethodPut, "/scripts/hello", esmMeta(), esm("index.js", "export default {\n  fetch() {\n    return new Response(\"hi\"\n  }\n};\n"))
	env.fails(r, http.StatusBadRequest, store.CodeScriptValidation, "Uncaught SyntaxError")
	env.fails(r, http.StatusBadRequest, store.CodeScriptValidation, "index.js:3:")
	env.unchanged(before)

	// Service-worker syntax with vars, a secret and a KV namespace; a date
	// newer than the runtime is clamped and still starts.
	meta := map[string]any{
		"body_part": "worker.js", "compatibility_date": "2099-01-01",
		"bindings": []map[string]any{
			{"name": "GREETING", "type": "plain_text", "text": "hello"},
			{"name": "CONF", "type": "json", "json": map[string]any{"a": 1}},
			{"name": "TOKEN", "type": "secret_text", "text": "s3cr3t"},
			{"name": "MYKV", "type": "kv_namespace", "namespace_id": "d5d2b0405f5ff994b5805e2a7e9068ca"},
		},
	}
	sw := scPart{name: "worker.js", ct: "application/javascript", data: `if (GREETING !== "hello" || CONF.a !== 1) throw new Error("bad globals");
addEventListener("fetch", (e) => e.respondWith(new Response(GREETING)));`}
	env.must(env.upload(http.MethodPut, "/scripts/sw", meta, sw))
	if v := env.latest("sw"); v.Spec.CompatibilityDate != workerd.MaxCompatibilityDate || v.Spec.StartupTimeMs <= 0 {
		t.Fatalf("sw version: date %s, startup %d", v.Spec.CompatibilityDate, v.Spec.StartupTimeMs)
	}

	// A top-level exception is refused the same way.
	before = env.snapshot()
	r = env.upload(http.MethodPut, "/scripts/sw", meta, scPart{name: "worker.js", ct: "application/javascript", data: `throw new Error("boom")`})
	env.fails(r, http.StatusBadRequest, store.CodeScriptValidation, "Uncaught Error: boom")
	env.unchanged(before)
}
