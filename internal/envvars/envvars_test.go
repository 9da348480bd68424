package envvars

import (
	"os"
	"strings"
	"testing"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed/s3"
	"github.com/octohq/octo/internal/store"
)

func TestLines(t *testing.T) {
	cfg := config.Default(t.TempDir())
	got := strings.Join(Lines(cfg, s3.Credentials{AccessKey: "AK", SecretKey: "S'K", Region: "us-east-1"},
		store.Identity{Token: "tok", AccountID: "acct"}), "\n")
	for _, want := range []string{
		"export CLOUDFLARE_API_BASE_URL='http://" + config.Addr(cfg.EdgePort) + "/client/v4'",
		"export CLOUDFLARE_API_TOKEN='tok'",
		"export CLOUDFLARE_ACCOUNT_ID='acct'",
		"export KUBECONFIG='" + cfg.KubeconfigPath() + "'",
		`export AWS_SECRET_ACCESS_KEY='S'\''K'`,
		"export OCTO_HOME='" + cfg.DataDir + "'",
	} {
		if !strings.Contains(got, want+"\n") && !strings.HasSuffix(got, want) {
			t.Errorf("lines lack %q:\n%s", want, got)
		}
	}
	// No registry credentials in the data dir (octo never started): none printed.
	if n := len(Lines(cfg, s3.Credentials{}, store.Identity{})); n != 11 {
		t.Errorf("%d lines, want 11", n)
	}
}

func TestLinesRegistryCredentials(t *testing.T) {
	cfg := config.Default(t.TempDir())
	rc, err := config.EnsureRegistryCredentials(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lines := Lines(cfg, s3.Credentials{}, store.Identity{})
	got := strings.Join(lines, "\n")
	for _, want := range []string{
		"export OCTO_REGISTRY='" + cfg.RegistryAddr() + "'",
		"export OCTO_REGISTRY_USER='" + rc.Username + "'",
		"export OCTO_REGISTRY_PASSWORD='" + rc.Password + "'",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("lines lack %q:\n%s", want, got)
		}
	}
	if len(lines) != 13 {
		t.Errorf("%d lines, want 13", len(lines))
	}

	// A caller that may not read them (not root) gets the other lines.
	if os.Geteuid() == 0 {
		t.Skip("root reads a mode 0000 file")
	}
	if err := os.Chmod(cfg.RegistryCredentialsPath(), 0); err != nil {
		t.Fatal(err)
	}
	if n := len(Lines(cfg, s3.Credentials{}, store.Identity{})); n != 11 {
		t.Errorf("unreadable credentials: %d lines, want 11", n)
	}
}
