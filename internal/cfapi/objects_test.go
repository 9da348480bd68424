package cfapi

import (
	"net/http"
	"testing"

	"github.com/octohq/octo/internal/store"
)

// TestDurableObjectMigrations walks wrangler's Durable Object flow: a PUT
// with migrations creates the classes and records the tag, which the
// scripts list (wrangler ≤ 4.120) and the service (wrangler ≥ 4.121) show;
// bindings get their namespace; a redeploy without migrations keeps them;
// a rename keeps the namespace; refusals change nothing.
func TestDurableObjectMigrations(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	const script = "counter"
	put := "/scripts/" + script + "?excludeScript=true&bindings_inherit=strict"
	binding := map[string]any{"name": "COUNTER", "type": "durable_object_namespace", "class_name": "Counter"}
	meta := esmMeta(binding)
	meta["migrations"] = map[string]any{"new_tag": "v1", "steps": []any{map[string]any{"new_sqlite_classes": []string{"Counter"}}}}
	env.must(env.upload(http.MethodPut, put, meta, esm("index.js", helloESM)))

	v := env.latest(script)
	class := v.Spec.DurableObjects.Class("Counter")
	if v.Spec.DurableObjects.MigrationTag != "v1" || class == nil || !class.SQLite {
		t.Fatalf("durableObjects = %+v", v.Spec.DurableObjects)
	}
	if b := bindingByName(v, "COUNTER"); b == nil || b.ClassName != "Counter" || b.NamespaceID != class.NamespaceID {
		t.Fatalf("binding = %+v, want class Counter in namespace %s", b, class.NamespaceID)
	}
	tag := func() (list, service string) {
		var scripts []struct {
			ID           string `json:"id"`
			MigrationTag string `json:"migration_tag"`
		}
		env.must(env.call(http.MethodGet, "/scripts", nil)).into(t, &scripts)
		for _, s := range scripts {
			if s.ID == script {
				list = s.MigrationTag
			}
		}
		var svc struct {
			DefaultEnvironment struct {
				Script struct {
					MigrationTag string `json:"migration_tag"`
				} `json:"script"`
			} `json:"default_environment"`
		}
		env.must(env.call(http.MethodGet, "/services/"+script, nil)).into(t, &svc)
		return list, svc.DefaultEnvironment.Script.MigrationTag
	}
	if l, s := tag(); l != "v1" || s != "v1" {
		t.Errorf("migration_tag: scripts list %q, service %q, want v1", l, s)
	}
	var settings struct {
		Bindings []map[string]any `json:"bindings"`
	}
	env.must(env.call(http.MethodGet, "/scripts/"+script+"/settings", nil)).into(t, &settings)
	if len(settings.Bindings) != 1 || settings.Bindings[0]["class_name"] != "Counter" || settings.Bindings[0]["namespace_id"] != class.NamespaceID {
		t.Errorf("settings bindings = %v", settings.Bindings)
	}

	// A redeploy without migrations (wrangler sends none once the tag is
	// current), and a version upload, keep the classes.
	env.must(env.upload(http.MethodPut, put, esmMeta(binding), esm("index.js", helloESM)))
	env.must(env.upload(http.MethodPost, "/scripts/"+script+"/versions?bindings_inherit=strict", esmMeta(binding), esm("index.js", helloESM)))
	if v := env.latest(script); v.Spec.DurableObjects.Class("Counter").NamespaceID != class.NamespaceID {
		t.Fatalf("after a redeploy: %+v", v.Spec.DurableObjects)
	}

	// Refusals: nothing changes.
	before := env.snapshot()
	renamed := map[string]any{"name": "COUNTER", "type": "durable_object_namespace", "class_name": "Tally"}
	for _, tc := range []struct {
		name     string
		method   string
		bindings []map[string]any
		m        map[string]any
		code     int
		msg      string
	}{
		{"stale old_tag", http.MethodPut, []map[string]any{binding}, map[string]any{"old_tag": "v0", "new_tag": "v2", "new_classes": []string{"B"}}, store.CodeMigrationTag, "current tag is 'v1'"},
		{"migrations in a version upload", http.MethodPost, []map[string]any{binding}, map[string]any{"old_tag": "v1", "new_tag": "v2", "new_classes": []string{"B"}}, store.CodeVersionedMigration, "non-versioned deployment"},
		{"binding to a class no migration made", http.MethodPut, []map[string]any{binding, {"name": "B", "type": "durable_object_namespace", "class_name": "B"}}, nil, store.CodeObjectBinding, "'B'"},
		{"delete a class still bound", http.MethodPut, []map[string]any{binding}, map[string]any{"old_tag": "v1", "new_tag": "v2", "deleted_classes": []string{"Counter"}}, store.CodeObjectBinding, "'Counter'"},
		{"a class that exists", http.MethodPut, []map[string]any{binding}, map[string]any{"old_tag": "v1", "new_tag": "v2", "new_sqlite_classes": []string{"Counter"}}, store.CodeObjectMigration, "already has"},
		{"transferred classes", http.MethodPut, []map[string]any{binding}, map[string]any{"old_tag": "v1", "new_tag": "v2", "transferred_classes": []any{map[string]any{"from": "A", "from_script": "x", "to": "C"}}}, store.CodeBadRequest, "transferred_classes"},
	} {
		m := esmMeta(tc.bindings...)
		if tc.m != nil {
			m["migrations"] = tc.m
		}
		path := put
		if tc.method == http.MethodPost {
			path = "/scripts/" + script + "/versions?bindings_inherit=strict"
		}
		env.fails(env.upload(tc.method, path, m, esm("index.js", helloESM)), http.StatusBadRequest, tc.code, tc.msg)
	}
	env.unchanged(before)

	// A rename keeps the namespace, so the objects keep their storage.
	meta = esmMeta(renamed)
	meta["migrations"] = map[string]any{"old_tag": "v1", "new_tag": "v2", "renamed_classes": []any{map[string]any{"from": "Counter", "to": "Tally"}}}
	env.must(env.upload(http.MethodPut, put, meta, esm("index.js", helloESM)))
	v = env.latest(script)
	if c := v.Spec.DurableObjects.Class("Tally"); v.Spec.DurableObjects.MigrationTag != "v2" || c == nil || c.NamespaceID != class.NamespaceID || v.Spec.DurableObjects.Class("Counter") != nil {
		t.Errorf("after the rename: %+v", v.Spec.DurableObjects)
	}
	if l, s := tag(); l != "v2" || s != "v2" {
		t.Errorf("migration_tag after the rename: %q, %q", l, s)
	}
	// A rollback across the migration would run the old class name on the
	// renamed storage: refused, as Cloudflare does.
	first := env.versions(script)[0].Spec.VersionID
	env.fails(env.call(http.MethodPost, "/scripts/"+script+"/deployments",
		map[string]any{"strategy": "percentage", "versions": []any{map[string]any{"version_id": first, "percentage": 100}}}),
		http.StatusBadRequest, store.CodeObjectMigration, "other Durable Object classes")
}
