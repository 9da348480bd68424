//go:build e2e

// Package e2e boots a real octo (as root) on a temporary data dir and
// non-default ports and drives it like a user: pods from an image pushed to
// the embedded registry, Services, in-cluster API access, S3, down/up,
// kill -9 recovery and purge, checking that the host is clean after `down`.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/octohq/octo/e2e/workload"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/daemon"
	"github.com/octohq/octo/internal/embed/containerd"
	"github.com/octohq/octo/internal/embed/s3"
	"github.com/octohq/octo/internal/teardown"
)

var octoBin = flag.String("octo", "../bin/octo", "path of the octo binary under test")

// Ports that differ from the defaults, so a developer's own octo is not hit.
var ports = []string{
	"--edge-port=18787", "--registry-port=15050", "--s3-port=19000",
	"--apiserver-port=16443", "--kubelet-port=11250",
}

const (
	ns        = "e2e"
	appName   = "hello"
	bucket    = "e2e-bucket"
	objectKey = "greeting.txt"
	objectVal = "hello from S3"
)

// sysctls octo may change; each must be back to its value after `down`.
var sysctls = []string{
	"net/ipv4/ip_forward", "net/ipv4/conf/all/route_localnet", "vm/overcommit_memory",
	"kernel/panic", "kernel/panic_on_oops",
}

type env struct {
	t       *testing.T
	bin     string
	cfg     config.Config
	baseSys map[string]string
}

func (e *env) octo(args ...string) (string, error) {
	e.t.Helper()
	full := append([]string{}, args...)
	full = append(full, "--data-dir", e.cfg.DataDir)
	cmd := exec.Command(e.bin, full...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.userKubeconfig())
	err := cmd.Run()
	e.t.Logf("$ octo %s\n%s", strings.Join(args, " "), out.String())
	return out.String(), err
}

// userKubeconfig stands in for ~/.kube/config, so the test never touches the
// real one.
func (e *env) userKubeconfig() string {
	return filepath.Join(filepath.Dir(e.cfg.DataDir), "user-kubeconfig")
}

func (e *env) mustOcto(args ...string) string {
	e.t.Helper()
	out, err := e.octo(args...)
	if err != nil {
		e.t.Fatalf("octo %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (e *env) client() *kubernetes.Clientset {
	e.t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", e.cfg.KubeconfigPath())
	if err != nil {
		e.t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		e.t.Fatal(err)
	}
	return cs
}

func TestLifecycle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the e2e test boots a real cluster and must run as root (make e2e under sudo)")
	}
	bin, err := filepath.Abs(*octoBin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("octo binary: %v (run make build)", err)
	}
	base := t.TempDir()
	dataDir := filepath.Join(base, "data")
	e := &env{t: t, bin: bin, cfg: config.Default(dataDir), baseSys: readSysctls(t)}
	t.Cleanup(func() {
		if t.Failed() {
			for _, part := range []string{"octo", "containerd", "kubelet", "kube-apiserver"} {
				if b, err := os.ReadFile(e.cfg.ComponentLogPath(part)); err == nil {
					t.Logf("---- tail of %s log ----\n%s", part, tail(string(b), 40))
				}
			}
		}
		_, _ = e.octo("down", "--purge", "--yes")
	})

	// Up on an empty data dir.
	e.mustOcto(append([]string{"up"}, ports...)...)
	cfg, err := config.Load(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	if out, err := e.octo("up"); err == nil || !strings.Contains(out, "already running") {
		t.Fatalf("second up while running: err=%v out=%q, want 'already running'", err, out)
	}
	status := e.mustOcto("status", "-o", "json")
	for _, part := range []string{"kine", "kube-apiserver", "kubelet", "containerd", "s3", "registry"} {
		if !strings.Contains(status, `"name": "`+part+`"`) {
			t.Errorf("status lacks %s", part)
		}
	}
	if out := e.mustOcto("kubectl", "get", "nodes"); !strings.Contains(out, " Ready") {
		t.Fatalf("node not Ready:\n%s", out)
	}
	if kc, err := os.ReadFile(e.userKubeconfig()); err != nil || !strings.Contains(string(kc), "current-context: octo") {
		t.Errorf("kubeconfig not merged into $KUBECONFIG: %v\n%s", err, kc)
	}
	envOut := e.mustOcto("env")
	if !strings.Contains(envOut, "AWS_ACCESS_KEY_ID=") || !strings.Contains(envOut, "KUBECONFIG=") {
		t.Fatalf("octo env:\n%s", envOut)
	}
	regAuth := registryAuth(t, parseEnv(t, envOut))
	if out := e.mustOcto("logs", "--tail", "5", "kubelet"); out == "" {
		t.Error("octo logs kubelet printed nothing")
	}

	image := pushHello(t, cfg.RegistryAddr()+"/e2e/hello:1", regAuth)
	checkRegistryRefusesAnonymous(t, cfg, image, regAuth)
	cs := e.client()
	ctx := context.Background()
	deployHello(t, cs, image)
	svcIP := waitServing(t, cs, 2)
	checkPodToPod(t, e, cs)
	checkInClusterAPI(t, e, cs)
	checkClusterDNS(t, e, cs)
	volumeDir := writeLocalVolume(t, e, cs, image, dataDir)
	checkControlPlaneImage(t, e, cs, cfg.RegistryAddr(), regAuth)
	putS3Object(t, cfg)

	// Down: host clean, data kept.
	e.mustOcto("down")
	e.assertHostClean()
	if _, err := os.Stat(dataDir); err != nil {
		t.Fatalf("data dir removed by down: %v", err)
	}

	// Up again: same objects serve, S3 object and image still there.
	e.mustOcto("up")
	cs = e.client()
	if got := waitServing(t, cs, 2); got != svcIP {
		t.Logf("service IP changed %s -> %s", svcIP, got)
	}
	getS3Object(t, cfg)
	localVolumeSurvived(t, e, cs)
	deleteLocalVolume(t, cs, volumeDir)
	if _, err := remote.Head(mustRef(t, image), regAuth); err != nil {
		t.Fatalf("registry image gone after down/up: %v", err)
	}

	// kill -9 of the daemon: the next up recovers.
	pid, alive := daemon.RunningPID(cfg)
	if !alive {
		t.Fatal("daemon not running before kill -9")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	out := e.mustOcto("up")
	if !strings.Contains(out, "did not stop cleanly") {
		t.Errorf("up after kill -9 did not report the recovery:\n%s", out)
	}
	waitServing(t, e.client(), 2)
	_ = ctx

	// Purge.
	e.mustOcto("down", "--purge", "--yes")
	e.assertHostClean()
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Fatalf("data dir still there after purge: %v", err)
	}
	if kc, _ := os.ReadFile(e.userKubeconfig()); strings.Contains(string(kc), "octo") {
		t.Errorf("purge left the octo context in the kubeconfig:\n%s", kc)
	}
}

// registryAuth is the registry's credentials from `octo env` as a
// go-containerregistry option.
func registryAuth(t *testing.T, vars map[string]string) remote.Option {
	t.Helper()
	user, pass := vars["OCTO_REGISTRY_USER"], vars["OCTO_REGISTRY_PASSWORD"]
	if user == "" || pass == "" {
		t.Fatalf("octo env lacks OCTO_REGISTRY_USER or OCTO_REGISTRY_PASSWORD: %v", slices.Sorted(maps.Keys(vars)))
	}
	return remote.WithAuth(&authn.Basic{Username: user, Password: pass})
}

// helloImage compiles the hello program (static) into a one-layer image.
func helloImage(t *testing.T) v1.Image {
	t.Helper()
	out := filepath.Join(t.TempDir(), "hello")
	build := exec.Command("go", "build", "-o", out, ".")
	build.Dir = filepath.Join("testdata", "hello")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build hello: %v\n%s", err, b)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	img, err := containerd.SingleBinaryImage("/hello", bin)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// pushHello pushes the hello image to ref with auth and returns ref.
func pushHello(t *testing.T, ref string, auth remote.Option) string {
	t.Helper()
	if err := remote.Write(mustRef(t, ref), helloImage(t), auth); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}

// checkRegistryRefusesAnonymous: without credentials, as any local user
// would be, pushes (to a new repository, over the pushed image, over the
// workerd base) and pulls (of the pushed image, of the base, of an account's
// bundle images) answer 401, and the image stays what it was.
func checkRegistryRefusesAnonymous(t *testing.T, cfg config.Config, image string, auth remote.Option) {
	t.Helper()
	before, err := remote.Head(mustRef(t, image), auth)
	if err != nil {
		t.Fatal(err)
	}
	evil, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	refused := func(what string, err error) {
		t.Helper()
		var terr *transport.Error
		if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
			t.Errorf("anonymous %s: %v, want 401", what, err)
		}
	}
	for _, ref := range []string{image, cfg.RegistryAddr() + "/e2e/evil:1", cfg.RegistryAddr() + "/octo/workerd:latest",
		cfg.RegistryAddr() + "/octo/accounts/0123456789abcdef0123456789abcdef:1"} {
		refused("push to "+ref, remote.Write(mustRef(t, ref), evil))
	}
	_, err = remote.Image(mustRef(t, image))
	refused("pull of "+image, err)
	_, err = remote.List(mustRef(t, image).Context())
	refused("tag list", err)
	_, err = remote.Catalog(context.Background(), mustRef(t, image).Context().Registry)
	refused("catalog", err)
	resp, err := http.Get("http://" + cfg.RegistryAddr() + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("anonymous GET /v2/: %s %q, want 401 with a basic challenge", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	if d, err := remote.Head(mustRef(t, image)); err == nil {
		t.Errorf("anonymous HEAD of %s answered %s", image, d.Digest)
	}
	after, err := remote.Head(mustRef(t, image), auth)
	if err != nil || after.Digest != before.Digest {
		t.Errorf("%s after the refused pushes: %v, %v; want %s", image, after, err, before.Digest)
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// deployHello creates the namespace, the hello Deployment and Service, and
// lets the namespace's default service account list namespaces.
func deployHello(t *testing.T, cs *kubernetes.Clientset, image string) {
	t.Helper()
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := workload.Deploy(ctx, cs, ns, appName, image, 2); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-list-namespaces"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"list"}}},
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-list-namespaces"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "default", Namespace: ns}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitServing waits for want ready pods and a 200 from the Service on the host.
func waitServing(t *testing.T, cs *kubernetes.Clientset, want int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ip, err := workload.WaitServing(ctx, cs, ns, appName, want)
	if err != nil {
		t.Fatal(err)
	}
	return ip
}

func readyPods(ctx context.Context, cs *kubernetes.Clientset) ([]corev1.Pod, error) {
	return workload.ReadyPods(ctx, cs, ns, appName)
}

func checkPodToPod(t *testing.T, e *env, cs *kubernetes.Clientset) {
	t.Helper()
	pods, err := readyPods(context.Background(), cs)
	if err != nil || len(pods) < 2 {
		t.Fatalf("need 2 ready pods: %v %d", err, len(pods))
	}
	out := e.mustOcto("kubectl", "exec", "-n", ns, pods[0].Name, "--", "/hello", "get", "http://"+pods[1].Status.PodIP+":8080/")
	if !strings.Contains(out, "hello from "+pods[1].Name) {
		t.Fatalf("pod %s -> pod %s answered %q", pods[0].Name, pods[1].Name, out)
	}
}

// checkClusterDNS: a pod reaches a Service by its name, short (the
// namespace's search domain) and fully qualified, through the daemon's
// CoreDNS; the host can ask it too.
func checkClusterDNS(t *testing.T, e *env, cs *kubernetes.Clientset) {
	t.Helper()
	pods, err := readyPods(context.Background(), cs)
	if err != nil || len(pods) == 0 {
		t.Fatalf("no ready pod of %s: %v", appName, err)
	}
	for _, host := range []string{appName, appName + "." + ns + ".svc.cluster.local"} {
		out, err := e.octo("kubectl", "exec", "-n", ns, pods[0].Name, "--", "/hello", "get", "http://"+host+"/")
		if err != nil || !strings.Contains(out, "hello from ") {
			t.Errorf("a pod fetching http://%s/: %v\n%s", host, err, out)
		}
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(config.ClusterDNS, "53"))
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if addrs, err := r.LookupHost(ctx, "kubernetes.default.svc.cluster.local"); err != nil || len(addrs) != 1 || addrs[0] != config.KubernetesServiceIP {
		t.Errorf("kubernetes.default.svc.cluster.local from the host = %v, %v; want %s", addrs, err, config.KubernetesServiceIP)
	}
}

func checkInClusterAPI(t *testing.T, e *env, cs *kubernetes.Clientset) {
	t.Helper()
	pods, _ := readyPods(context.Background(), cs)
	out := e.mustOcto("kubectl", "exec", "-n", ns, pods[0].Name, "--", "/hello", "namespaces")
	for _, want := range []string{"default", "kube-system", ns} {
		if !strings.Contains(out, want+"\n") {
			t.Fatalf("namespaces listed from a pod lack %q:\n%s", want, out)
		}
	}
}

func s3Client(t *testing.T, cfg config.Config) *minio.Client {
	t.Helper()
	creds, err := s3.LoadCredentials(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := minio.New(config.Addr(cfg.S3Port), &minio.Options{
		Creds: credentials.NewStaticV4(creds.AccessKey, creds.SecretKey, ""), Region: creds.Region,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func putS3Object(t *testing.T, cfg config.Config) {
	t.Helper()
	ctx := context.Background()
	c := s3Client(t, cfg)
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket: %v", err)
	}
	if _, err := c.PutObject(ctx, bucket, objectKey, strings.NewReader(objectVal), int64(len(objectVal)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put object: %v", err)
	}
	getS3Object(t, cfg)
}

func getS3Object(t *testing.T, cfg config.Config) {
	t.Helper()
	obj, err := s3Client(t, cfg).GetObject(context.Background(), bucket, objectKey, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get object: %v", err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil || string(b) != objectVal {
		t.Fatalf("object = %q, %v; want %q", b, err, objectVal)
	}
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if err := syscall.Kill(pid, 0); err != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("pid %d still alive", pid)
}

// assertHostClean checks, independently of octo's own teardown code and then
// with it, that nothing of the cluster is left on the host.
func (e *env) assertHostClean() {
	t := e.t
	t.Helper()
	var problems []string
	for _, p := range processesUnder(e.cfg.DataDir) {
		problems = append(problems, "process "+p)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (strings.HasPrefix(f[4], e.cfg.DataDir) || strings.HasPrefix(f[4], e.cfg.RunDir()) || strings.HasPrefix(f[4], "/run/netns/cni-")) {
			problems = append(problems, "mount "+f[4])
		}
	}
	if err := exec.Command("ip", "link", "show", config.BridgeName).Run(); err == nil {
		problems = append(problems, "link cni0")
	}
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		out, _ := exec.Command(tool).Output()
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "KUBE-") || strings.Contains(line, "CNI-") || strings.Contains(line, "OCTO-") {
				problems = append(problems, tool+": "+line)
				break
			}
		}
	}
	now := readSysctls(t)
	for k, v := range e.baseSys {
		if now[k] != v {
			problems = append(problems, fmt.Sprintf("sysctl %s = %s, was %s", k, now[k], v))
		}
	}
	if left, err := teardown.Leftovers(e.cfg); err != nil || len(left) > 0 {
		problems = append(problems, fmt.Sprintf("teardown.Leftovers: %v %v", left, err))
	}
	if len(problems) > 0 {
		t.Fatalf("host not clean after down:\n  %s", strings.Join(problems, "\n  "))
	}
}

// processesUnder lists processes whose executable or argv[0] is inside dir.
func processesUnder(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		exe, _ := os.Readlink("/proc/" + pid + "/exe")
		cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		argv0, _, _ := strings.Cut(string(cmdline), "\x00")
		if strings.HasPrefix(exe, dir+"/") || strings.HasPrefix(argv0, dir+"/") {
			out = append(out, pid+" "+argv0)
		}
	}
	return out
}

func readSysctls(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, k := range sysctls {
		b, err := os.ReadFile("/proc/sys/" + k)
		if err == nil {
			m[k] = strings.TrimSpace(string(b))
		}
	}
	return m
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
