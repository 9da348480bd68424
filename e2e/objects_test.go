//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/controller"
)

var workerBundles = schema.GroupVersionResource{Group: apiv1.Group, Version: apiv1.Version, Resource: "workerbundles"}

// durableObjects is TestWorkers' Durable Objects step: `wrangler deploy`
// with a new_sqlite_classes migration, a counter object per name reached
// over RPC and fetch (SQL and KV storage, an alarm), its own pod replaced
// rather than rolled, its storage in the data dir; a redeploy keeps every
// count; a binding to a class no migration made and a class the code does
// not export are refused with Cloudflare's codes, and change nothing.
func durableObjects(t *testing.T, w *wranglerCLI, g *gatewayClient, e *env, vars map[string]string, dir string) {
	const script = "e2e-counter"
	w.must(t, dir, "", "deploy")
	g.waitBody(t, script, "/release", "one")
	for i := 1; i <= 3; i++ {
		g.wantBody(t, script, "/inc/a", strconv.Itoa(i)+" one")
	}
	g.wantBody(t, script, "/inc/b", "1 one")
	g.wantBody(t, script, "/unique/a", "true")
	g.wantBody(t, script, "/alarm/a", "alarm set")
	g.waitBody(t, script, "/a", "count=3 alarms=1")

	c := newCluster(t, vars)
	vs := c.versions(t, script)
	objects := vs[len(vs)-1].Spec.DurableObjects
	class := objects.Class("Counter")
	if objects == nil || objects.MigrationTag != "v1" || class == nil || !class.SQLite {
		t.Fatalf("the version records Durable Objects %+v, want class Counter (sqlite) at tag v1", objects)
	}
	files, _ := filepath.Glob(filepath.Join(e.cfg.DurableObjectsDir(), vars["CLOUDFLARE_ACCOUNT_ID"], class.NamespaceID, "*.sqlite"))
	if len(files) < 2 { // the objects a and b, and workerd's metadata.sqlite
		t.Errorf("the data dir holds %v for namespace %s, want the objects' SQLite files", files, class.NamespaceID)
	}
	checkObjectsPod(t, c, script)

	// A redeploy (no new migration: wrangler reads tag v1 back) keeps the counts.
	cfg := redeployTwo(t, w, g, dir)
	g.wantBody(t, script, "/inc/a", "4 two")
	g.wantBody(t, script, "/inc/b", "2 two")

	// Refusals, with Cloudflare's codes; the Worker keeps serving its state.
	redeployed, _ := os.ReadFile(cfg)
	for _, bad := range []struct{ name, config, code string }{
		{"binding without a migration", string(redeployed) + "\n[[durable_objects.bindings]]\nname = \"SPARE\"\nclass_name = \"Spare\"\n", "10061"},
		{"class not exported", string(redeployed) + "\n[[migrations]]\ntag = \"v2\"\nnew_sqlite_classes = [\"Missing\"]\n", "10070"},
	} {
		writeConfig(t, cfg, bad.config)
		stdout, stderr, code := w.wrangler(t, dir, "", "deploy")
		if code == 0 || !strings.Contains(stdout+stderr, bad.code) {
			t.Errorf("%s: wrangler deploy exited %d, want a refusal with code %s:\n%s\n%s", bad.name, code, bad.code, stdout, stderr)
		}
	}
	writeConfig(t, cfg, string(redeployed))
	if vs2 := c.versions(t, script); len(vs2) != len(vs)+1 || vs2[len(vs2)-1].Spec.DurableObjects.MigrationTag != "v1" {
		t.Errorf("after the refusals the script has %d versions (want %d), tag %q", len(vs2), len(vs)+1, vs2[len(vs2)-1].Spec.DurableObjects.MigrationTag)
	}
	g.wantBody(t, script, "/a", "count=4 alarms=1")
}

// objectsMigrationTag is TestWrangler's check for one client: a first
// deploy with the migration, then a redeploy, for which the client must
// read the script's migration_tag back (wrangler 3 and 4 before 4.121 from
// the scripts list, later ones from the service) and send no migration
// again; the object keeps its count.
func objectsMigrationTag(t *testing.T, w *wranglerCLI, g *gatewayClient, dir string) {
	const script = "e2e-counter"
	w.must(t, dir, "", "deploy")
	g.waitBody(t, script, "/release", "one")
	g.wantBody(t, script, "/inc/a", "1 one")
	redeployTwo(t, w, g, dir)
	g.wantBody(t, script, "/inc/a", "2 two")
}

// redeployTwo changes the counter's RELEASE to "two", deploys it and waits
// until it answers; it returns the path of the project's wrangler.toml.
func redeployTwo(t *testing.T, w *wranglerCLI, g *gatewayClient, dir string) string {
	t.Helper()
	cfg := filepath.Join(dir, "wrangler.toml")
	orig, _ := os.ReadFile(cfg)
	writeConfig(t, cfg, strings.Replace(string(orig), `RELEASE = "one"`, `RELEASE = "two"`, 1))
	w.must(t, dir, "", "deploy")
	g.waitBody(t, "e2e-counter", "/release", "two")
	return cfg
}

// objectsSurvived is the down-up check: the counts are where they were.
func objectsSurvived(t *testing.T, g *gatewayClient) {
	g.waitBody(t, "e2e-counter", "/a", "count=4 alarms=1")
	g.wantBody(t, "e2e-counter", "/inc/a", "5 two")
	g.wantBody(t, "e2e-counter", "/inc/b", "3 two")
}

// checkObjectsPod checks that the script's classes run in a bundle of its
// own, whose Deployment replaces its single pod (Recreate).
func checkObjectsPod(t *testing.T, c *cluster, script string) {
	t.Helper()
	for _, b := range list[apiv1.WorkerBundle](t, c, workerBundles) {
		hosts := false
		for _, w := range b.Spec.Workers {
			hosts = hosts || (w.ScriptName == script && w.DurableObjects)
		}
		if !hosts {
			continue
		}
		for _, w := range b.Spec.Workers {
			if w.ScriptName != script && !w.Copy {
				t.Errorf("bundle %s hosts %s's Durable Objects and also runs %s", b.Name, script, w.ScriptName)
			}
		}
		var dep *appsv1.Deployment
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
			d, err := c.cs.AppsV1().Deployments(b.Namespace).Get(context.Background(), controller.WorkloadName(b.Name), metav1.GetOptions{})
			if err == nil && len(d.Spec.Template.Spec.Volumes) > 1 {
				dep = d
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Deployment of bundle %s: %v, %+v", b.Name, err, d)
			}
		}
		if dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || *dep.Spec.Replicas != 1 {
			t.Errorf("Deployment %s: strategy %s, %d replicas; want Recreate with 1", dep.Name, dep.Spec.Strategy.Type, *dep.Spec.Replicas)
		}
		return
	}
	t.Errorf("no bundle hosts the Durable Objects of %s", script)
}

func writeConfig(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// wantBody requests path of script once and wants 200 with want.
func (g *gatewayClient) wantBody(t *testing.T, script, path, want string) {
	t.Helper()
	code, body, err := g.get(script, path)
	if err != nil || code != 200 || body != want {
		t.Errorf("%s%s = %d %q %v, want 200 %q", g.host(script), path, code, body, err, want)
	}
}
