package workerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/embed/embedtest"
	"github.com/octohq/octo/internal/workerd/workerdtest"
)

// counterJS is a Durable Object counter (SQL storage) behind a Worker
// whose /inc increments the object "a" over RPC and answers the count.
const counterJS = `import { DurableObject } from "cloudflare:workers";
export class Counter extends DurableObject {
  async increment() {
    this.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS c (id INTEGER PRIMARY KEY, n INTEGER)");
    this.ctx.storage.sql.exec("INSERT INTO c VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1");
    return this.ctx.storage.sql.exec("SELECT n FROM c").one().n;
  }
}
export default {
  async fetch(req, env) {
    return new Response(String(await env.COUNTER.get(env.COUNTER.idFromName("a")).increment()));
  },
};`

// counterVersion is a version of script counter that binds its class
// Counter (namespace ns).
func counterVersion(id, ns string) *apiv1.WorkerVersion {
	return &apiv1.WorkerVersion{Spec: apiv1.WorkerVersionSpec{
		ScriptName: "counter", VersionID: id, MainModule: "index.js", CompatibilityDate: "2025-04-01",
		Modules:  []apiv1.WorkerModule{{Name: "index.js", Type: apiv1.ModuleESModule}},
		Bindings: []apiv1.WorkerBinding{{Name: "COUNTER", Type: apiv1.BindingDurableObject, ClassName: "Counter", NamespaceID: ns}},
		DurableObjects: &apiv1.VersionDurableObjects{MigrationTag: "v1",
			Classes: []apiv1.DurableObjectClass{{ClassName: "Counter", NamespaceID: ns, SQLite: true}}},
	}}
}

// TestServeDurableObjects runs, in a real workerd, the host of a class on
// local disk, its traced twin and another version of the script: all three
// reach the same objects (one instance), and the count survives a restart.
func TestServeDurableObjects(t *testing.T) {
	bin := workerdBin(t)
	const ns = "0123456789abcdef0123456789abcdef"
	storeDir := t.TempDir()
	host, err := FromVersion(counterVersion("0a0a0a0a-0000-4000-8000-000000000001", ns), map[string]string{"index.js": "host/index.js"}, Targets{ObjectStorage: "store"})
	if err != nil {
		t.Fatal(err)
	}
	twin := host.Traced(8081)
	client, err := FromVersion(counterVersion("0b0b0b0b-0000-4000-8000-000000000001", ns), map[string]string{"index.js": "host/index.js"}, Targets{ObjectHost: host.Name})
	if err != nil {
		t.Fatal(err)
	}
	if len(twin.DurableObjects) != 0 || len(client.DurableObjects) != 0 || twin.Bindings[0].Service != host.Name {
		t.Fatalf("the twin and the other version must not host the class: %+v / %+v", twin, client)
	}
	ports := map[string]int{}
	for _, w := range []*Worker{&host, &twin, &client} {
		ports[w.Name] = embedtest.FreePort(t)
		w.Address, w.UnixSocket = "127.0.0.1:"+strconv.Itoa(ports[w.Name]), ""
	}
	text, err := Config{Workers: []Worker{host, twin, client}, Disks: []DiskService{{Name: "store", Path: storeDir, Writable: true}}}.Render()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"config.capnp": text, "host/index.js": counterJS})
	inc := func(t *testing.T, w Worker, stderr func() string) string {
		t.Helper()
		res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", ports[w.Name]))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("%s: %s %s (stderr %s)", w.Name, res.Status, b, stderr())
		}
		return string(b)
	}
	t.Run("one-instance", func(t *testing.T) {
		_, stderr := workerdtest.Serve(t, bin, filepath.Join(dir, "config.capnp"), client.Name, nil)
		var got []string
		for _, w := range []Worker{host, twin, client} {
			got = append(got, inc(t, w, stderr))
		}
		if strings.Join(got, ",") != "1,2,3" {
			t.Errorf("host, twin, other version counted %v, want 1,2,3 (one object)", got)
		}
	})
	t.Run("after-restart", func(t *testing.T) {
		_, stderr := workerdtest.Serve(t, bin, filepath.Join(dir, "config.capnp"), client.Name, nil)
		if got := inc(t, host, stderr); got != "4" {
			t.Errorf("after a restart the count is %s, want 4", got)
		}
	})
	files, _ := filepath.Glob(filepath.Join(storeDir, ns, "*.sqlite"))
	if len(files) == 0 {
		t.Errorf("nothing stored under %s", filepath.Join(storeDir, ns))
	}
}

// TestValidateUnexportedClass: a Worker hosting a class its code does not
// export is refused with the class named; one that exports it starts (its
// objects in memory during validation).
func TestValidateUnexportedClass(t *testing.T) {
	bin := workerdBin(t)
	v := counterVersion("0c0c0c0c-0000-4000-8000-000000000001", "0123456789abcdef0123456789abcdef")
	v.Spec.DurableObjects.Classes = append(v.Spec.DurableObjects.Classes, apiv1.DurableObjectClass{ClassName: "Missing", NamespaceID: "fedcba9876543210fedcba9876543210"})
	w, err := FromVersion(v, map[string]string{"index.js": "index.js"}, Targets{})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"index.js": []byte(counterJS)}
	_, err = testValidator(bin).Validate(context.Background(), w, files)
	var ue *UnexportedClassError
	if !errors.As(err, &ue) || !slices.Equal(ue.Classes, []string{"Missing"}) {
		t.Fatalf("Validate = %v, want the unexported class Missing", err)
	}
	w.DurableObjects = w.DurableObjects[:1]
	if _, err := testValidator(bin).Validate(context.Background(), w, files); err != nil {
		t.Fatalf("a Worker exporting its class: %v", err)
	}
}

// TestRenderRefusesAnUnhostedClass: a binding to a class no Worker of the
// config hosts would stop workerd at start; Render refuses it.
func TestRenderRefusesAnUnhostedClass(t *testing.T) {
	w := counterVersion("0d0d0d0d-0000-4000-8000-000000000001", "0123456789abcdef0123456789abcdef")
	w.Spec.DurableObjects = nil
	worker, err := FromVersion(w, map[string]string{"index.js": "index.js"}, Targets{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (Config{Workers: []Worker{worker}}).Render(); err == nil || !strings.Contains(err.Error(), `hosts no Durable Object class "Counter"`) {
		t.Errorf("Render = %v, want the unhosted class refused", err)
	}
}
