package envvars

import (
	"strings"
	"testing"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed/s3"
	"github.com/octohq/octo/internal/store"
)

func TestLines(t *testing.T) {
	cfg := config.Default("/var/lib/octo")
	got := strings.Join(Lines(cfg, s3.Credentials{AccessKey: "AK", SecretKey: "S'K", Region: "us-east-1"},
		store.Identity{Token: "tok", AccountID: "acct"}), "\n")
	for _, want := range []string{
		"export CLOUDFLARE_API_BASE_URL='http://" + config.Addr(cfg.EdgePort) + "/client/v4'",
		"export CLOUDFLARE_API_TOKEN='tok'",
		"export CLOUDFLARE_ACCOUNT_ID='acct'",
		"export KUBECONFIG='" + cfg.KubeconfigPath() + "'",
		`export AWS_SECRET_ACCESS_KEY='S'\''K'`,
		"export OCTO_HOME='/var/lib/octo'",
	} {
		if !strings.Contains(got, want+"\n") && !strings.HasSuffix(got, want) {
			t.Errorf("lines lack %q:\n%s", want, got)
		}
	}
	if n := len(Lines(cfg, s3.Credentials{}, store.Identity{})); n != 11 {
		t.Errorf("%d lines, want 11", n)
	}
}
