//go:build e2e

package e2e

// TestSecurity runs the attacks of the security model (README, "Security
// model") against a real octo and checks that each is refused with nothing
// changed: from another host on the network (a network namespace wired to
// the host like a LAN peer), and against the data dir.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/e2e/workload"
	"github.com/octohq/octo/internal/config"
)

func TestSecurity(t *testing.T) {
	// Before any octo runs: root executes programs from the data dir, so a
	// data dir others can write is refused and nothing starts.
	t.Run("data-dir-writable-by-others-is-refused", func(t *testing.T) {
		parent := t.TempDir()
		if err := os.Chmod(parent, 0o777); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(parent, "data")
		e := &env{t: t, bin: *octoBin, cfg: config.Default(dir)}
		out, err := e.octo(append([]string{"up", "--no-kubeconfig-merge"}, ports...)...)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out, "writable by group or others") {
			t.Fatalf("octo up on a data dir under a mode 0777 parent: %v, want exit 2 naming the problem:\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(dir, "octo.pid")); err == nil {
			t.Error("octo up wrote a pid file although it refused the data dir")
		}
	})

	e := bootOcto(t)
	vars := parseEnv(t, e.mustOcto("env"))
	edge := strings.TrimPrefix(vars["CLOUDFLARE_API_BASE_URL"], "http://")
	_, edgePort, _ := strings.Cut(strings.TrimSuffix(edge, "/client/v4"), ":")

	w := newWranglerFor(t, vars, wranglerLatest)
	c := newCluster(t, vars)
	g := newGatewayClient(t, vars)
	work := t.TempDir()
	acct := vars["CLOUDFLARE_ACCOUNT_ID"]
	secrets := []string{vars["CLOUDFLARE_API_TOKEN"], vars["AWS_SECRET_ACCESS_KEY"], vars["OCTO_REGISTRY_PASSWORD"]}

	t.Run("local-user-gets-nothing-from-the-dashboard", func(t *testing.T) {
		for _, path := range []string{"/", "/dashboard/api/overview", "/dashboard/api/workers"} {
			code, body := asNobody(t, fmt.Sprintf("curl -s -w '\\n%%{http_code}' http://%s%s", strings.TrimSuffix(edge, "/client/v4"), path))
			if code != "401" {
				t.Errorf("GET %s as nobody answered %s, want 401", path, code)
			}
			for _, s := range secrets {
				if s != "" && strings.Contains(body, s) {
					t.Errorf("GET %s as nobody returned a secret of `octo env`", path)
				}
			}
		}
		code, _ := asNobody(t, fmt.Sprintf(`curl -s -o /dev/null -w '%%{http_code}' -X POST -H 'Content-Type: application/json' -H 'Origin: http://%[1]s' -d '{"script":"e2e-esm","version":"x"}' http://%[1]s/dashboard/api/actions/rollback`, strings.TrimSuffix(edge, "/client/v4")))
		if code != "401" {
			t.Errorf("a dashboard write as nobody answered %s, want 401", code)
		}
	})

	t.Run("local-user-cannot-use-the-registry", func(t *testing.T) {
		reg := e.cfg.RegistryAddr()
		for _, req := range []string{
			"-X POST http://" + reg + "/v2/octo/workerd/blobs/uploads/",
			"-X POST http://" + reg + "/v2/octo/evil/blobs/uploads/",
			"http://" + reg + "/v2/_catalog",
			"http://" + reg + "/v2/",
		} {
			if code, _ := asNobody(t, "curl -s -o /dev/null -w '%{http_code}' "+req); code != "401" {
				t.Errorf("registry %s as nobody answered %s, want 401", req, code)
			}
		}
		if _, err := exec.Command("su", "-s", "/bin/sh", "nobody", "-c", "cat "+e.cfg.RegistryCredentialsPath()).Output(); err == nil {
			t.Error("nobody can read the registry credentials")
		}
	})

	// The victim: a KV namespace of the default account with one key.
	nsID := w.createNamespace(t, work, "e2e-sec-victim")
	w.must(t, work, "", w.kv("key", "put", "--namespace-id="+nsID, "secret", "victim-value")...)
	victimKV := func(t *testing.T) {
		t.Helper()
		if out := w.must(t, work, "", w.kv("key", "get", "--namespace-id="+nsID, "secret")...); out != "victim-value" {
			t.Errorf("the victim's KV value is now %q", out)
		}
	}
	// The victim's R2 object and D1 rows, made with wrangler's own commands.
	victimObject := filepath.Join(work, "victim.txt")
	if err := os.WriteFile(victimObject, []byte("victim-object"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.must(t, work, "", "r2", "bucket", "create", "e2e-sec-bucket")
	w.must(t, work, "", w.r2Object("put", "e2e-sec-bucket/secret.txt", "--file", victimObject)...)
	w.must(t, work, "", "d1", "create", "e2e-sec-db")
	dbID := d1ID(t, w, work, "e2e-sec-db")
	w.must(t, work, "", "d1", "execute", "e2e-sec-db", "--remote", "--yes",
		"--command", "CREATE TABLE secrets (v TEXT); INSERT INTO secrets (v) VALUES ('victim-row')")
	victimStorage := func(t *testing.T) {
		t.Helper()
		if out := w.r2Get(t, work, "e2e-sec-bucket/secret.txt"); out != "victim-object" {
			t.Errorf("the victim's R2 object is now %q", out)
		}
		if rows := w.d1Rows(t, work, "e2e-sec-db", "SELECT v FROM secrets"); len(rows) != 1 || rows[0]["v"] != "victim-row" {
			t.Errorf("the victim's D1 rows are now %+v", rows)
		}
	}
	podAPI := "http://" + config.BridgeIP + ":" + edgePort
	storageAttacks := podAPIStorageAttacks(podAPI, acct, dbID)

	t.Run("local-user-cannot-use-the-pod-api", func(t *testing.T) {
		for _, req := range []string{
			fmt.Sprintf("-H 'x-octo-kv: %s/%s' '%s/secret?urlencoded=true'", acct, nsID, podAPI),
			fmt.Sprintf("-X PUT --data-binary evil -H 'x-octo-kv: %s/%s' '%s/secret?urlencoded=true'", acct, nsID, podAPI),
			fmt.Sprintf(`-X POST -H 'x-octo-account: %s' -d '[{"outcome":"ok"}]' '%s/tail/e2e-esm'`, acct, podAPI),
		} {
			if code, _ := asNobody(t, "curl -s -o /dev/null -w '%{http_code}' "+req); code != "403" {
				t.Errorf("pod API %s as nobody answered %s, want 403", req, code)
			}
		}
		victimKV(t)
		// A slow client is cut off instead of holding the server.
		conn, err := net.Dial("tcp", config.BridgeIP+":"+edgePort)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n"))
		t0 := time.Now()
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err = io.ReadAll(conn) // EOF or a reset: either way the server let go
		if took := time.Since(t0); took > 20*time.Second {
			t.Errorf("a client that never finishes its headers was held for %s (%v), want it closed within seconds", took.Round(time.Second), err)
		}
	})

	t.Run("a-pod-cannot-reach-another-accounts-data", func(t *testing.T) {
		bvars := newAccount(t, vars, "attacker")
		wb := newWranglerFor(t, bvars, wranglerLatest)
		wb.must(t, copyProject(t, "attacker", filepath.Join(work, "attacker")), "", "deploy")
		gb := newGatewayClient(t, bvars)
		gb.subdomain = "attacker"
		gb.waitBody(t, "e2e-attacker", "/", "attacker ready")
		attack := func(method, target, body string, headers ...string) string {
			t.Helper()
			q := url.Values{"target": {target}, "method": {method}, "h": headers, "body": {body}}
			code, body, err := gb.get("e2e-attacker", "/?"+q.Encode())
			if err != nil || code != http.StatusOK {
				t.Fatalf("attacker: %d %q %v", code, body, err)
			}
			return body
		}
		kvURL := podAPI + "/secret?urlencoded=true"
		for _, a := range []struct{ method, target string }{{"GET", kvURL}, {"PUT", kvURL}, {"POST", podAPI + "/tail/e2e-esm"}} {
			for _, creds := range [][]string{
				{"x-octo-kv:" + acct + "/" + nsID},
				{"x-octo-kv:" + acct + "/" + nsID, "x-octo-auth:00"},
				{"x-octo-account:" + acct},
			} {
				got := attack(a.method, a.target, "evil", creds...)
				t.Logf("%s %s with %q from a pod of another account: %s", a.method, a.target, creds, got)
				if got == "200" || got == "204" {
					t.Errorf("%s %s with %q from another account's pod succeeded (%s)", a.method, a.target, creds, got)
				}
			}
		}
		for _, a := range storageAttacks {
			got := attack(a.method, a.url, a.body, a.headers...)
			t.Logf("%s %s with %q from a pod of another account: %s", a.method, a.url, a.headers, got)
			if got == "200" || got == "204" {
				t.Errorf("%s %s with %q from another account's pod succeeded (%s)", a.method, a.url, a.headers, got)
			}
		}
		victimKV(t)

		// Through bindings: the other account's bucket of the same name is
		// its own (wrangler provisions it, empty), and a binding to the
		// victim's database is refused at upload.
		snoop := copyProject(t, "snoop", filepath.Join(work, "snoop"))
		wb.must(t, snoop, "", "deploy")
		gb.waitBody(t, "e2e-snoop", "/", expected(t, "snoop"))
		cfg := filepath.Join(snoop, "wrangler.toml")
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, "\n[[d1_databases]]\nbinding = \"DB\"\ndatabase_name = \"e2e-sec-db\"\ndatabase_id = \""+dbID+"\"\n"...)
		if err := os.WriteFile(cfg, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, stderr, code := wb.run(t, snoop, "", nil, "deploy"); code == 0 || !strings.Contains(stderr, "7404") {
			t.Errorf("another account's deploy bound to the victim's database: exit %d, want a refusal (7404):\n%s", code, stderr)
		}
		victimStorage(t)
	})

	t.Run("a-raw-pod-cannot-use-another-accounts-data", func(t *testing.T) {
		// Worker code cannot even reach 10.42.0.1 (workerd's fetch refuses
		// private addresses); any other pod can, so it is the attacker here.
		creds, err := config.LoadRegistryCredentials(e.cfg)
		if err != nil {
			t.Fatal(err)
		}
		image, err := workload.PushHello(e.cfg.RegistryAddr(), "e2e/attacker:1", &authn.Basic{Username: creds.Username, Password: creds.Password})
		if err != nil {
			t.Fatal(err)
		}
		cs := e.client()
		ctx := context.Background()
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "e2e-raw"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := workload.Deploy(ctx, cs, "e2e-raw", "attacker", image, 1); err != nil {
			t.Fatal(err)
		}
		var pod string
		deadline := time.Now().Add(2 * time.Minute)
		for pod == "" && time.Now().Before(deadline) {
			if pods, err := workload.ReadyPods(ctx, cs, "e2e-raw", "attacker"); err == nil && len(pods) > 0 {
				pod = pods[0].Name
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if pod == "" {
			t.Fatal("the attacker pod never became ready")
		}
		do := func(args ...string) string {
			t.Helper()
			out, err := e.octo(append([]string{"kubectl", "exec", "-n", "e2e-raw", pod, "--", "/hello", "do"}, args...)...)
			if err != nil {
				t.Fatalf("hello do %s: %v", strings.Join(args, " "), err)
			}
			return strings.TrimSpace(out)
		}
		// Control: the pod reaches the pod API.
		if got := do("GET", podAPI+"/healthz", ""); got != "200" {
			t.Fatalf("control: the pod API's /healthz from a pod = %s, want 200", got)
		}
		kvURL := podAPI + "/secret?urlencoded=true"
		for _, a := range []struct{ method, url, body string }{{"GET", kvURL, ""}, {"PUT", kvURL, "evil"}, {"DELETE", kvURL, ""}, {"POST", podAPI + "/tail/e2e-esm", `[{"outcome":"ok"}]`}} {
			for _, creds := range [][]string{
				{"x-octo-kv:" + acct + "/" + nsID},
				{"x-octo-kv:" + acct + "/" + nsID, "x-octo-auth:" + strings.Repeat("0", 64)},
				{"x-octo-account:" + acct, "x-octo-auth:00"},
			} {
				// 403 where the request names an account; a request the
				// pod API cannot place at all (tail headers on a KV path) is 404.
				if got := do(append([]string{a.method, a.url, a.body}, creds...)...); got != "403" && got != "404" {
					t.Errorf("%s %s with %q from a pod answered %s, want a refusal (403)", a.method, a.url, creds, got)
				}
			}
		}
		for _, a := range storageAttacks {
			if got := do(append([]string{a.method, a.url, a.body}, a.headers...)...); got != "403" {
				t.Errorf("%s %s with %q from a pod answered %s, want 403", a.method, a.url, a.headers, got)
			}
		}
		victimKV(t)
		victimStorage(t)
	})

	t.Run("uploaded-code-cannot-take-the-hosts-memory", func(t *testing.T) {
		dir := copyProject(t, "bomb", filepath.Join(work, "bomb"))
		stdout, stderr, code := w.wrangler(t, dir, "", "deploy")
		if code == 0 || !strings.Contains(stdout+stderr, "memory") {
			t.Fatalf("deploying a Worker that takes 1 GiB at startup: exit %d, want a refusal naming the memory limit", code)
		}
		if rel := c.release(t, "e2e-bomb"); rel != nil {
			t.Errorf("the refused upload left WorkerRelease %s", rel.Name)
		}
	})

	t.Run("duplicate-subdomain-is-not-served", func(t *testing.T) {
		dir := copyProject(t, "esm", filepath.Join(work, "esm"))
		w.must(t, dir, "", "deploy")
		g.waitBody(t, "e2e-esm", "/", expected(t, "esm"))
		dup := newAccount(t, vars, "octo") // claims the default account's subdomain
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body, _ := g.get("e2e-esm", "/")
			if code == http.StatusConflict {
				t.Logf("while two accounts claim it: %d %s", code, body)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("with a second WorkerAccount claiming subdomain octo the gateway still answers %d %q", code, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
		deleteAccount(t, vars, dup["CLOUDFLARE_ACCOUNT_ID"], "e2e-octo")
		g.waitBody(t, "e2e-esm", "/", expected(t, "esm"))
	})

	t.Run("oversized-deployment-message-is-refused", func(t *testing.T) {
		dir := filepath.Join(work, "esm")
		v := deployedVersion(t, w, dir)
		_, _, code := w.wrangler(t, dir, "", "versions", "deploy", v+"@100", "--message", strings.Repeat("m", 101), "--yes")
		if code == 0 {
			t.Error("versions deploy with a 101-character message succeeded")
		}
		if rel := c.release(t, "e2e-esm"); rel != nil {
			for _, d := range rel.Spec.Deployments {
				if len(d.Annotations["workers/message"]) > 100 {
					t.Errorf("deployment %s kept a %d-character message", d.ID, len(d.Annotations["workers/message"]))
				}
			}
		}
	})

	t.Run("secrets-are-pinned-per-version", func(t *testing.T) {
		dir := copyProject(t, "secret", filepath.Join(work, "secret"))
		w.must(t, dir, "", "deploy")
		w.must(t, dir, "one\n", "secret", "put", "API_KEY")
		waitStable(t, g, "e2e-secret", "one", 5)
		v1 := deployedVersion(t, w, dir)
		// A new version with another value, not deployed.
		v2 := versionID(t, w.must(t, dir, "two\n", "versions", "secret", "put", "API_KEY"), "Created version")
		// Both serve side by side, each with its own value.
		w.must(t, dir, "", "versions", "deploy", v1+"@50", v2+"@50", "--yes")
		seen := map[string]int{}
		deadline := time.Now().Add(serveTimeout)
		for (seen["one"] == 0 || seen["two"] == 0) && time.Now().Before(deadline) {
			if code, body, err := g.get("e2e-secret", "/"); err == nil && code == http.StatusOK {
				seen[body]++
			}
			time.Sleep(50 * time.Millisecond)
		}
		if len(seen) != 2 || seen["one"] == 0 || seen["two"] == 0 {
			t.Fatalf("a 50/50 split of %s (API_KEY=one) and %s (API_KEY=two) answered %v; want both values", v1, v2, seen)
		}
		// Back to the first version: its value comes back.
		w.must(t, dir, "", "versions", "deploy", v1+"@100", "--yes")
		waitStable(t, g, "e2e-secret", "one", 10)
	})

	t.Run("other-hosts-cannot-reach-the-pod-network", func(t *testing.T) {
		peer := newPeerHost(t)
		// Control: the peer reaches the host over its link.
		ln, err := net.Listen("tcp", peerHostIP+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprint(w, "ok") }))
		}()
		if err := peer.get("http://" + ln.Addr().String() + "/"); err != nil {
			t.Fatalf("control: the peer cannot reach the host at all (%v): the test network is broken", err)
		}
		// The pod API listens on the bridge address; from the host it answers.
		bridge := "http://10.42.0.1:" + edgePort + "/"
		if _, err := http.Get(bridge); err != nil {
			t.Fatalf("control: the host cannot reach %s: %v", bridge, err)
		}
		if err := peer.get(bridge); err == nil {
			t.Errorf("another host reached the pod API at %s", bridge)
		}
		// Every pod address that serves a port (the Workers' bundles by now).
		checked := 0
		pods, err := e.client().CoreV1().Pods(metav1.NamespaceAll).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || p.Spec.HostNetwork || len(p.Spec.Containers[0].Ports) == 0 {
				continue
			}
			addr := fmt.Sprintf("http://%s:%d/", p.Status.PodIP, p.Spec.Containers[0].Ports[0].ContainerPort)
			checked++
			if err := peer.get(addr); err == nil {
				t.Errorf("another host reached pod %s/%s at %s", p.Namespace, p.Name, addr)
			}
		}
		if checked == 0 {
			t.Error("no running pod with a port to try")
		}
	})
}

// The link between the host and the peer: a /30 outside every range octo uses.
const (
	peerHostIP = "192.168.251.1"
	peerIP     = "192.168.251.2"
	peerNS     = "octo-e2e-peer"
)

// peerHost is a network namespace wired to the host by a veth pair, like
// another machine on the LAN that routes the pod network to this host.
type peerHost struct{ t *testing.T }

func newPeerHost(t *testing.T) *peerHost {
	t.Helper()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	_ = exec.Command("ip", "netns", "del", peerNS).Run()
	run("netns", "add", peerNS)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", peerNS).Run() }) // removes the veth pair too
	run("link", "add", "octo-e2e-h", "type", "veth", "peer", "name", "octo-e2e-p")
	run("link", "set", "octo-e2e-p", "netns", peerNS)
	run("addr", "add", peerHostIP+"/30", "dev", "octo-e2e-h")
	run("link", "set", "octo-e2e-h", "up")
	run("netns", "exec", peerNS, "ip", "addr", "add", peerIP+"/30", "dev", "octo-e2e-p")
	run("netns", "exec", peerNS, "ip", "link", "set", "octo-e2e-p", "up")
	run("netns", "exec", peerNS, "ip", "link", "set", "lo", "up")
	run("netns", "exec", peerNS, "ip", "route", "add", "10.42.0.0/16", "via", peerHostIP)
	run("netns", "exec", peerNS, "ip", "route", "add", "10.43.0.0/16", "via", peerHostIP)
	return &peerHost{t: t}
}

// get fetches url from the peer; nil means it connected and got an answer.
func (p *peerHost) get(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", peerNS, "curl", "-sS", "-m", "3", "-o", "/dev/null", url).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// asNobody runs a shell command as the unprivileged user nobody and returns
// the last line of its output (curl's -w status) and all of it.
func asNobody(t *testing.T, cmd string) (last, all string) {
	t.Helper()
	out, err := exec.Command("su", "-s", "/bin/sh", "nobody", "-c", cmd).CombinedOutput()
	all = string(out)
	lines := strings.Split(strings.TrimSpace(all), "\n")
	last = strings.TrimSpace(lines[len(lines)-1])
	t.Logf("$ su nobody -c %q -> %v\n%s", cmd, err, tail(all, 5))
	return last, all
}

// deleteAccount deletes a WorkerAccount newAccount made, with its namespace.
func deleteAccount(t *testing.T, vars map[string]string, id, ns string) {
	t.Helper()
	c := newCluster(t, vars)
	res := schema.GroupVersionResource{Group: apiv1.Group, Version: apiv1.Version, Resource: "workeraccounts"}
	if err := c.dyn.Resource(res).Namespace(ns).Delete(context.Background(), id, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete WorkerAccount %s/%s: %v", ns, id, err)
	}
}

// podAPIAttack is a request to the pod API naming another account's data.
type podAPIAttack struct {
	method, url, body string
	headers           []string
}

// podAPIStorageAttacks read and write the victim's R2 bucket e2e-sec-bucket
// and D1 database dbID through the pod API, speaking workerd's R2 and D1
// protocols, without the victim's credential or with a made-up one.
func podAPIStorageAttacks(podAPI, acct, dbID string) []podAPIAttack {
	r2 := "x-octo-r2:" + acct + "/e2e-sec-bucket"
	d1 := "x-octo-d1:" + acct + "/" + dbID
	fake := "x-octo-auth:" + strings.Repeat("0", 64)
	get := `cf-r2-request:{"version":1,"method":"get","object":"secret.txt"}`
	put := `{"version":1,"method":"put","object":"secret.txt"}`
	drop := `{"params":[],"sql":"DROP TABLE secrets"}`
	return []podAPIAttack{
		{"GET", podAPI + "/", "", []string{r2, get}},
		{"GET", podAPI + "/", "", []string{r2, get, fake}},
		{"PUT", podAPI + "/", put + "evil", []string{r2, fmt.Sprintf("cf-r2-metadata-size:%d", len(put))}},
		{"PUT", podAPI + "/", put + "evil", []string{r2, fmt.Sprintf("cf-r2-metadata-size:%d", len(put)), fake}},
		{"POST", podAPI + "/query", `{"params":[],"sql":"SELECT v FROM secrets"}`, []string{d1}},
		{"POST", podAPI + "/execute", drop, []string{d1, fake}},
	}
}
