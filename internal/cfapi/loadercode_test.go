package cfapi

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/octohq/octo/internal/store"
)

// TestLoaderCodeOfAnUpload: what a bundle pod's loader host gets for an
// uploaded version (store.Store.LoaderCode) is that version's code, vars and
// the secret value pinned to it; a version with a KV binding is refused as
// not loadable, an unknown one as not found.
func TestLoaderCodeOfAnUpload(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t).withKVNamespace()
	ctx := context.Background()
	const script = "loaded"
	env.deployHello(script, map[string]any{"name": "GREETING", "type": "plain_text", "text": "hi"})
	env.must(env.call(http.MethodPut, "/scripts/"+script+"/secrets", map[string]string{"name": "API_KEY", "text": "one", "type": "secret_text"}))
	one := env.latest(script)
	env.must(env.call(http.MethodPut, "/scripts/"+script+"/secrets", map[string]string{"name": "API_KEY", "text": "two", "type": "secret_text"}))
	two := env.latest(script)

	for v, want := range map[string]string{one.Spec.VersionID: "one", two.Spec.VersionID: "two"} {
		code, err := env.st.LoaderCode(ctx, env.acct.ID, script, v)
		if err != nil {
			t.Fatalf("version %s: %v", v, err)
		}
		if code.MainModule != "index.js" || len(code.Modules) != 1 || code.Modules[0].Type != "js" || code.Modules[0].Text != helloESM {
			t.Errorf("version %s modules %+v (main %q), want index.js alone, as uploaded (no source map)", v, code.Modules, code.MainModule)
		}
		env := map[string]string{}
		for _, b := range code.Env {
			if b.Text != nil {
				env[b.Name] = *b.Text
			}
		}
		if env["GREETING"] != "hi" || env["API_KEY"] != want || len(code.Env) != 2 {
			t.Errorf("version %s env %v, want GREETING=hi API_KEY=%s", v, env, want)
		}
	}

	env.deployHello("with-kv", map[string]any{"name": "KV", "type": "kv_namespace", "namespace_id": scKVNamespace})
	if _, err := env.st.LoaderCode(ctx, env.acct.ID, "with-kv", env.latest("with-kv").Spec.VersionID); !errors.Is(err, store.ErrNotLoadable) {
		t.Errorf("a version with a KV binding: %v, want ErrNotLoadable", err)
	}
	for name, c := range map[string]struct{ account, script, version string }{
		"unknown version": {env.acct.ID, script, "33333333-0000-4000-8000-000000000003"},
		"unknown script":  {env.acct.ID, "nope", one.Spec.VersionID},
		"other account":   {"0123456789abcdef0123456789abcdef", script, one.Spec.VersionID},
	} {
		_, err := env.st.LoaderCode(ctx, c.account, c.script, c.version)
		if se := store.AsError(err); se == nil || se.Kind != store.NotFound {
			t.Errorf("%s: %v, want NotFound", name, err)
		}
	}
}
