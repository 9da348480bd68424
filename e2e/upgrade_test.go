//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

var upgradeFrom = flag.String("upgrade-from", "c5b5d4d",
	"git ref of the older octo release TestUpgrade upgrades from (built from a git worktree)")

const (
	buildTimeout = 20 * time.Minute // `make build` of the older release
	mykvTitle    = "e2e-upgrade-mykv"
	autoKVTitle  = "e2e-kv-auto-kv" // wrangler's title for the kv project's AUTO_KV
	upgradeKey   = "upgrade-key"
	upgradeValue = "written before the upgrade"
	esmV2Body    = "hello from esm v2"
)

// sampleAccountPaths are where the sample WorkerAccount lives in a source
// tree: the older layout first moved to api/v1.
var sampleAccountPaths = []string{
	"api/v1/testdata/workeraccount-sample.yaml",
	"internal/operators/api/v1/testdata/workeraccount-sample.yaml",
}

// TestUpgrade fills a data dir with an older octo release (-upgrade-from,
// built from a git worktree), stops it with `octo down` and starts the binary
// under test (-octo) on the same data dir: every Worker, version, deployment
// split, secret, KV key and the sample WorkerAccount must come back as they
// were, and every Worker must answer as before. Run it alone with
//
//	go test -tags e2e -count=1 -v -run '^TestUpgrade$' ./e2e/ -octo=$PWD/bin/octo -upgrade-from=<ref>
func TestUpgrade(t *testing.T) {
	if *upgradeFrom == "" {
		t.Fatal("-upgrade-from is empty: give the git ref of the release to upgrade from")
	}
	newBin, err := filepath.Abs(*octoBin)
	if err != nil {
		t.Fatal(err)
	}
	oldTree := buildRelease(t, *upgradeFrom)
	oldBin := filepath.Join(oldTree, "bin", "octo")

	t.Logf("booting the old octo (%s)", *upgradeFrom)
	e := bootOctoBin(t, oldBin)
	vars := parseEnv(t, e.mustOcto("env"))
	w := newWrangler(t, vars)
	g := newGatewayClient(t, vars)
	work := t.TempDir()

	// ---- fill the data dir with the old release ----

	// e2e-esm: two versions, deployed 30/70.
	esm := copyProject(t, "esm", filepath.Join(work, "esm"))
	esmA := versionID(t, w.must(t, esm, "", "deploy"), "Current Version ID:")
	src := filepath.Join(esm, "src", "index.js")
	b0, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, bytes.ReplaceAll(b0, []byte(`"hello from esm"`), []byte(`"`+esmV2Body+`"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	esmB := versionID(t, w.must(t, esm, "", "versions", "upload", "--message", "v2"), "Worker Version ID:")
	w.must(t, esm, "", "versions", "deploy", esmA+"@30%", esmB+"@70%", "--yes")
	esmSplit := map[string]int32{esmA: 30, esmB: 70}
	esmBodies := map[string]int{expected(t, "esm"): 30, esmV2Body: 70}

	// e2e-kv: a namespace made with wrangler, one wrangler provisions, keys
	// put through the API and through the Worker.
	kv := copyProject(t, "kv", filepath.Join(work, "kv"))
	mykv := w.createNamespace(t, kv, mykvTitle)
	kvCfg := filepath.Join(kv, "wrangler.toml")
	b, err := os.ReadFile(kvCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kvCfg, bytes.ReplaceAll(b, []byte("__MYKV_ID__"), []byte(mykv)), 0o644); err != nil {
		t.Fatal(err)
	}
	kvV := versionID(t, w.must(t, kv, "", "deploy"), "Current Version ID:")
	w.must(t, kv, "", "kv", "key", "put", "--namespace-id="+mykv, "fromapi", "api-value", "--remote")
	w.must(t, kv, "", "kv", "key", "put", "--namespace-id="+mykv, upgradeKey, upgradeValue, "--remote")
	g.waitBody(t, "e2e-kv", "/?key=fromapi", "api-value")
	g.waitBody(t, "e2e-kv", "/", expected(t, "kv")) // writes "greeting" into both namespaces

	// e2e-secret: a secret, which deploys a second version at 100%.
	sec := copyProject(t, "secret", filepath.Join(work, "secret"))
	w.must(t, sec, "", "deploy")
	w.must(t, sec, secretValue+"\n", "secret", "put", "API_KEY")

	// The sample WorkerAccount of the old tree.
	sample := sampleAccount(t, oldTree)
	e.mustOcto("kubectl", "apply", "-f", sample)

	// ---- what the old release serves and reports ----

	scripts := map[string]string{"e2e-esm": esm, "e2e-kv": kv, "e2e-secret": sec}
	checkSplit(t, g, "e2e-esm", esmBodies)
	g.waitBody(t, "e2e-secret", "/", secretValue)
	before := map[string]scriptState{}
	for script, dir := range scripts {
		before[script] = wranglerState(t, w, dir)
	}
	kvBefore := kvContents(t, w, work)
	accountBefore := getAccount(t, e, sample)

	// The recorded state is what the commands above made.
	if st := before["e2e-esm"]; !slices.Equal(st.Versions, sorted(esmA, esmB)) || !reflect.DeepEqual(st.Active, esmSplit) || len(st.Deployments) != 2 {
		t.Fatalf("e2e-esm before the upgrade: %+v; want versions %s %s, active %v, 2 deployments", st, esmA, esmB, esmSplit)
	}
	if st := before["e2e-kv"]; !slices.Equal(st.Versions, []string{kvV}) || !reflect.DeepEqual(st.Active, map[string]int32{kvV: 100}) {
		t.Fatalf("e2e-kv before the upgrade: %+v; want version %s at 100%%", st, kvV)
	}
	if st := before["e2e-secret"]; len(st.Versions) != 2 || len(st.Active) != 1 || !slices.Equal(st.Secrets, []string{"API_KEY"}) {
		t.Fatalf("e2e-secret before the upgrade: %+v; want 2 versions, one at 100%%, secret API_KEY", st)
	}
	wantKV := map[string]map[string]string{
		mykvTitle:   {"fromapi": "api-value", upgradeKey: upgradeValue, "greeting": "hello-kv"},
		autoKVTitle: {"greeting": "hello-auto"},
	}
	if kvBefore.IDs[mykvTitle] != mykv || !reflect.DeepEqual(kvBefore.Values, wantKV) {
		t.Fatalf("KV before the upgrade: %+v; want %s = %s holding %v", kvBefore, mykvTitle, mykv, wantKV)
	}

	// ---- upgrade: down with the old binary, up with the new one ----

	t.Log("stopping the old octo")
	e.mustOcto("down")
	e.bin = newBin // from here on, the cleanup stops the new binary
	t.Logf("starting the new octo (%s) on the same data dir", newBin)
	start := time.Now()
	e.mustOcto("up")
	t.Logf("new octo up after %s", time.Since(start).Round(time.Second))

	after := parseEnv(t, e.mustOcto("env"))
	for _, k := range []string{"CLOUDFLARE_API_BASE_URL", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID"} {
		if after[k] != vars[k] {
			t.Fatalf("octo env %s changed across the upgrade: %q -> %q", k, vars[k], after[k])
		}
	}

	// ---- everything is back ----

	t.Run("wrangler-state", func(t *testing.T) {
		for script, dir := range scripts {
			if got := wranglerState(t, w, dir); !reflect.DeepEqual(got, before[script]) {
				t.Errorf("%s after the upgrade:\n  got  %+v\n  want %+v", script, got, before[script])
			}
		}
	})

	t.Run("stored-versions", func(t *testing.T) {
		c := newCluster(t, after)
		for script, st := range before {
			for _, id := range st.Versions {
				c.checkStored(t, script, id)
			}
		}
		c.checkActive(t, "e2e-esm", esmSplit)
	})

	// Before any request to e2e-kv's "/", which would write "greeting" again.
	t.Run("kv", func(t *testing.T) {
		if got := kvContents(t, w, work); !reflect.DeepEqual(got, kvBefore) {
			t.Errorf("KV after the upgrade:\n  got  %+v\n  want %+v", got, kvBefore)
		}
	})

	t.Run("workeraccount", func(t *testing.T) {
		got := getAccount(t, e.with(t), sample)
		if got.Metadata.UID != accountBefore.Metadata.UID || got.Metadata.Namespace != accountBefore.Metadata.Namespace ||
			!reflect.DeepEqual(got.Metadata.Labels, accountBefore.Metadata.Labels) {
			t.Errorf("WorkerAccount metadata after the upgrade = %+v, want %+v", got.Metadata, accountBefore.Metadata)
		}
		// The spec the sample sets is kept (a newer release may default more fields).
		for k, v := range sampleSpec(t, sample) {
			if !reflect.DeepEqual(got.Spec[k], v) {
				t.Errorf("WorkerAccount spec.%s after the upgrade = %v, want %v (the sample's)", k, got.Spec[k], v)
			}
		}
	})

	t.Run("serving", func(t *testing.T) {
		g.waitBody(t, "e2e-kv", "/?key="+upgradeKey, upgradeValue)
		g.waitBody(t, "e2e-kv", "/?key=fromapi", "api-value")
		g.waitBody(t, "e2e-kv", "/", expected(t, "kv"))
		g.waitBody(t, "e2e-secret", "/", secretValue)
		checkSplit(t, g, "e2e-esm", esmBodies)
	})

	e.mustOcto("down")
	e.assertHostClean()
}

// buildRelease checks ref out into a temporary git worktree of this
// repository, runs `make build` there and returns the worktree's path (the
// binary is bin/octo in it). The worktree is removed in the cleanup.
func buildRelease(t *testing.T, ref string) string {
	t.Helper()
	root, err := gitOut("..", "rev-parse", "--show-toplevel")
	if err != nil {
		t.Fatalf("find the repository root: %v", err)
	}
	commit, err := gitOut(root, "rev-parse", "--verify", ref+"^{commit}")
	if err != nil {
		t.Fatalf("-upgrade-from %q is not a commit of %s: %v", ref, root, err)
	}
	tree := filepath.Join(t.TempDir(), "octo-"+commit[:12])
	t.Logf("upgrade from %s (%s): git worktree add %s", ref, commit[:12], tree)
	if _, err := gitOut(root, "worktree", "add", "--detach", tree, commit); err != nil {
		t.Fatalf("git worktree add: %v", err)
	}
	t.Cleanup(func() {
		if _, err := gitOut(root, "worktree", "remove", "--force", tree); err != nil {
			t.Errorf("git worktree remove: %v", err)
		}
	})

	t.Logf("make build in %s (npm ci of tools/workerd, go build; takes minutes)", tree)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "build")
	cmd.Dir = tree
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("make build of %s: %v\n%s", ref, err, tail(out.String(), 60))
	}
	t.Logf("built the %s release in %s", ref, time.Since(start).Round(time.Second))
	if _, err := os.Stat(filepath.Join(tree, "bin", "octo")); err != nil {
		t.Fatalf("make build of %s made no bin/octo: %v", ref, err)
	}
	return tree
}

// gitOut runs git in dir and returns its trimmed stdout.
func gitOut(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// sampleAccount returns the path of the sample WorkerAccount in tree.
func sampleAccount(t *testing.T, tree string) string {
	t.Helper()
	for _, p := range sampleAccountPaths {
		if _, err := os.Stat(filepath.Join(tree, p)); err == nil {
			return filepath.Join(tree, p)
		}
	}
	t.Fatalf("no sample WorkerAccount in %s (looked for %q)", tree, sampleAccountPaths)
	return ""
}

// sampleSpec is the spec of the sample WorkerAccount file, as JSON values.
func sampleSpec(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var obj struct {
		Spec map[string]any `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &obj); err != nil || len(obj.Spec) == 0 {
		t.Fatalf("%s: no spec (%v)", path, err)
	}
	return obj.Spec
}

// accountObject is the part of a WorkerAccount the upgrade must keep.
type accountObject struct {
	Metadata struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		UID       string            `json:"uid"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec map[string]any `json:"spec"`
}

// getAccount reads the WorkerAccount that the file at path describes.
func getAccount(t *testing.T, e *env, path string) accountObject {
	t.Helper()
	out := e.mustOcto("kubectl", "get", "-f", path, "-o", "json")
	var a accountObject
	if err := json.Unmarshal([]byte(out), &a); err != nil || a.Metadata.UID == "" {
		t.Fatalf("kubectl get -f %s: not a WorkerAccount (%v):\n%s", path, err, out)
	}
	return a
}

// scriptState is what wrangler reports about one Worker.
type scriptState struct {
	Versions    []string                    // versions list: IDs, sorted
	Deployments map[string]map[string]int32 // deployments list: deployment ID -> version ID -> percent
	Active      map[string]int32            // deployments status: version ID -> percent
	Secrets     []string                    // secret list: names, sorted
}

// wranglerState asks wrangler, in the Worker's project dir, for its state.
func wranglerState(t *testing.T, w *wranglerCLI, dir string) scriptState {
	t.Helper()
	var versions []struct {
		ID string `json:"id"`
	}
	w.mustJSON(t, dir, &versions, "versions", "list", "--json")
	var deps []deploymentJSON
	w.mustJSON(t, dir, &deps, "deployments", "list", "--json")
	st := scriptState{Deployments: map[string]map[string]int32{}, Active: w.deploymentStatus(t, dir).traffic()}
	for _, v := range versions {
		st.Versions = append(st.Versions, v.ID)
	}
	slices.Sort(st.Versions)
	for _, d := range deps {
		st.Deployments[d.ID] = d.traffic()
	}
	st.Secrets = w.secretNames(t, dir)
	slices.Sort(st.Secrets)
	return st
}

// kvState is every KV namespace wrangler lists, with every key's value.
type kvState struct {
	IDs    map[string]string            // title -> namespace ID
	Values map[string]map[string]string // title -> key -> value
}

// kvContents reads all KV namespaces, keys and values through wrangler.
func kvContents(t *testing.T, w *wranglerCLI, dir string) kvState {
	t.Helper()
	var list []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	w.mustJSON(t, dir, &list, "kv", "namespace", "list")
	st := kvState{IDs: map[string]string{}, Values: map[string]map[string]string{}}
	for _, ns := range list {
		st.IDs[ns.Title] = ns.ID
		nsFlag := "--namespace-id=" + ns.ID
		values := map[string]string{}
		for _, k := range w.keyNames(t, dir, nsFlag) {
			values[k] = w.must(t, dir, "", "kv", "key", "get", nsFlag, k, "--remote")
		}
		st.Values[ns.Title] = values
	}
	return st
}

// checkSplit waits until script has answered every body of want, then sends
// 200 requests and checks that each answer is one of want's bodies, in a
// share within 10 points of its percentage.
func checkSplit(t *testing.T, g *gatewayClient, script string, want map[string]int) {
	t.Helper()
	seen := map[string]bool{}
	var last error
	deadline := time.Now().Add(serveTimeout)
	for len(seen) < len(want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s answered only %v of %v within %s; last error: %v", script, seen, want, serveTimeout, last)
		}
		code, body, err := g.get(script, "/")
		if _, ok := want[body]; err == nil && code == 200 && ok {
			seen[body] = true
			continue
		}
		last = errors.Join(err, fmt.Errorf("%d %q", code, body))
		time.Sleep(200 * time.Millisecond)
	}
	const n = 200
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		code, body, err := g.get(script, "/")
		if _, ok := want[body]; err != nil || code != 200 || !ok {
			t.Fatalf("%s request %d: %d %q %v; want one of %v", script, i, code, body, err, want)
		}
		counts[body]++
	}
	t.Logf("%s over %d requests: %v", script, n, counts)
	for body, pct := range want {
		if got := counts[body] * 100 / n; got < pct-10 || got > pct+10 {
			t.Errorf("%s answered %q to %d%% of requests, want %d%% ± 10", script, body, got, pct)
		}
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}
