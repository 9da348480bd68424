package cli

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/daemon"
	"github.com/octohq/octo/internal/embed/s3"
	"github.com/octohq/octo/internal/store"
)

func TestRenderStatus(t *testing.T) {
	cfg := config.Default("/tmp/octo-test")
	var buf bytes.Buffer
	renderStatus(&buf, cfg, daemon.Status{State: daemon.NotRunning}, endpoints(cfg, ""))
	if !strings.Contains(buf.String(), "not running") {
		t.Fatalf("not running: %q", buf.String())
	}

	buf.Reset()
	st := daemon.Status{
		State: daemon.Failed, PID: 42, DataDir: cfg.DataDir, StartedAt: time.Now(), Error: "kubelet: ready: boom",
		Components: []daemon.ComponentStatus{
			{Name: "s3", State: daemon.Ready, Endpoint: "http://127.0.0.1:9000", ReadyAfter: daemon.Duration(20 * time.Millisecond)},
			{Name: "kubelet", State: daemon.Failed, Error: "boom"},
		},
	}
	renderStatus(&buf, cfg, st, endpoints(cfg, "octo"))
	out := buf.String()
	for _, want := range []string{"PART", "s3", "ready", "http://127.0.0.1:9000", "20ms", "kubelet", "failed", "error: kubelet: ready: boom",
		"cloudflare api", "http://127.0.0.1:8787/client/v4", "dashboard", "http://<script>.octo.workers.localhost:8787/"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
}

func TestStatusJSONOutput(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	root := newRoot(&out, &out)
	root.SetArgs([]string{"status", "-o", "json", "--data-dir", dir})
	err := root.Execute()
	var ee *ExitError
	if err == nil || !asExit(err, &ee) || ee.Code != ExitNotRunning {
		t.Fatalf("status of a stopped octo: err=%v, want exit %d", err, ExitNotRunning)
	}
	var got struct {
		State string            `json:"state"`
		URLs  map[string]string `json:"urls"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("json: %v\n%s", err, out.String())
	}
	if got.State != "not running" {
		t.Errorf("state = %q\n%s", got.State, out.String())
	}
	for key, want := range map[string]string{
		"cloudflareApi": "http://127.0.0.1:8787/client/v4",
		"dashboard":     "http://127.0.0.1:8787/",
		"workers":       "http://<script>.<subdomain>.workers.localhost:8787/",
		"dataDir":       dir,
	} {
		if got.URLs[key] != want {
			t.Errorf("urls.%s = %q, want %q", key, got.URLs[key], want)
		}
	}
	if strings.Contains(out.String(), `\u003c`) {
		t.Errorf("json escapes '<':\n%s", out.String())
	}
}

func TestEndpoints(t *testing.T) {
	cfg := config.Default("/srv/octo")
	cfg.EdgePort, cfg.S3Port, cfg.RegistryPort, cfg.APIServerPort = 18787, 19000, 15050, 16443
	es := endpoints(cfg, "team")
	want := []Endpoint{
		{"kube-apiserver", "kubeApiServer", "https://127.0.0.1:16443"},
		{"s3", "s3", "http://127.0.0.1:19000"},
		{"registry", "registry", "http://127.0.0.1:15050"},
		{"cloudflare api", "cloudflareApi", "http://127.0.0.1:18787/client/v4"},
		{"dashboard", "dashboard", "http://127.0.0.1:18787/"},
		{"workers", "workers", "http://<script>.team.workers.localhost:18787/"},
		{"kubeconfig", "kubeconfig", "/srv/octo/kubeconfig.yaml"},
		{"data dir", "dataDir", "/srv/octo"},
	}
	if !reflect.DeepEqual([]Endpoint(es), want) {
		t.Fatalf("endpoints =\n%v\nwant\n%v", es, want)
	}
	if got := endpoints(cfg, "")[5].Value; got != "http://<script>.<subdomain>.workers.localhost:18787/" {
		t.Errorf("workers pattern without a subdomain = %q", got)
	}

	b, err := json.Marshal(es)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), `{"kubeApiServer":"https://127.0.0.1:16443","s3":`) {
		t.Errorf("json not in list order: %s", b)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil || len(m) != len(want) {
		t.Fatalf("json %s: %v, %d keys", b, err, len(m))
	}

	var buf bytes.Buffer
	renderEndpoints(&buf, es)
	if !strings.Contains(buf.String(), "  cloudflare api  http://127.0.0.1:18787/client/v4\n") {
		t.Errorf("text:\n%s", buf.String())
	}
}

func TestRootHelp(t *testing.T) {
	var out bytes.Buffer
	root := newRoot(&out, &out)
	root.SetOut(&out)
	root.SetArgs([]string{"--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	for _, want := range []string{
		"Kubernetes", "S3 store", "registry", "wrangler", "operators", "gateway", "dashboard",
		"sudo octo up", `eval "$(sudo octo env)"`, "npx wrangler deploy",
		"http://127.0.0.1:8787/client/v4", "http://<script>.<subdomain>.workers.localhost:8787/", "http://127.0.0.1:8787/",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("octo --help lacks %q:\n%s", want, help)
		}
	}
	if n := strings.Count(rootLong(), "\n") + 1; n > 25 {
		t.Errorf("root help is %d lines, want at most 25", n)
	}
}

func TestWriteEnvQuotes(t *testing.T) {
	var buf bytes.Buffer
	cfg := config.Default("/tmp/it's")
	writeEnv(&buf, cfg, s3.Credentials{AccessKey: "AK", SecretKey: "S'K", Region: "us-east-1"},
		store.Identity{Token: "tok", AccountID: "0123456789abcdef0123456789abcdef"})
	out := buf.String()
	for _, want := range []string{
		`export AWS_SECRET_ACCESS_KEY='S'\''K'`,
		`export KUBECONFIG='/tmp/it'\''s/kubeconfig.yaml'`,
		`export AWS_ENDPOINT_URL_S3='http://127.0.0.1:9000'`,
		`export OCTO_REGISTRY='127.0.0.1:5050'`,
		`export CLOUDFLARE_API_BASE_URL='http://127.0.0.1:8787/client/v4'`,
		`export CLOUDFLARE_API_TOKEN='tok'`,
		`export CLOUDFLARE_ACCOUNT_ID='0123456789abcdef0123456789abcdef'`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("env output lacks %s:\n%s", want, out)
		}
	}
}

func TestStripDataDir(t *testing.T) {
	dir := "/default"
	got := stripDataDir([]string{"get", "--data-dir", "/x", "pods", "--data-dir=/y", "-A"}, &dir)
	if strings.Join(got, " ") != "get pods -A" || dir != "/y" {
		t.Fatalf("stripDataDir = %v, dir %s", got, dir)
	}
}

func TestUnknownLogPartListsParts(t *testing.T) {
	dir := t.TempDir()
	root := newRoot(&bytes.Buffer{}, &bytes.Buffer{})
	root.SetArgs([]string{"logs", "nope", "--data-dir", dir})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "no logs") {
		t.Fatalf("logs with no log dir: %v", err)
	}
}

func asExit(err error, target **ExitError) bool {
	e, ok := err.(*ExitError)
	if ok {
		*target = e
	}
	return ok
}
