//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/minio/minio-go/v7"
	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/octohq/octo/internal/builder"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/controller"
	"github.com/octohq/octo/internal/store"
)

var toolsDir = flag.String("tools", "../bin/e2e", "directory of helm, versitygw and registry (make e2e-tools)")

// The external services of TestCluster listen on the pod bridge's address:
// the host (the kubelet's image pulls) and the pods (the operators' pushes,
// S3 reads) both reach it, and the pod network's firewall keeps other hosts
// off it.
var (
	externalS3       = net.JoinHostPort(config.BridgeIP, "19005")
	externalRegistry = net.JoinHostPort(config.BridgeIP, "15055")
)

const (
	chartRelease   = "octo"
	chartNamespace = "octo-system"
	workersNS      = "octo-workers"
	clusterAccount = "c0ffee00c0ffee00c0ffee00c0ffee00"
)

// TestCluster installs octo's chart (deploy/octo) into a cluster octo did
// not set up for itself: a bare `octo up --workers-platform=false`, with
// versitygw (S3) and distribution's registry as separate processes, each the
// upstream program at a pinned version. The real wrangler deploys through
// the in-cluster API, the Worker answers through the in-cluster gateway and
// calls KV through the in-cluster pod API; the operators' leader is killed
// mid-deploy; uninstall leaves nothing of octo in the cluster.
func TestCluster(t *testing.T) {
	helm := tool(t, "helm")
	e := bootOcto(t, "--workers-platform=false", "--insecure-registry="+externalRegistry)
	cs := e.client()
	s3Key, s3Secret := randomHex(t, 10), randomHex(t, 20)
	startVersityGW(t, s3Key, s3Secret)
	regUser, regPass := "octo", randomHex(t, 16)
	startRegistry(t, regUser, regPass)

	// The control-plane image, as `make images PUSH=…` pushes it.
	img, cleanup, err := builder.ControlPlane{Octo: e.bin, TempDir: t.TempDir()}.Image()
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	imageRef := externalRegistry + "/octo/octo:e2e"
	if err := remote.Write(mustRef(t, imageRef), img, remote.WithAuth(&authn.Basic{Username: regUser, Password: regPass})); err != nil {
		t.Fatalf("push %s: %v", imageRef, err)
	}

	kubectl := func(args ...string) string { return e.mustOcto(append([]string{"kubectl"}, args...)...) }
	runHelm := func(args ...string) string {
		t.Helper()
		out, err := runTool(helm, append(args, "--kubeconfig", e.cfg.KubeconfigPath())...)
		t.Logf("$ helm %s\n%s", strings.Join(args, " "), out)
		if err != nil {
			t.Fatalf("helm %s: %v", args[0], err)
		}
		return out
	}
	t0 := time.Now()
	runHelm("install", chartRelease, "../deploy/octo", "--namespace", chartNamespace, "--create-namespace", "--wait", "--timeout", "5m",
		"--set", "image.repository="+externalRegistry+"/octo/octo", "--set", "image.tag=e2e",
		"--set", "account.id="+clusterAccount, "--set", "account.namespace="+workersNS,
		"--set", "s3.endpoint="+externalS3, "--set", "s3.accessKey="+s3Key, "--set", "s3.secretKey="+s3Secret,
		"--set", "registry.host="+externalRegistry, "--set", "registry.username="+regUser, "--set", "registry.password="+regPass,
		"--set", "ingress.enabled=true", "--set", "ingress.apiHost=api.workers.localhost")
	t.Logf("chart installed and every replica ready after %s", time.Since(t0).Round(time.Millisecond))
	uninstalled := false
	defer func() {
		if t.Failed() && !uninstalled { // e.octo logs what they printed
			for _, c := range []string{"api", "operators", "gateway"} {
				_, _ = e.octo("kubectl", "logs", "-n", chartNamespace, "-l", "app.kubernetes.io/component="+c, "--tail=60", "--prefix")
			}
		}
	}()

	ctx := context.Background()
	for _, role := range []string{"api", "gateway", "operators"} {
		d, err := cs.AppsV1().Deployments(chartNamespace).Get(ctx, chartRelease+"-"+role, metav1.GetOptions{})
		if err != nil || d.Status.ReadyReplicas < 2 {
			t.Fatalf("%s: %v, want 2 ready replicas (%+v)", role, err, d.Status)
		}
	}
	// The route for the API and every Worker (an Ingress controller of the
	// user's serves it; this cluster has none, so the Services are used below).
	ing, err := cs.NetworkingV1().Ingresses(chartNamespace).Get(ctx, chartRelease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]string{}
	for _, r := range ing.Spec.Rules {
		routes[r.Host] = r.HTTP.Paths[0].Backend.Service.Name
	}
	if routes["api.workers.localhost"] != chartRelease+"-api" || routes["*.octo.workers.localhost"] != chartRelease+"-gateway" {
		t.Errorf("Ingress routes %v, want the API host to %s-api and *.octo.workers.localhost to %s-gateway", routes, chartRelease, chartRelease)
	}
	token := strings.TrimSpace(kubectl("get", "secret", chartRelease+"-token", "-n", chartNamespace, "-o", "jsonpath={.data.token}"))
	vars := map[string]string{
		"CLOUDFLARE_API_BASE_URL": "http://" + serviceAddr(t, cs, chartRelease+"-api") + "/client/v4",
		"CLOUDFLARE_API_TOKEN":    decodeToken(t, token),
		"CLOUDFLARE_ACCOUNT_ID":   clusterAccount,
	}
	g := &gatewayClient{edge: serviceAddr(t, cs, chartRelease+"-gateway"), subdomain: "octo", http: &http.Client{Timeout: 10 * time.Second}}
	w := newWrangler(t, vars)
	work := t.TempDir()

	t.Run("sample-account-applies", func(t *testing.T) {
		sample, err := filepath.Abs("../api/v1/testdata/workeraccount-sample.yaml")
		if err != nil {
			t.Fatal(err)
		}
		e.with(t).mustOcto("kubectl", "apply", "-n", workersNS, "-f", sample)
	})

	c := newCluster(t, map[string]string{
		"KUBECONFIG": e.cfg.KubeconfigPath(), "CLOUDFLARE_ACCOUNT_ID": clusterAccount,
		"AWS_ENDPOINT_URL_S3": "http://" + externalS3, "AWS_ACCESS_KEY_ID": s3Key, "AWS_SECRET_ACCESS_KEY": s3Secret, "AWS_REGION": "us-east-1",
	})
	esmDir := filepath.Join(work, "esm")
	t.Run("deploy-survives-a-killed-leader", func(t *testing.T) {
		dir := copyProject(t, "esm", esmDir)
		leader := operatorsLeader(t, cs)
		// wrangler deploys while the operators' leader is killed: as soon
		// as the API has stored the upload, before wrangler is done.
		done := make(chan int, 1)
		go func() { _, _, code := w.wrangler(t, dir, "", "deploy"); done <- code }()
		for deadline := time.Now().Add(wranglerTimeout); len(c.versions(t, "e2e-esm")) == 0; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the upload of e2e-esm never reached the cluster")
			}
		}
		if err := cs.CoreV1().Pods(chartNamespace).Delete(ctx, leader, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
			t.Fatal(err)
		}
		t.Logf("killed the operators' leader %s as the upload was stored", leader)
		if code := <-done; code != 0 {
			t.Fatalf("wrangler deploy: exit %d", code)
		}
		took := g.waitBody(t, "e2e-esm", "/", "hello from esm")
		t.Logf("e2e-esm answered through the in-cluster gateway %s after wrangler returned", took.Round(time.Millisecond))
		if next := operatorsLeader(t, cs); next == leader {
			t.Errorf("the Lease still names the killed pod %s", leader)
		} else {
			t.Logf("the operators' new leader is %s", next)
		}
	})

	// wrangler tail reaches the owner's tail hub through an API replica; the
	// gateways follow its feed and the pods send it their trace events.
	t.Run("tail-through-the-owner", func(t *testing.T) { checkTail(t, w, g, esmDir, "e2e-esm") })

	t.Run("kv-through-the-pod-api", func(t *testing.T) {
		dir := copyProject(t, "kv", filepath.Join(work, "kv"))
		id := w.createNamespace(t, work, "e2e-cluster-mykv")
		cfg := filepath.Join(dir, "wrangler.toml")
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		writeConfig(t, cfg, strings.ReplaceAll(string(b), "__MYKV_ID__", id))
		w.must(t, dir, "", "deploy")
		g.waitBody(t, "e2e-kv", "/", "hello-kv hello-auto")
		if len(scriptObjects(t, c, "e2e-kv")) == 0 {
			t.Error("the external S3 holds no code of e2e-kv")
		}
	})

	// R2, D1 (passed through to the D1 owner, a StatefulSet on a volume),
	// KV and service bindings, as TestWorkers checks them on octo up.
	t.Run("storage-bindings", func(t *testing.T) { storageBindings(t, w, g, work) })

	// An import from a file goes through the owner's transfer URL.
	t.Run("d1-import-through-the-owner", func(t *testing.T) {
		dir := filepath.Join(work, "bindings")
		sqlFile := filepath.Join(t.TempDir(), "import.sql")
		writeConfig(t, sqlFile, "INSERT INTO t (id, v) VALUES (4242, 'from-a-file');\n")
		w.must(t, dir, "", "d1", "execute", "e2e-db", "--remote", "--yes", "--file", sqlFile)
		rows := w.d1Rows(t, dir, "e2e-db", "SELECT v FROM t WHERE id = 4242")
		if len(rows) != 1 || rows[0]["v"] != "from-a-file" {
			t.Errorf("the imported row: %v, want from-a-file", rows)
		}
	})

	t.Run("durable-objects-on-a-claim", func(t *testing.T) {
		dir := copyProject(t, "counter", filepath.Join(work, "counter"))
		w.must(t, dir, "", "deploy")
		g.waitBody(t, "e2e-counter", "/release", "one")
		for i := 1; i <= 3; i++ {
			g.wantBody(t, "e2e-counter", "/inc/a", strconv.Itoa(i)+" one")
		}
		pvc, err := cs.CoreV1().PersistentVolumeClaims(workersNS).Get(ctx, controller.ObjectClaimName(clusterAccount), metav1.GetOptions{})
		if err != nil || pvc.Status.Phase != corev1.ClaimBound {
			t.Fatalf("the account's Durable Object claim: %v %+v", err, pvc.Status)
		}
		// The object's pod is replaced (Recreate); its count is on the claim.
		onClaim := func() []corev1.Pod {
			pods, err := cs.CoreV1().Pods(workersNS).List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var out []corev1.Pod
			for _, p := range pods.Items {
				for _, v := range p.Spec.Volumes {
					if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == pvc.Name {
						out = append(out, p)
					}
				}
			}
			return out
		}
		old := onClaim()
		if len(old) != 1 {
			t.Fatalf("%d pods on the claim, want 1", len(old))
		}
		if err := cs.CoreV1().Pods(workersNS).Delete(ctx, old[0].Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Logf("deleted %s, the pod on the claim", old[0].Name)
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
			now := onClaim()
			if len(now) == 1 && now[0].UID != old[0].UID && podReady(now[0]) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no new Ready pod on the claim: %d pods", len(now))
			}
		}
		g.waitBody(t, "e2e-counter", "/a", "count=3 alarms=0")
		g.wantBody(t, "e2e-counter", "/inc/a", "4 one")
	})

	t.Run("uninstall-leaves-nothing", func(t *testing.T) {
		e := e.with(t)
		e.mustOcto("kubectl", "delete", "workeraccount", "398803b74bcdb1b454434669bc634190", "-n", workersNS, "--ignore-not-found")
		t0 := time.Now()
		out, err := runTool(helm, "uninstall", chartRelease, "--namespace", chartNamespace, "--wait", "--timeout", "5m", "--kubeconfig", e.cfg.KubeconfigPath())
		t.Logf("$ helm uninstall %s\n%s", chartRelease, out)
		if err != nil {
			t.Fatalf("helm uninstall: %v", err)
		}
		uninstalled = true
		crds, err := filepath.Abs("../deploy/octo/crds")
		if err != nil {
			t.Fatal(err)
		}
		e.mustOcto("kubectl", "delete", "-f", crds, "--wait")
		waitNamespaceGone(t, cs, workersNS)
		t.Logf("uninstalled in %s", time.Since(t0).Round(time.Millisecond))
		// The D1 owner's claim goes with its StatefulSet (retention policy
		// Delete), a moment after it.
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
			left := e.mustOcto("kubectl", "get", "all,secrets,configmaps,serviceaccounts,roles,rolebindings,leases,persistentvolumeclaims,jobs,ingresses",
				"-n", chartNamespace, "-o", "name")
			var octo []string
			for _, line := range strings.Fields(left) {
				// Every namespace has its default service account and CA bundle.
				if line != "serviceaccount/default" && line != "configmap/kube-root-ca.crt" {
					octo = append(octo, line)
				}
			}
			if len(octo) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("left in %s after uninstall: %v", chartNamespace, octo)
				break
			}
		}
		sel := "app.kubernetes.io/instance=" + chartRelease
		if out := e.mustOcto("kubectl", "get", "clusterroles,clusterrolebindings,namespaces,persistentvolumes", "-l", sel, "-o", "name"); strings.TrimSpace(out) != "" {
			t.Errorf("cluster-wide objects left after uninstall:\n%s", out)
		}
		// The Durable Objects' claim went with its namespace, and local-path
		// deletes its volume (reclaim policy Delete).
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
			pvs, err := cs.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
			if err == nil && len(pvs.Items) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("PersistentVolumes left after uninstall: %v %+v", err, pvs)
				break
			}
		}
		if out := e.mustOcto("kubectl", "get", "crds", "-o", "name"); strings.Contains(out, "api.cf-worker") {
			t.Errorf("CRDs left after uninstall:\n%s", out)
		}
		if out := e.mustOcto("kubectl", "get", "pods", "-A", "-l", "app.kubernetes.io/name=octo", "-o", "name"); strings.TrimSpace(out) != "" {
			t.Errorf("pods left after uninstall:\n%s", out)
		}
		// The releases' finalizers ran before the operators went: the
		// scripts' code is gone from S3 (KV data is the account's, and stays).
		for _, script := range []string{"e2e-esm", "e2e-kv"} {
			if left := scriptObjects(t, c, script); len(left) > 0 {
				t.Errorf("left in S3 after uninstall: %v", left)
			}
		}
	})
}

// tool is the path of an e2e tool (make e2e-tools).
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(*toolsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v (run: make e2e-tools)", name, err)
	}
	return p
}

// runTool runs a tool to its end and returns everything it printed.
func runTool(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+os.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// startService starts a long-running tool in its own process group and
// waits until addr accepts connections; the test's cleanup ends it.
func startService(t *testing.T, name, addr string, args ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tool(t, name), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("---- %s log ----\n%s", name, tail(string(b), 40))
		}
		logf.Close()
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("%s does not listen on %s: %v\n%s", name, addr, err, b)
		}
	}
}

// startVersityGW runs versitygw with its posix backend on externalS3.
func startVersityGW(t *testing.T, access, secret string) {
	t.Helper()
	root, meta := t.TempDir(), t.TempDir()
	startService(t, "versitygw", externalS3, "--access", access, "--secret", secret, "--port", externalS3,
		"posix", "--sidecar", meta, root)
}

// startRegistry runs distribution's registry on externalRegistry with one
// htpasswd user.
func startRegistry(t *testing.T, user, pass string) {
	t.Helper()
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	writeConfig(t, htpasswd, user+":"+string(hash)+"\n")
	conf := filepath.Join(dir, "config.yml")
	writeConfig(t, conf, fmt.Sprintf(`version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: %s}
  delete: {enabled: true}
http:
  addr: %s
auth:
  htpasswd: {realm: e2e, path: %s}
`, filepath.Join(dir, "data"), externalRegistry, htpasswd))
	startService(t, "registry", externalRegistry, "serve", conf)
}

// serviceAddr is the ClusterIP:port of a chart Service (kube-proxy makes it
// reachable from the node's host).
func serviceAddr(t *testing.T, cs kubernetes.Interface, name string) string {
	t.Helper()
	svc, err := cs.CoreV1().Services(chartNamespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort(svc.Spec.ClusterIP, fmt.Sprint(svc.Spec.Ports[0].Port))
}

// operatorsLeader is the pod that holds the operators' Lease.
func operatorsLeader(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		l, err := cs.CoordinationV1().Leases(chartNamespace).Get(context.Background(), chartRelease+"-operators", metav1.GetOptions{})
		if err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
			pod, _, _ := strings.Cut(*l.Spec.HolderIdentity, "_")
			p, err := cs.CoreV1().Pods(chartNamespace).Get(context.Background(), pod, metav1.GetOptions{})
			if err == nil && p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
				return pod
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no running pod holds the Lease %s-operators: %v", chartRelease, err)
		}
	}
}

// podReady reports whether p runs and is Ready.
func podReady(p corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitNamespaceGone waits until namespace ns is deleted.
func waitNamespaceGone(t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		n, err := cs.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace %s still there after uninstall: %v %+v", ns, err, n.Status)
		}
	}
}

// scriptObjects lists the S3 keys of a script's code in the external store.
func scriptObjects(t *testing.T, c *cluster, script string) []string {
	t.Helper()
	var keys []string
	for obj := range c.s3.ListObjects(context.Background(), store.Bucket, minio.ListObjectsOptions{Prefix: store.ScriptPrefix(clusterAccount, script), Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("list S3: %v", obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	return keys
}

// decodeToken decodes a Secret's base64 value.
func decodeToken(t *testing.T, b64 string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("token secret: %v", err)
	}
	return string(b)
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
