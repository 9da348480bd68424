package cli

import (
	"bytes"
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
	renderStatus(&buf, cfg, daemon.Status{State: daemon.NotRunning})
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
	renderStatus(&buf, cfg, st)
	out := buf.String()
	for _, want := range []string{"PART", "s3", "ready", "http://127.0.0.1:9000", "20ms", "kubelet", "failed", "error: kubelet: ready: boom"} {
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
	if !strings.Contains(out.String(), `"state": "not running"`) {
		t.Fatalf("json: %s", out.String())
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
