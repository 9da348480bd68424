package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/web"
)

func TestDashboardCommandNeedsARunningOcto(t *testing.T) {
	dir := t.TempDir()
	run := func() (string, error) {
		var out bytes.Buffer
		root := newRoot(&out, &out)
		root.SetArgs([]string{"dashboard", "--data-dir", dir})
		err := root.Execute()
		return out.String(), err
	}
	// Never started: no key.
	out, err := run()
	var ee *ExitError
	if err == nil || !asExit(err, &ee) || ee.Code != ExitNotRunning || !strings.Contains(err.Error(), "sudo octo up") {
		t.Fatalf("dashboard before any start: %v, want exit %d\n%s", err, ExitNotRunning, out)
	}
	// A key left by a stopped daemon: no link either.
	if _, err := web.CreateLoginKey(config.Default(dir).DashboardLoginKeyPath()); err != nil {
		t.Fatal(err)
	}
	out, err = run()
	if err == nil || !asExit(err, &ee) || ee.Code != ExitNotRunning || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("dashboard of a stopped octo: %v, want exit %d\n%s", err, ExitNotRunning, out)
	}
	if strings.Contains(out, "/login?token=") {
		t.Errorf("a link for a stopped octo:\n%s", out)
	}
}

func TestWithLoginLink(t *testing.T) {
	cfg := config.Default("/srv/octo")
	link := web.LoginURL(cfg.EdgePort, "tok")
	es := withLoginLink(endpoints(cfg, "octo"), link)
	if len(es) != len(endpoints(cfg, "octo"))+1 || es[4].Key != "dashboard" || es[5] != (Endpoint{"dashboard login", "dashboardLogin", link}) {
		t.Fatalf("endpoints with the login link = %v", es)
	}
	var buf bytes.Buffer
	renderEndpoints(&buf, es)
	if !strings.Contains(buf.String(), "  dashboard login  http://127.0.0.1:8787/login?token=tok\n") {
		t.Errorf("text:\n%s", buf.String())
	}
}
