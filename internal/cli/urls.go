package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/octohq/octo/internal/cfapi"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/gateway"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/web"
)

// Placeholders in the Workers URL pattern.
const (
	scriptPlaceholder    = "<script>"
	subdomainPlaceholder = "<subdomain>"
)

// Endpoint is one address a user connects to: a URL, or a path on disk for
// the kubeconfig and the data dir.
type Endpoint struct {
	// Label names the endpoint in text output ("cloudflare api").
	Label string
	// Key names it in JSON output ("cloudflareApi").
	Key string
	// Value is the URL or path.
	Value string
}

// Endpoints is the ordered list of what `octo up` prints at the end and
// `octo status` shows. It marshals as a JSON object keyed by Key, in order.
type Endpoints []Endpoint

// endpoints lists the addresses of an octo with configuration cfg. subdomain
// is the default account's workers subdomain, or "" for a placeholder. It is
// the only list of them: `octo up` and `octo status` (text and JSON) use it.
func endpoints(cfg config.Config, subdomain string) Endpoints {
	if subdomain == "" {
		subdomain = subdomainPlaceholder
	}
	edge := "http://" + config.Addr(cfg.EdgePort)
	es := Endpoints{
		{"kube-apiserver", "kubeApiServer", "https://" + config.Addr(cfg.APIServerPort)},
		{"s3", "s3", "http://" + config.Addr(cfg.S3Port)},
		{"registry", "registry", "http://" + cfg.RegistryAddr()},
	}
	if !cfg.BareCluster {
		es = append(es,
			Endpoint{"cloudflare api", "cloudflareApi", edge + cfapi.BasePath},
			Endpoint{"dashboard", "dashboard", web.URL(cfg.EdgePort)},
			Endpoint{"workers", "workers", gateway.URL(scriptPlaceholder, subdomain, cfg.EdgePort)})
	}
	return append(es,
		Endpoint{"kubeconfig", "kubeconfig", cfg.KubeconfigPath()},
		Endpoint{"data dir", "dataDir", cfg.DataDir})
}

// withLoginLink returns es with a "dashboard login" endpoint, link, right
// after the dashboard's: what `octo up` prints (the link is one-time, so
// `octo status` never lists it).
func withLoginLink(es Endpoints, link string) Endpoints {
	out := make(Endpoints, 0, len(es)+1)
	for _, e := range es {
		out = append(out, e)
		if e.Key == "dashboard" {
			out = append(out, Endpoint{"dashboard login", "dashboardLogin", link})
		}
	}
	return out
}

// defaultSubdomain returns the default account's workers subdomain, or ""
// when it cannot be read (before the first start, or without the rights to
// read the data dir).
func defaultSubdomain(cfg config.Config) string {
	id, err := store.LoadIdentity(cfg)
	if err != nil {
		return ""
	}
	return id.Subdomain
}

// MarshalJSON implements json.Marshaler: an object keyed by Key, in list
// order.
func (es Endpoints) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range es {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := writeJSONString(&b, e.Key); err != nil {
			return nil, fmt.Errorf("endpoint key %q: %w", e.Key, err)
		}
		b.WriteByte(':')
		if err := writeJSONString(&b, e.Value); err != nil {
			return nil, fmt.Errorf("endpoint %s: %w", e.Key, err)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// writeJSONString writes s as a JSON string, leaving '<' and '>' as they
// are so that "<script>" stays readable.
func writeJSONString(b *bytes.Buffer, s string) error {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return err
	}
	b.Truncate(b.Len() - 1) // Encode's newline
	return nil
}

// renderEndpoints prints the endpoints as aligned, indented lines.
func renderEndpoints(w io.Writer, es Endpoints) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, e := range es {
		fmt.Fprintf(tw, "  %s\t%s\n", e.Label, e.Value)
	}
	tw.Flush()
}
