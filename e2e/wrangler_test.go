//go:build e2e

package e2e

// TestWrangler drives a real octo with the real, pinned wrangler CLI
// (e2e/node_modules, from e2e/package-lock.json: run `npm ci --prefix e2e`)
// and checks what each command leaves in the cluster (WorkerVersion,
// WorkerRelease, Secret objects of group api.cf-worker/v1) and in S3.
//
// The worker projects are under testdata/workers/<name>/; each has an
// expect.txt with the body its GET / must return once served.
//
// wrangler runs with a minimal environment (see newWrangler) that keeps every
// call on loopback: the API base URL from `octo env`, telemetry and error
// reports off, and the update check pointed at a local npm-registry stub.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	apiv1 "github.com/octohq/octo/api/v1"
)

// wasmAdd is testdata/workers/wasm/src/add.wasm, written by hand: one function
// add(i32, i32) -> i32, exported as "add".
var wasmAdd = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
	0x01, 0x07, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f, // type section: (i32, i32) -> i32
	0x03, 0x02, 0x01, 0x00, // function section: function 0 has type 0
	0x07, 0x07, 0x01, 0x03, 'a', 'd', 'd', 0x00, 0x00, // export section: "add" = function 0
	0x0a, 0x09, 0x01, 0x07, 0x00, 0x20, 0x00, 0x20, 0x01, 0x6a, 0x0b, // code: local.get 0, local.get 1, i32.add, end
}

const (
	secretValue     = "s3cr3t-e2e-value"
	wranglerTimeout = 3 * time.Minute
	compatDate      = "2025-01-01"
)

// outsideSigns must not appear in any wrangler output: they would mean
// telemetry (sparrow), error reporting (sentry) or the update check reached
// something other than the loopback stubs.
var outsideSigns = []string{"sparrow", "sentry", "update available"}

var (
	workerVersions = schema.GroupVersionResource{Group: apiv1.Group, Version: apiv1.Version, Resource: "workerversions"}
	workerReleases = schema.GroupVersionResource{Group: apiv1.Group, Version: apiv1.Version, Resource: "workerreleases"}
)

// project is one worker project of the corpus.
type project struct {
	dir     string // under testdata/workers
	script  string // its wrangler config's name
	prepare func(t *testing.T, dir string)
	check   func(t *testing.T, v apiv1.WorkerVersion)
}

// deployed is a project that `wrangler deploy` deployed once.
type deployed struct {
	dir       string // the project's working copy
	script    string
	versionID string // the first deploy's "Current Version ID"
}

// TestWrangler runs the suite once per pinned wrangler release, side by
// side on one octo: each client in its own account (4.86 in the default
// one), so that they share no state.
func TestWrangler(t *testing.T) {
	e := bootOcto(t)
	vars := parseEnv(t, e.mustOcto("env"))
	for _, cl := range wranglerClients {
		t.Run(cl.name, func(t *testing.T) {
			t.Parallel()
			v, sub := vars, "octo"
			if cl != wrangler486 {
				v, sub = newAccount(t, vars, cl.subdomain), cl.subdomain
			}
			wranglerSuite(t, e.with(t), v, sub, cl)
		})
	}
}

// wranglerSuite is TestWrangler for one client in the account of vars,
// whose workers subdomain is sub.
func wranglerSuite(t *testing.T, e *env, vars map[string]string, sub string, cl wranglerClient) {
	w := newWranglerFor(t, vars, cl)
	c := newCluster(t, vars)
	g := newGatewayClient(t, vars)
	g.subdomain = sub
	work := t.TempDir() // working copies of the projects; wrangler writes .wrangler/ into them

	t.Run("corpus", func(t *testing.T) {
		if b, err := os.ReadFile("testdata/workers/wasm/src/add.wasm"); err != nil || !bytes.Equal(b, wasmAdd) {
			t.Errorf("testdata/workers/wasm/src/add.wasm = % x, %v; want % x", b, err, wasmAdd)
		}
		out := w.must(t, work, "", "--version")
		if !strings.Contains(out, cl.version) {
			t.Fatalf("wrangler --version = %q, want %s (run npm ci --prefix e2e)", out, cl.version)
		}
	})

	t.Run("whoami", func(t *testing.T) {
		out := w.must(t, work, "", "whoami")
		if !strings.Contains(out, c.acct) {
			t.Fatalf("whoami does not show account %s:\n%s", c.acct, out)
		}
	})

	t.Run("wrong-token", func(t *testing.T) {
		stdout, stderr, code := w.run(t, work, "", []string{"CLOUDFLARE_API_TOKEN=wrong"}, "whoami")
		all := stdout + stderr
		if code == 0 || !strings.Contains(all, "Authentication error") || !strings.Contains(all, "10000") {
			t.Fatalf("whoami with a wrong token: exit %d, want non-zero and the authentication error (code 10000):\n%s", code, all)
		}
	})

	var mykvID string // the namespace the kv project's MYKV binding names
	projects := []project{
		{dir: "esm", script: "e2e-esm", check: func(t *testing.T, v apiv1.WorkerVersion) {
			if v.Spec.BodyPart != "" || v.Spec.MainModule == "" {
				t.Errorf("mainModule=%q bodyPart=%q, want an ES-module worker", v.Spec.MainModule, v.Spec.BodyPart)
			}
			wantModule(t, v, v.Spec.MainModule, apiv1.ModuleESModule)
		}},
		{dir: "service-worker", script: "e2e-service-worker", check: func(t *testing.T, v apiv1.WorkerVersion) {
			if v.Spec.MainModule != "" || v.Spec.BodyPart == "" {
				t.Errorf("mainModule=%q bodyPart=%q, want a service-worker script", v.Spec.MainModule, v.Spec.BodyPart)
			}
			wantModule(t, v, v.Spec.BodyPart, apiv1.ModuleServiceWorker)
		}},
		{dir: "bundled-text", script: "e2e-bundled-text", check: func(t *testing.T, v apiv1.WorkerVersion) {
			for _, m := range v.Spec.Modules {
				if m.Type == apiv1.ModuleText && strings.HasSuffix(m.Name, "banner.txt") && m.Size == int64(len("bundled banner\n")) {
					return
				}
			}
			t.Errorf("no text module *banner.txt of %d bytes in %+v", len("bundled banner\n"), v.Spec.Modules)
		}},
		{dir: "no-bundle", script: "e2e-no-bundle", check: func(t *testing.T, v apiv1.WorkerVersion) {
			if v.Spec.MainModule != "index.js" {
				t.Errorf("mainModule = %q, want index.js", v.Spec.MainModule)
			}
			wantModule(t, v, "index.js", apiv1.ModuleESModule)
			wantModule(t, v, "util/lib.js", apiv1.ModuleESModule)
			wantModule(t, v, "banner.txt", apiv1.ModuleText)
		}},
		{dir: "wasm", script: "e2e-wasm", check: func(t *testing.T, v apiv1.WorkerVersion) {
			sum := sha256.Sum256(wasmAdd)
			for _, m := range v.Spec.Modules {
				if m.Type == apiv1.ModuleWasm && m.Size == int64(len(wasmAdd)) && m.SHA256 == hex.EncodeToString(sum[:]) {
					return
				}
			}
			t.Errorf("no wasm module with add.wasm's size and sha256 in %+v", v.Spec.Modules)
		}},
		{dir: "nodejs-compat", script: "e2e-nodejs-compat", check: func(t *testing.T, v apiv1.WorkerVersion) {
			if !slices.Contains(v.Spec.CompatibilityFlags, "nodejs_compat") {
				t.Errorf("compatibilityFlags = %q, want nodejs_compat", v.Spec.CompatibilityFlags)
			}
		}},
		{dir: "vars", script: "e2e-vars", check: func(t *testing.T, v apiv1.WorkerVersion) {
			if b := binding(v, "GREETING"); b == nil || b.Type != apiv1.BindingPlainText || b.Text != "hello" {
				t.Errorf("GREETING binding = %+v, want plain_text \"hello\"", b)
			}
			b := binding(v, "CONF")
			var conf map[string]any
			if b == nil || b.Type != apiv1.BindingJSON || b.JSON == nil || json.Unmarshal(b.JSON.Raw, &conf) != nil || conf["a"] != float64(1) || len(conf) != 1 {
				t.Errorf("CONF binding = %s, want json {\"a\":1}", jsonString(b))
			}
		}},
		{dir: "secret", script: "e2e-secret", check: func(t *testing.T, v apiv1.WorkerVersion) {
			if b := binding(v, "API_KEY"); b != nil {
				t.Errorf("API_KEY binding before any secret put: %+v", b)
			}
		}},
		{dir: "kv", script: "e2e-kv",
			prepare: func(t *testing.T, dir string) {
				cfg := filepath.Join(dir, "wrangler.toml")
				b, err := os.ReadFile(cfg)
				if err != nil {
					t.Fatal(err)
				}
				if w.v3() { // a binding without id (provisioned by deploy) came with wrangler 4
					b = bytes.ReplaceAll(b, []byte("[[kv_namespaces]]\nbinding = \"AUTO_KV\"\n"), nil)
					if err := os.WriteFile(cfg, b, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				mykvID = w.createNamespace(t, dir, "e2e-kv-mykv")
				if err := os.WriteFile(cfg, bytes.ReplaceAll(b, []byte("__MYKV_ID__"), []byte(mykvID)), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, v apiv1.WorkerVersion) {
				if b := binding(v, "MYKV"); b == nil || b.Type != apiv1.BindingKV || b.NamespaceID != mykvID {
					t.Errorf("MYKV binding = %+v, want kv_namespace %s", b, mykvID)
				}
				if w.v3() {
					return
				}
				auto := binding(v, "AUTO_KV")
				if auto == nil || auto.Type != apiv1.BindingKV || auto.NamespaceID == "" || auto.NamespaceID == mykvID {
					t.Fatalf("AUTO_KV binding = %+v, want the kv_namespace wrangler provisioned", auto)
				}
				// wrangler titles the namespace it provisions "<worker>-<binding, lowercase, dashed>".
				if got := w.namespaceID(t, t.TempDir(), "e2e-kv-auto-kv"); got != auto.NamespaceID {
					t.Errorf("kv namespace e2e-kv-auto-kv has id %q, AUTO_KV binding names %q", got, auto.NamespaceID)
				}
			}},
	}

	done := map[string]deployed{}
	need := func(t *testing.T, name string) deployed {
		t.Helper()
		d, ok := done[name]
		if !ok {
			t.Fatalf("project %s was not deployed (see deploy/%s)", name, name)
		}
		return d
	}

	for _, p := range projects {
		t.Run("deploy/"+p.dir, func(t *testing.T) {
			if b, err := os.ReadFile(filepath.Join("testdata/workers", p.dir, "expect.txt")); err != nil || len(b) == 0 {
				t.Errorf("testdata/workers/%s/expect.txt: %v (empty: %v)", p.dir, err, len(b) == 0)
			}
			dir := copyProject(t, p.dir, filepath.Join(work, p.dir))
			if p.prepare != nil {
				p.prepare(t, dir)
			}
			out := w.must(t, dir, "", "deploy")
			id := versionID(t, out, "Current Version ID:")
			v := c.checkStored(t, p.script, id)
			c.checkActive(t, p.script, map[string]int32{id: 100})
			p.check(t, v)
			done[p.dir] = deployed{dir: dir, script: p.script, versionID: id}
			// The URL wrangler printed is the Worker's workers.dev host.
			if host := p.script + "." + sub + ".workers.dev"; !strings.Contains(out, host) {
				t.Errorf("wrangler deploy did not print %s", host)
			}
		})
	}

	t.Run("serving", func(t *testing.T) {
		for _, p := range projects {
			if _, ok := done[p.dir]; ok {
				want := expected(t, p.dir)
				switch {
				case p.dir == "secret":
					want = "API_KEY unset" // its secret comes later (TestWorkers serves it set)
				case p.dir == "kv" && w.v3():
					continue // it reads AUTO_KV, which wrangler 3 cannot provision
				}
				took := g.waitBody(t, p.script, "/", want)
				t.Logf("%s answers after %s", p.script, took.Round(time.Millisecond))
			}
		}
	})

	t.Run("storage-bindings", func(t *testing.T) { storageBindings(t, w, g, work) })
	t.Run("deleted-binding-target", func(t *testing.T) { deletedTarget(t, w, g, work) })
	t.Run("durable-object-migrations", func(t *testing.T) {
		objectsMigrationTag(t, w, g, copyProject(t, "counter", filepath.Join(work, "counter")))
	})

	t.Run("versions", func(t *testing.T) {
		d := need(t, "esm")
		a := d.versionID
		va := c.checkStored(t, d.script, a)

		// versions upload: a new version, no deployment.
		out := w.must(t, d.dir, "", "versions", "upload", "--message", "m2", "--tag", "t2")
		b := versionID(t, out, "Worker Version ID:")
		vb := c.checkStored(t, d.script, b)
		if vb.Spec.Number != va.Spec.Number+1 {
			t.Errorf("uploaded version number %d, want %d", vb.Spec.Number, va.Spec.Number+1)
		}
		if vb.Spec.Annotations[apiv1.AnnotationMessage] != "m2" || vb.Spec.Annotations[apiv1.AnnotationTag] != "t2" {
			t.Errorf("uploaded version annotations = %v, want workers/message=m2 workers/tag=t2", vb.Spec.Annotations)
		}
		c.checkActive(t, d.script, map[string]int32{a: 100})

		var versions []struct {
			ID          string            `json:"id"`
			Annotations map[string]string `json:"annotations"`
		}
		w.mustJSON(t, d.dir, &versions, "versions", "list", "--json")
		var ids []string
		for _, v := range versions {
			ids = append(ids, v.ID)
		}
		if len(versions) != 2 || !slices.Contains(ids, a) || !slices.Contains(ids, b) {
			t.Fatalf("versions list --json ids = %q, want [%s %s]", ids, a, b)
		}

		// versions deploy: a 30/70 split.
		w.must(t, d.dir, "", "versions", "deploy", a+"@30%", b+"@70%", "--yes")
		split := map[string]int32{a: 30, b: 70}
		st := w.deploymentStatus(t, d.dir)
		if got := st.traffic(); !maps.Equal(got, split) {
			t.Fatalf("deployments status after versions deploy: %v, want %v", got, split)
		}
		c.checkActive(t, d.script, split)

		var deps []deploymentJSON
		w.mustJSON(t, d.dir, &deps, "deployments", "list", "--json")
		if len(deps) < 2 {
			t.Fatalf("deployments list --json has %d deployments, want at least 2", len(deps))
		}
		// Found by id: wrangler sorts the list by created_on, which may tie.
		if i := slices.IndexFunc(deps, func(d deploymentJSON) bool { return d.ID == st.ID }); i < 0 || !maps.Equal(deps[i].traffic(), split) {
			t.Errorf("deployments list --json lacks %s with %v: %+v", st.ID, split, deps)
		}

		// rollback to A.
		w.must(t, d.dir, "", "rollback", a, "--message", "back", "--yes")
		st = w.deploymentStatus(t, d.dir)
		if got := st.traffic(); !maps.Equal(got, map[string]int32{a: 100}) {
			t.Fatalf("deployments status after rollback: %v, want %s at 100%%", got, a)
		}
		if st.Annotations["workers/message"] != "back" {
			t.Errorf("rollback deployment annotations = %v, want workers/message=back", st.Annotations)
		}
		c.checkActive(t, d.script, map[string]int32{a: 100})
	})

	t.Run("secret", func(t *testing.T) {
		d := need(t, "secret")
		before := c.versions(t, d.script)

		w.must(t, d.dir, secretValue+"\n", "secret", "put", "API_KEY")
		if !slices.Contains(w.secretNames(t, d.dir), "API_KEY") {
			t.Fatal("secret list lacks API_KEY after secret put")
		}
		// A secret change is a new version deployed at 100%, as on Cloudflare.
		after := c.versions(t, d.script)
		if len(after) != len(before)+1 {
			t.Fatalf("%d WorkerVersions after secret put, want %d", len(after), len(before)+1)
		}
		newest := after[len(after)-1]
		c.checkActive(t, d.script, map[string]int32{newest.Spec.VersionID: 100})
		c.checkSecretBinding(t, newest)
		c.checkNoLeak(t, e.with(t))

		// Secrets survive a deploy that does not mention them.
		out := w.must(t, d.dir, "", "deploy")
		v := c.checkStored(t, d.script, versionID(t, out, "Current Version ID:"))
		c.checkSecretBinding(t, v)
		c.checkNoLeak(t, e.with(t))

		// Non-interactive, wrangler auto-confirms the deletion (no --force flag exists).
		w.must(t, d.dir, "", "secret", "delete", "API_KEY")
		if slices.Contains(w.secretNames(t, d.dir), "API_KEY") {
			t.Fatal("secret list still has API_KEY after secret delete")
		}
		vs := c.versions(t, d.script)
		newest = vs[len(vs)-1]
		if b := binding(newest, "API_KEY"); b != nil {
			t.Errorf("newest version %s still binds API_KEY after secret delete: %+v", newest.Spec.VersionID, b)
		}
		c.checkActive(t, d.script, map[string]int32{newest.Spec.VersionID: 100})
	})

	t.Run("tail", func(t *testing.T) {
		d := need(t, "esm")
		checkTail(t, w, g, d.dir, d.script)
	})

	t.Run("secret-bulk", func(t *testing.T) {
		// wrangler 4.93+ PATCHes …/secrets-bulk; older ones PATCH …/settings.
		d := need(t, "secret")
		file := filepath.Join(t.TempDir(), "secrets.json")
		if err := os.WriteFile(file, []byte(`{"BULK_A":"a-value","BULK_B":"b-value"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		w.must(t, d.dir, "", "secret", "bulk", file)
		names := w.secretNames(t, d.dir)
		if !slices.Contains(names, "BULK_A") || !slices.Contains(names, "BULK_B") {
			t.Fatalf("secret list after secret bulk = %q, want BULK_A and BULK_B", names)
		}
		vs := c.versions(t, d.script)
		newest := vs[len(vs)-1]
		c.checkActive(t, d.script, map[string]int32{newest.Spec.VersionID: 100})
		if b := binding(newest, "BULK_B"); b == nil || b.Type != apiv1.BindingSecretText {
			t.Errorf("newest version binds BULK_B as %s, want secret_text", jsonString(b))
		}
	})

	t.Run("versions-secret", func(t *testing.T) {
		// A new version with the secret change, not deployed: wrangler 4.113+
		// PATCHes …/workers/workers/:name/versions/latest, older ones copy the
		// version (GET content/v2, POST versions).
		d := need(t, "secret")
		vs := c.versions(t, d.script)
		prod := vs[len(vs)-1].Spec.VersionID
		latest := func(t *testing.T, n int) apiv1.WorkerVersion {
			t.Helper()
			vs := c.versions(t, d.script)
			if len(vs) != n {
				t.Fatalf("%d versions, want %d", len(vs), n)
			}
			c.checkActive(t, d.script, map[string]int32{prod: 100}) // production untouched
			return vs[len(vs)-1]
		}
		n := len(vs)
		w.must(t, d.dir, "versioned-value\n", "versions", "secret", "put", "V_SECRET")
		n++
		v := latest(t, n)
		if b := binding(v, "V_SECRET"); b == nil || b.Type != apiv1.BindingSecretText {
			t.Errorf("versions secret put: new version binds V_SECRET as %s", jsonString(b))
		}
		if b := binding(v, "BULK_A"); b == nil {
			t.Error("versions secret put dropped the other secrets")
		}
		w.must(t, d.dir, "", "versions", "secret", "delete", "BULK_A")
		n++
		if v := latest(t, n); binding(v, "BULK_A") != nil || binding(v, "V_SECRET") == nil {
			t.Errorf("versions secret delete BULK_A: bindings %s", describeBindings(v))
		}
		file := filepath.Join(t.TempDir(), "secrets.json")
		if err := os.WriteFile(file, []byte(`{"V_BULK":"v-bulk"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		w.must(t, d.dir, "", "versions", "secret", "bulk", file)
		n++
		if v := latest(t, n); binding(v, "V_BULK") == nil || binding(v, "V_SECRET") == nil {
			t.Errorf("versions secret bulk: bindings %s", describeBindings(v))
		}
	})

	t.Run("kv", func(t *testing.T) {
		dir := t.TempDir() // no wrangler config here: the commands name the namespace
		id := w.createNamespace(t, dir, "e2e-ns")
		ns := "--namespace-id=" + id
		w.must(t, dir, "", w.kv("key", "put", ns, "k1", "v1")...)
		if out := w.must(t, dir, "", w.kv("key", "get", ns, "k1")...); out != "v1" {
			t.Errorf("kv key get k1 printed %q, want v1", out)
		}
		if keys := w.keyNames(t, dir, ns); !slices.Equal(keys, []string{"k1"}) {
			t.Errorf("kv key list = %q, want [k1]", keys)
		}
		w.must(t, dir, "", w.kv("key", "delete", ns, "k1")...)
		if out, errOut, code := w.wrangler(t, dir, "", w.kv("key", "get", ns, "k1")...); code == 0 {
			t.Errorf("kv key get of a deleted key exited 0:\n%s%s", out, errOut)
		}
		if keys := w.keyNames(t, dir, ns); len(keys) != 0 {
			t.Errorf("kv key list after delete = %q, want none", keys)
		}
	})

	t.Run("concurrent-deploys", func(t *testing.T) {
		// 10 deploys of distinct scripts and 10 of one new script, all at once.
		// Each has its own copy of the esm project and a distinct DEPLOY var,
		// so that every upload is a different version.
		const n = 10
		type job struct {
			script, dir string
			i           int
			out         string
			code        int
		}
		var jobs []*job
		for i := 0; i < n; i++ {
			jobs = append(jobs, &job{script: fmt.Sprintf("e2e-conc-%d", i), i: i})
		}
		for i := 0; i < n; i++ {
			jobs = append(jobs, &job{script: "e2e-conc-same", i: i})
		}
		for k, j := range jobs {
			j.dir = copyProject(t, "esm", filepath.Join(work, fmt.Sprintf("conc-%02d", k)))
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, j := range jobs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				stdout, stderr, code := w.wrangler(t, j.dir, "", "deploy", "--name", j.script, "--var", fmt.Sprintf("DEPLOY:%d", j.i))
				j.out, j.code = stdout+stderr, code
			}()
		}
		close(start)
		wg.Wait()
		for _, j := range jobs {
			if j.code != 0 {
				t.Errorf("concurrent deploy of %s (DEPLOY=%d) exited %d:\n%s", j.script, j.i, j.code, j.out)
			}
		}
		if t.Failed() {
			t.FailNow()
		}

		for _, j := range jobs[:n] {
			id := versionID(t, j.out, "Current Version ID:")
			vs := c.versions(t, j.script)
			if len(vs) != 1 || vs[0].Spec.VersionID != id || vs[0].Spec.Number != 1 {
				t.Errorf("%s: WorkerVersions %s, want exactly %s as number 1", j.script, describe(vs), id)
			}
			c.checkActive(t, j.script, map[string]int32{id: 100})
		}

		var printed []string
		for _, j := range jobs[n:] {
			printed = append(printed, versionID(t, j.out, "Current Version ID:"))
		}
		vs := c.versions(t, "e2e-conc-same")
		var ids, deployVars []string
		var numbers []int64
		for _, v := range vs {
			ids = append(ids, v.Spec.VersionID)
			numbers = append(numbers, v.Spec.Number)
			if b := binding(v, "DEPLOY"); b != nil {
				deployVars = append(deployVars, b.Text)
			}
		}
		var wantNumbers []int64
		var wantVars []string
		for i := 0; i < n; i++ {
			wantNumbers = append(wantNumbers, int64(i+1))
			wantVars = append(wantVars, fmt.Sprint(i))
		}
		if !slices.Equal(numbers, wantNumbers) {
			t.Errorf("e2e-conc-same version numbers = %v, want %v (distinct, gapless)", numbers, wantNumbers)
		}
		sort.Strings(ids)
		sort.Strings(printed)
		if !slices.Equal(ids, printed) {
			t.Errorf("e2e-conc-same WorkerVersion ids %q, wrangler printed %q", ids, printed)
		}
		sort.Strings(deployVars)
		sort.Strings(wantVars)
		if !slices.Equal(deployVars, wantVars) {
			t.Errorf("e2e-conc-same DEPLOY vars = %q, want %q (every upload kept)", deployVars, wantVars)
		}
		rel := c.release(t, "e2e-conc-same")
		if rel == nil || len(rel.Spec.Deployments) == 0 {
			t.Fatal("e2e-conc-same has no WorkerRelease with a deployment")
		}
		active := rel.Spec.Deployments[0].Versions
		if len(active) != 1 || active[0].Percentage != 100 || !slices.Contains(printed, active[0].VersionID) {
			t.Errorf("e2e-conc-same active deployment %+v, want one of the uploaded versions at 100%%", active)
		}
	})

	t.Run("delete", func(t *testing.T) {
		for _, p := range projects {
			t.Run(p.dir, func(t *testing.T) {
				d := need(t, p.dir)
				// Non-interactive, wrangler auto-confirms and checks references first.
				w.must(t, d.dir, "", "delete")
				c.waitScriptGone(t, d.script)
				if out, errOut, code := w.wrangler(t, d.dir, "", "deployments", "list"); code == 0 {
					t.Errorf("deployments list of deleted %s exited 0:\n%s%s", d.script, out, errOut)
				}
			})
		}
		t.Run("e2e-conc-same", func(t *testing.T) {
			w.must(t, work, "", "delete", "--name", "e2e-conc-same")
			c.waitScriptGone(t, "e2e-conc-same")
		})
	})

	t.Run("update-check-stayed-local", func(t *testing.T) {
		if w.updateCache != "" {
			// The seeded answer was used all along: a fetch would have
			// rewritten the cache with a new lastUpdate.
			if b, err := os.ReadFile(w.updateCache); err != nil || string(b) != w.updateSeed {
				t.Errorf("update-check cache %s = %q, %v; want the seeded %q (did wrangler ask registry.npmjs.org?)", w.updateCache, b, err, w.updateSeed)
			}
			return
		}
		// The banner's update check asked the stub (and nothing else did):
		// evidence that npm_registry redirected it.
		if w.npmHits.Load() == 0 {
			t.Error("the npm registry stub was never asked for /wrangler: is the update check going elsewhere?")
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(w.npmOther) > 0 {
			t.Errorf("unexpected requests to the npm registry stub: %q", w.npmOther)
		}
	})
}

// ---- wrangler ----

// wranglerClient is one pinned wrangler release (e2e/package.json, installed
// by `npm ci --prefix e2e`).
type wranglerClient struct {
	name      string // the subtest's name
	version   string // what `wrangler --version` prints
	pkg       string // its package directory under node_modules (an npm alias)
	node      string // the Node package under node_modules that runs it; "" = node on PATH
	subdomain string // the workers subdomain of the account it deploys to in TestWrangler
	// seedUpdateCheck keeps the update check local by a fresh cache entry.
	seedUpdateCheck bool
}

var (
	// wrangler3 is the last wrangler 3.
	wrangler3 = wranglerClient{name: "wrangler-3", version: "3.114.17", pkg: "wrangler3", subdomain: "wrangler3"}
	// wrangler486 is the last wrangler that runs on Node 20.
	wrangler486 = wranglerClient{name: "wrangler-4.86", version: "4.86.0", pkg: "wrangler", subdomain: "octo"}
	// wranglerLatest is the newest wrangler 4, on the pinned Node 22.
	wranglerLatest = wranglerClient{name: "wrangler-latest", version: "4.164.0", pkg: "wrangler-latest", node: "node22", subdomain: "wranglerlatest", seedUpdateCheck: true}

	wranglerClients = []wranglerClient{wrangler3, wrangler486, wranglerLatest}
)

// wranglerCLI runs one wrangler release with an isolated environment.
type wranglerCLI struct {
	client wranglerClient
	node   string // the Node binary
	script string // the client's bin/wrangler.js
	env    []string

	npmHits  atomic.Int64
	mu       sync.Mutex
	npmOther []string
	// updateCache, when set, is the update-check cache seeded with
	// updateSeed: wrangler after 4.86 asks registry.npmjs.org directly
	// (npm_registry is ignored) unless its cache is fresh.
	updateCache, updateSeed string
}

// newWrangler is newWranglerFor with wrangler 4.86.
func newWrangler(t *testing.T, vars map[string]string) *wranglerCLI {
	t.Helper()
	return newWranglerFor(t, vars, wrangler486)
}

// newWranglerFor runs cl against the octo of vars.
func newWranglerFor(t *testing.T, vars map[string]string, cl wranglerClient) *wranglerCLI {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("node_modules", cl.pkg, "bin", "wrangler.js"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("wrangler %s: %v (run: npm ci --prefix e2e)", cl.version, err)
	}
	node, pathEnv := "node", os.Getenv("PATH")
	if cl.node != "" {
		bin, err := filepath.Abs(filepath.Join("node_modules", cl.node, "bin"))
		if err != nil {
			t.Fatal(err)
		}
		node, pathEnv = filepath.Join(bin, "node"), bin+string(os.PathListSeparator)+pathEnv
		if _, err := os.Stat(node); err != nil {
			t.Fatalf("node for wrangler %s: %v (run: npm ci --prefix e2e)", cl.version, err)
		}
	}
	w := &wranglerCLI{client: cl, node: node, script: script}
	// The npm registry wrangler's update check asks (via npm_registry).
	reg := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && path.Base(r.URL.Path) == "wrangler" {
			w.npmHits.Add(1)
			rw.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(rw, `{"name":"wrangler","dist-tags":{"latest":"`+cl.version+`"}}`)
			return
		}
		w.mu.Lock()
		w.npmOther = append(w.npmOther, r.Method+" "+r.URL.String())
		w.mu.Unlock()
		http.NotFound(rw, r)
	}))
	t.Cleanup(reg.Close)
	home, tmp := t.TempDir(), t.TempDir()
	w.env = []string{
		"PATH=" + pathEnv, // node
		"HOME=" + home,    // ~/.config/.wrangler (metrics.json, logs)
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"TMPDIR=" + tmp, // the update-check cache
		"CLOUDFLARE_API_BASE_URL=" + vars["CLOUDFLARE_API_BASE_URL"],
		"CLOUDFLARE_API_TOKEN=" + vars["CLOUDFLARE_API_TOKEN"],
		"CLOUDFLARE_ACCOUNT_ID=" + vars["CLOUDFLARE_ACCOUNT_ID"],
		"WRANGLER_SEND_METRICS=false",
		"WRANGLER_SEND_ERROR_REPORTS=false",
		"npm_registry=" + reg.URL + "/",
		"NO_COLOR=1",
		"FORCE_COLOR=0",
	}
	if cl.seedUpdateCheck {
		w.updateCache = filepath.Join(tmp, "update-check", "wrangler-latest.json")
		w.updateSeed = fmt.Sprintf(`{"latest":%q,"lastUpdate":%d}`, cl.version, time.Now().UnixMilli())
		if err := os.MkdirAll(filepath.Dir(w.updateCache), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(w.updateCache, []byte(w.updateSeed), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if v := os.Getenv("WRANGLER_LOG"); v != "" { // e.g. WRANGLER_LOG=debug prints every API request
		w.env = append(w.env, "WRANGLER_LOG="+v)
	}
	return w
}

// wrangler runs wrangler in dir with stdin (never a TTY, so wrangler is
// non-interactive) and logs the command and everything it printed.
func (w *wranglerCLI) wrangler(t *testing.T, dir, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return w.run(t, dir, stdin, nil, args...)
}

// run is wrangler with extra environment variables (later ones win).
func (w *wranglerCLI) run(t *testing.T, dir, stdin string, extraEnv []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wranglerTimeout)
	defer cancel()
	cmd := w.command(ctx, args...)
	cmd.Dir = dir
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Own process group, so a timeout also ends esbuild and other children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if ctx.Err() != nil {
			fmt.Fprintf(&stderr, "\n[killed after %s]", wranglerTimeout)
		} else if code == -1 {
			fmt.Fprintf(&stderr, "\n[%v]", err)
		}
	}
	env := strings.Join(extraEnv, " ")
	if env != "" {
		env += " "
	}
	t.Logf("$ (cd %s && %swrangler %s) -> exit %d in %s\n--- stdout ---\n%s\n--- stderr ---\n%s",
		dir, env, strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond), stdout.String(), stderr.String())
	all := strings.ToLower(stdout.String() + stderr.String())
	for _, s := range outsideSigns {
		if strings.Contains(all, s) {
			t.Errorf("wrangler %s: output mentions %q (a call outside loopback?)", strings.Join(args, " "), s)
		}
	}
	return stdout.String(), stderr.String(), code
}

// command is the wrangler command line with args, in the client's
// environment.
func (w *wranglerCLI) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, w.node, append([]string{w.script}, args...)...)
	cmd.Env = append([]string{}, w.env...)
	return cmd
}

// must runs wrangler, fails the test unless it exits 0, and returns stdout.
func (w *wranglerCLI) must(t *testing.T, dir, stdin string, args ...string) string {
	t.Helper()
	stdout, stderr, code := w.wrangler(t, dir, stdin, args...)
	if code != 0 {
		t.Fatalf("wrangler %s: exit %d\n--- stderr ---\n%s\n--- stdout ---\n%s", strings.Join(args, " "), code, stderr, stdout)
	}
	return stdout
}

// mustJSON runs wrangler and decodes its stdout as JSON into v.
func (w *wranglerCLI) mustJSON(t *testing.T, dir string, v any, args ...string) {
	t.Helper()
	out := w.must(t, dir, "", args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("wrangler %s: stdout is not the expected JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// versionID finds "<label> <id>" in wrangler's output.
func versionID(t *testing.T, out, label string) string {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(label) + `\s*([0-9a-fA-F-]{32,36})\b`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q line in wrangler's output:\n%s", label, out)
	}
	return m[1]
}

type deploymentJSON struct {
	ID       string `json:"id"`
	Versions []struct {
		VersionID  string  `json:"version_id"`
		Percentage float64 `json:"percentage"`
	} `json:"versions"`
	Annotations map[string]string `json:"annotations"`
}

func (d deploymentJSON) traffic() map[string]int32 {
	m := map[string]int32{}
	for _, v := range d.Versions {
		m[v.VersionID] = int32(v.Percentage)
	}
	return m
}

func (w *wranglerCLI) deploymentStatus(t *testing.T, dir string) deploymentJSON {
	t.Helper()
	var d deploymentJSON
	w.mustJSON(t, dir, &d, "deployments", "status", "--json")
	return d
}

func (w *wranglerCLI) secretNames(t *testing.T, dir string) []string {
	t.Helper()
	var secrets []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	w.mustJSON(t, dir, &secrets, "secret", "list")
	var names []string
	for _, s := range secrets {
		if s.Type != apiv1.BindingSecretText {
			t.Errorf("secret list: %s has type %q, want secret_text", s.Name, s.Type)
		}
		names = append(names, s.Name)
	}
	return names
}

var namespaceIDRE = regexp.MustCompile(`"id":\s*"([^"]+)"|\bid = "([^"]+)"`)

// v3 reports whether the client is wrangler 3.
func (w *wranglerCLI) v3() bool { return strings.HasPrefix(w.client.version, "3.") }

// kv is the command line `wrangler kv <args> --remote`: wrangler 3 talks to
// the API by default and has no --remote flag.
func (w *wranglerCLI) kv(args ...string) []string {
	out := append([]string{"kv"}, args...)
	if !w.v3() {
		out = append(out, "--remote")
	}
	return out
}

// kvTitle is the title `kv namespace create title` gives in dir: wrangler 3
// prefixes the Worker's name ("worker" outside a project).
func (w *wranglerCLI) kvTitle(dir, title string) string {
	if !w.v3() {
		return title
	}
	worker := "worker"
	if b, err := os.ReadFile(filepath.Join(dir, "wrangler.toml")); err == nil {
		if m := regexp.MustCompile(`(?m)^name = "([^"]+)"`).FindSubmatch(b); m != nil {
			worker = string(m[1])
		}
	}
	return worker + "-" + title
}

// createNamespace runs `kv namespace create title`, takes the id from the
// config snippet it prints and checks that `kv namespace list` agrees.
func (w *wranglerCLI) createNamespace(t *testing.T, dir, title string) string {
	t.Helper()
	out := w.must(t, dir, "", "kv", "namespace", "create", title)
	m := namespaceIDRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("kv namespace create printed no id:\n%s", out)
	}
	id := m[1] + m[2]
	if got := w.namespaceID(t, dir, w.kvTitle(dir, title)); got != id {
		t.Fatalf("kv namespace list: %s has id %q, create printed %q", w.kvTitle(dir, title), got, id)
	}
	return id
}

// namespaceID returns the id of the namespace titled title in `kv namespace
// list` (which pages until an empty page), failing if it is not there.
func (w *wranglerCLI) namespaceID(t *testing.T, dir, title string) string {
	t.Helper()
	var list []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	w.mustJSON(t, dir, &list, "kv", "namespace", "list")
	for _, ns := range list {
		if ns.Title == title {
			return ns.ID
		}
	}
	t.Fatalf("kv namespace list lacks %q: %+v", title, list)
	return ""
}

func (w *wranglerCLI) keyNames(t *testing.T, dir, nsFlag string) []string {
	t.Helper()
	var keys []struct {
		Name string `json:"name"`
	}
	w.mustJSON(t, dir, &keys, w.kv("key", "list", nsFlag)...)
	var names []string
	for _, k := range keys {
		names = append(names, k.Name)
	}
	return names
}

// copyProject copies testdata/workers/name to dst and returns dst.
func copyProject(t *testing.T, name, dst string) string {
	t.Helper()
	src := filepath.Join("testdata", "workers", name)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy project %s: %v", name, err)
	}
	return dst
}

// ---- cluster and S3 ----

// cluster reads what the API stored: api.cf-worker/v1 objects (any
// namespace, matched on spec.accountID and spec.scriptName), Secrets, and
// the S3 objects the WorkerVersions point at.
type cluster struct {
	acct string
	dyn  dynamic.Interface
	cs   kubernetes.Interface
	s3   *minio.Client
}

func newCluster(t *testing.T, vars map[string]string) *cluster {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", vars["KUBECONFIG"])
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	endpoint := strings.TrimPrefix(vars["AWS_ENDPOINT_URL_S3"], "http://")
	mc, err := minio.New(endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(vars["AWS_ACCESS_KEY_ID"], vars["AWS_SECRET_ACCESS_KEY"], ""),
		Region: vars["AWS_REGION"],
	})
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{acct: vars["CLOUDFLARE_ACCOUNT_ID"], dyn: dyn, cs: cs, s3: mc}
}

// list decodes every object of res, in all namespaces, into T.
func list[T any](t *testing.T, c *cluster, res schema.GroupVersionResource) []T {
	t.Helper()
	l, err := c.dyn.Resource(res).Namespace(metav1.NamespaceAll).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list %s: %v", res.Resource, err)
	}
	out := make([]T, 0, len(l.Items))
	for _, u := range l.Items {
		b, err := json.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		var obj T
		if err := json.Unmarshal(b, &obj); err != nil {
			t.Fatalf("decode %s %s/%s: %v", res.Resource, u.GetNamespace(), u.GetName(), err)
		}
		out = append(out, obj)
	}
	return out
}

// versions returns the script's WorkerVersions, by spec.number.
func (c *cluster) versions(t *testing.T, script string) []apiv1.WorkerVersion {
	t.Helper()
	var out []apiv1.WorkerVersion
	for _, v := range list[apiv1.WorkerVersion](t, c, workerVersions) {
		if v.Spec.AccountID == c.acct && v.Spec.ScriptName == script {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Number < out[j].Spec.Number })
	return out
}

// release returns the script's WorkerRelease, or nil.
func (c *cluster) release(t *testing.T, script string) *apiv1.WorkerRelease {
	t.Helper()
	var out []apiv1.WorkerRelease
	for _, r := range list[apiv1.WorkerRelease](t, c, workerReleases) {
		if r.Spec.AccountID == c.acct && r.Spec.ScriptName == script {
			out = append(out, r)
		}
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return &out[0]
	}
	t.Fatalf("%d WorkerReleases for %s, want one", len(out), script)
	return nil
}

// checkStored checks the WorkerVersion of versionID and its S3 objects (the
// metadata JSON and every module, with the recorded size), and returns it.
func (c *cluster) checkStored(t *testing.T, script, versionID string) apiv1.WorkerVersion {
	t.Helper()
	vs := c.versions(t, script)
	i := slices.IndexFunc(vs, func(v apiv1.WorkerVersion) bool { return v.Spec.VersionID == versionID })
	if i < 0 {
		t.Fatalf("no WorkerVersion with spec.versionID %s for script %s; have %s", versionID, script, describe(vs))
	}
	v := vs[i]
	s := v.Spec
	if s.Number < 1 || s.CompatibilityDate != compatDate || len(s.Modules) == 0 || s.CreatedAt.IsZero() {
		t.Errorf("WorkerVersion %s/%s: number=%d compatibilityDate=%q modules=%d createdAt=%v; want number>=1, %s, modules, a time",
			v.Namespace, v.Name, s.Number, s.CompatibilityDate, len(s.Modules), s.CreatedAt, compatDate)
	}
	st := s.Storage
	if st.Bucket != "octo" || !strings.HasPrefix(st.Prefix, "accounts/"+c.acct+"/") {
		t.Errorf("WorkerVersion %s storage = %+v, want bucket octo and a prefix under accounts/%s/", v.Name, st, c.acct)
	}
	ctx := context.Background()
	metaKey := st.MetadataKey
	if metaKey == "" {
		metaKey = st.Prefix + "metadata.json"
	}
	if _, err := c.s3.StatObject(ctx, st.Bucket, metaKey, minio.StatObjectOptions{}); err != nil {
		t.Errorf("S3 %s/%s (metadata of %s): %v", st.Bucket, metaKey, versionID, err)
	}
	for _, m := range s.Modules {
		key := m.Key
		if key == "" {
			key = st.Prefix + "modules/" + m.Name
		}
		info, err := c.s3.StatObject(ctx, st.Bucket, key, minio.StatObjectOptions{})
		if err != nil {
			t.Errorf("S3 %s/%s (module %s of %s): %v", st.Bucket, key, m.Name, versionID, err)
		} else if info.Size != m.Size {
			t.Errorf("S3 %s/%s is %d bytes, WorkerVersion says %d", st.Bucket, key, info.Size, m.Size)
		}
	}
	return v
}

// checkActive checks that the script's active deployment (WorkerRelease
// spec.deployments[0]) is exactly want (version ID -> percentage).
func (c *cluster) checkActive(t *testing.T, script string, want map[string]int32) {
	t.Helper()
	rel := c.release(t, script)
	if rel == nil || len(rel.Spec.Deployments) == 0 {
		t.Fatalf("no WorkerRelease with a deployment for %s", script)
	}
	got := map[string]int32{}
	for _, v := range rel.Spec.Deployments[0].Versions {
		got[v.VersionID] = v.Percentage
	}
	if !maps.Equal(got, want) {
		t.Fatalf("WorkerRelease %s/%s active deployment %s = %v, want %v",
			rel.Namespace, rel.Name, rel.Spec.Deployments[0].ID, got, want)
	}
}

// checkSecretBinding checks that v binds API_KEY as a secret_text whose value
// is only in the Kubernetes Secret it points at.
func (c *cluster) checkSecretBinding(t *testing.T, v apiv1.WorkerVersion) {
	t.Helper()
	b := binding(v, "API_KEY")
	if b == nil || b.Type != apiv1.BindingSecretText || b.SecretRef == nil || b.Text != "" {
		t.Fatalf("WorkerVersion %s: API_KEY binding = %s, want secret_text with a secretRef and no text", v.Name, jsonString(b))
	}
	sec, err := c.cs.CoreV1().Secrets(v.Namespace).Get(context.Background(), b.SecretRef.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Secret %s/%s: %v", v.Namespace, b.SecretRef.Name, err)
	}
	if got := string(sec.Data[b.SecretRef.Key]); got != secretValue {
		t.Fatalf("Secret %s/%s key %s = %q, want the value given to secret put", v.Namespace, sec.Name, b.SecretRef.Key, got)
	}
}

// describeBindings lists a version's bindings as name:type.
func describeBindings(v apiv1.WorkerVersion) string {
	var out []string
	for _, b := range v.Spec.Bindings {
		out = append(out, b.Name+":"+b.Type)
	}
	return strings.Join(out, ",")
}

// checkNoLeak checks that no WorkerVersion or WorkerRelease holds the
// secret's value, as `kubectl get -o yaml` shows them.
func (c *cluster) checkNoLeak(t *testing.T, e *env) {
	t.Helper()
	for _, res := range []string{"workerversions", "workerreleases"} {
		out := e.mustOcto("kubectl", "get", res+"."+apiv1.Group, "-A", "-o", "yaml")
		if !strings.Contains(out, "scriptName: e2e-secret") {
			t.Fatalf("kubectl get %s shows no object of e2e-secret:\n%s", res, out)
		}
		if strings.Contains(out, secretValue) {
			t.Fatalf("the secret's value is in a %s object", res)
		}
	}
}

// waitScriptGone waits until the script has no WorkerVersion and no
// WorkerRelease left (deletion may finish asynchronously).
func (c *cluster) waitScriptGone(t *testing.T, script string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		vs, rel := c.versions(t, script), c.release(t, script)
		if len(vs) == 0 && rel == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after delete, %s still has WorkerVersions %s and WorkerRelease %v", script, describe(vs), rel != nil)
		}
		time.Sleep(time.Second)
	}
}

// ---- small helpers ----

func binding(v apiv1.WorkerVersion, name string) *apiv1.WorkerBinding {
	for i := range v.Spec.Bindings {
		if v.Spec.Bindings[i].Name == name {
			return &v.Spec.Bindings[i]
		}
	}
	return nil
}

func wantModule(t *testing.T, v apiv1.WorkerVersion, name string, typ apiv1.ModuleType) {
	t.Helper()
	for _, m := range v.Spec.Modules {
		if m.Name == name {
			if m.Type != typ {
				t.Errorf("module %s has type %q, want %q", name, m.Type, typ)
			}
			return
		}
	}
	t.Errorf("no module %q (type %s) in %+v", name, typ, v.Spec.Modules)
}

func describe(vs []apiv1.WorkerVersion) string {
	var parts []string
	for _, v := range vs {
		parts = append(parts, fmt.Sprintf("%s/%s#%d=%s", v.Namespace, v.Name, v.Spec.Number, v.Spec.VersionID))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
