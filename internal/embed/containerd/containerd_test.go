package containerd

import (
	"strings"
	"testing"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/octohq/octo/internal/config"
)

func TestConfigurationIsValidTOML(t *testing.T) {
	cfg := config.Default("/var/lib/octo-test")
	c := New(cfg, nil)
	var parsed map[string]any
	if err := toml.Unmarshal([]byte(c.Configuration()), &parsed); err != nil {
		t.Fatalf("containerd config is not TOML: %v\n%s", err, c.Configuration())
	}
	if parsed["version"].(int64) != 3 {
		t.Errorf("version = %v", parsed["version"])
	}
	for _, want := range []string{
		"restrict_oom_score_adj = true", `sandbox = "` + PauseImage + `"`,
		`config_path = "/var/lib/octo-test/certs.d"`, `SystemdCgroup = false`,
		`address = "` + cfg.ContainerdSocket() + `"`,
	} {
		if !strings.Contains(c.Configuration(), want) {
			t.Errorf("config lacks %s", want)
		}
	}
}

func TestRegistryHostsUsesPlainHTTP(t *testing.T) {
	h := RegistryHosts("127.0.0.1:5050")
	var parsed struct {
		Server string `toml:"server"`
		Host   map[string]struct {
			Capabilities []string `toml:"capabilities"`
		} `toml:"host"`
	}
	if err := toml.Unmarshal([]byte(h), &parsed); err != nil {
		t.Fatal(err)
	}
	if parsed.Server != "http://127.0.0.1:5050" || len(parsed.Host["http://127.0.0.1:5050"].Capabilities) != 2 {
		t.Fatalf("hosts.toml = %+v", parsed)
	}
}

func TestSingleBinaryImageIsDeterministic(t *testing.T) {
	a, err := SingleBinaryImage("/app", []byte("binary"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := SingleBinaryImage("/app", []byte("binary"))
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("digests differ: %s vs %s", da, db)
	}
	cf, _ := a.ConfigFile()
	if cf.Config.Entrypoint[0] != "/app" || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Fatalf("config = %+v", cf.Config)
	}
}
