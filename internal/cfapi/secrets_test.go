package cfapi

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"testing"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/builder"
	"github.com/octohq/octo/internal/store"
)

// TestSecretsPinnedPerVersion: a secret value belongs to the version that set
// it, as on Cloudflare. A version uploaded or patched but not deployed does
// not change production, a rollback brings the old value back, a gradual
// deployment serves each version its own value, and removing a secret keeps
// the value for the versions that still bind it.
func TestSecretsPinnedPerVersion(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	const script = "pinned-app"
	env.deployHello(script)
	put := func(name, value string) apiv1.WorkerVersion {
		t.Helper()
		env.must(env.call(http.MethodPut, "/scripts/"+script+"/secrets", map[string]string{"name": name, "text": value, "type": "secret_text"}))
		return env.latest(script)
	}
	reads := func(v apiv1.WorkerVersion, want string) {
		t.Helper()
		if got, ok := env.secretOf(v, "API_KEY"); !ok || got != want {
			t.Errorf("version %d reads API_KEY = %q (stored: %v), want %q", v.Spec.Number, got, ok, want)
		}
	}
	deploy := func(traffic map[string]int) {
		t.Helper()
		var versions []map[string]any
		for _, id := range slices.Sorted(maps.Keys(traffic)) {
			versions = append(versions, map[string]any{"version_id": id, "percentage": traffic[id]})
		}
		env.must(env.call(http.MethodPost, "/scripts/"+script+"/deployments", map[string]any{"versions": versions}))
	}
	// podEnv is the variable the pods give version v's API_KEY.
	podEnv := func(v apiv1.WorkerVersion) string {
		t.Helper()
		b := bindingByName(v, "API_KEY")
		if b == nil {
			t.Fatalf("version %d does not bind API_KEY", v.Spec.Number)
		}
		return builder.SecretEnv(script, b.SecretKey())
	}

	// secret put twice, then a rollback to the first value.
	one := put("API_KEY", "one")
	two := put("API_KEY", "two")
	reads(one, "one")
	reads(two, "two")
	deploy(map[string]int{one.Spec.VersionID: 100})
	prod := env.deployed(script)
	if prod.Spec.VersionID != one.Spec.VersionID {
		t.Fatalf("rollback deployed version %d, want %d", prod.Spec.Number, one.Spec.Number)
	}
	reads(prod, "one")
	if podEnv(prod) == podEnv(two) {
		t.Errorf("versions %d and %d share the variable %s", one.Spec.Number, two.Spec.Number, podEnv(prod))
	}

	// versions upload with a new value (versions upload --secrets-file):
	// production keeps reading its own.
	env.must(env.upload(http.MethodPost, "/scripts/"+script+"/versions",
		esmMeta(map[string]any{"name": "API_KEY", "type": "secret_text", "text": "uploaded"}), esm("index.js", helloESM)))
	uploaded := env.latest(script)
	reads(uploaded, "uploaded")
	reads(env.deployed(script), "one")

	// versions secret put (PATCH versions/latest): likewise.
	env.must(env.call(http.MethodPatch, env.workerPath(script)+"/versions/latest", `{"env":{"API_KEY":{"type":"secret_text","text":"patched"}}}`))
	patched := env.latest(script)
	reads(patched, "patched")
	reads(env.deployed(script), "one")
	reads(uploaded, "uploaded")

	// A gradual deployment: each version its own key and variable.
	deploy(map[string]int{one.Spec.VersionID: 40, patched.Spec.VersionID: 60})
	reads(one, "one")
	reads(patched, "patched")
	if podEnv(one) == podEnv(patched) {
		t.Errorf("the two deployed versions share the variable %s", podEnv(one))
	}

	// secret delete: the new version does without it, the older ones keep
	// their values.
	deploy(map[string]int{patched.Spec.VersionID: 100})
	env.must(env.call(http.MethodDelete, "/scripts/"+script+"/secrets/API_KEY", nil))
	if b := bindingByName(env.latest(script), "API_KEY"); b != nil {
		t.Errorf("secret delete left %+v", b)
	}
	for v, value := range map[*apiv1.WorkerVersion]string{&one: "one", &two: "two", &uploaded: "uploaded", &patched: "patched"} {
		reads(*v, value)
	}
	if got := env.secretNames(script); len(got) != 0 {
		t.Errorf("secret list after delete = %v", got)
	}

	// The next secret write drops the values no version binds any more.
	if err := env.c.Delete(context.Background(), &two); err != nil {
		t.Fatal(err)
	}
	other := put("OTHER", "x")
	sec := env.secret(script)
	want := []string{"API_KEY.v2", "API_KEY.v4", "API_KEY.v5", store.VersionSecretKey("OTHER", other.Spec.Number)}
	if got := slices.Sorted(maps.Keys(sec.Data)); !slices.Equal(got, want) {
		t.Errorf("Secret keys after version %d is gone = %v, want %v", two.Spec.Number, got, want)
	}

	// Sending an unchanged value again (secret bulk) reuses its key.
	env.must(env.call(http.MethodPatch, "/scripts/"+script+"/secrets-bulk", `{"secrets":{"OTHER":{"name":"OTHER","text":"x","type":"secret_text"}}}`))
	again := env.latest(script)
	if b, ob := bindingByName(again, "OTHER"), bindingByName(other, "OTHER"); b == nil || b.SecretKey() != ob.SecretKey() {
		t.Errorf("unchanged OTHER bound as %+v, want the key of version %d", b, other.Spec.Number)
	}
	if n := len(env.secret(script).Data); n != len(want) {
		t.Errorf("Secret has %d keys after an unchanged value, want %d", n, len(want))
	}
}
