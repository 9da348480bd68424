// Package envvars makes the export lines of `octo env`: what points
// wrangler, kubectl, S3 clients and image tools at an octo. The CLI prints
// them and the dashboard shows them.
package envvars

import (
	"strings"

	"github.com/octohq/octo/internal/cfapi"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed/s3"
	"github.com/octohq/octo/internal/store"
)

// Lines returns the `export NAME='value'` lines, without newlines. The
// registry's user and password (OCTO_REGISTRY_USER, OCTO_REGISTRY_PASSWORD)
// come from cfg's data dir: they are left out when the caller may not read
// them (not root) or octo never started there.
func Lines(cfg config.Config, creds s3.Credentials, id store.Identity) []string {
	vars := [][2]string{
		{"CLOUDFLARE_API_BASE_URL", "http://" + config.Addr(cfg.EdgePort) + cfapi.BasePath},
		{"CLOUDFLARE_API_TOKEN", id.Token},
		{"CLOUDFLARE_ACCOUNT_ID", id.AccountID},
		{"KUBECONFIG", cfg.KubeconfigPath()},
		{"AWS_ACCESS_KEY_ID", creds.AccessKey},
		{"AWS_SECRET_ACCESS_KEY", creds.SecretKey},
		{"AWS_REGION", creds.Region},
		{"AWS_ENDPOINT_URL_S3", "http://" + config.Addr(cfg.S3Port)},
		{"OCTO_S3_ENDPOINT", "http://" + config.Addr(cfg.S3Port)},
		{"OCTO_REGISTRY", cfg.RegistryAddr()},
		{"OCTO_HOME", cfg.DataDir},
	}
	if rc, err := config.LoadRegistryCredentials(cfg); err == nil {
		vars = append(vars, [2]string{"OCTO_REGISTRY_USER", rc.Username}, [2]string{"OCTO_REGISTRY_PASSWORD", rc.Password})
	}
	out := make([]string, len(vars))
	for i, v := range vars {
		out[i] = "export " + v[0] + "=" + Quote(v[1])
	}
	return out
}

// Quote quotes s for POSIX shells: in single quotes, a quote written as
// quote, backslash, quote, quote.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
