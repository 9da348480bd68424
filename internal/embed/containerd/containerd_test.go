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
	creds := config.RegistryCredentials{Username: "octo", Password: "s3cr-t_x"}
	text := c.Configuration(creds)
	var parsed map[string]any
	if err := toml.Unmarshal([]byte(text), &parsed); err != nil {
		t.Fatalf("containerd config is not TOML: %v\n%s", err, text)
	}
	if parsed["version"].(int64) != 3 {
		t.Errorf("version = %v", parsed["version"])
	}
	for _, want := range []string{
		"restrict_oom_score_adj = true", `sandbox = "` + PauseImage + `"`,
		`config_path = "/var/lib/octo-test/certs.d"`, `SystemdCgroup = false`,
		`address = "` + cfg.ContainerdSocket() + `"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("config lacks %s", want)
		}
	}
}

// TestConfigurationRegistryAuth checks that the CRI pulls from the embedded
// registry, under both of its names, with its credentials.
func TestConfigurationRegistryAuth(t *testing.T) {
	cfg := config.Default("/var/lib/octo-test")
	cfg.RegistryPort = 15050
	creds := config.RegistryCredentials{Username: "octo", Password: "pa\"ss'w_rd-1"}
	text := New(cfg, nil).Configuration(creds)
	type auth struct {
		Username string `toml:"username"`
		Password string `toml:"password"`
	}
	var parsed struct {
		Plugins map[string]struct {
			Registry struct {
				ConfigPath string `toml:"config_path"`
				Configs    map[string]struct {
					Auth *auth `toml:"auth"`
				} `toml:"configs"`
			} `toml:"registry"`
		} `toml:"plugins"`
	}
	if err := toml.Unmarshal([]byte(text), &parsed); err != nil {
		t.Fatalf("containerd config is not TOML: %v\n%s", err, text)
	}
	reg := parsed.Plugins["io.containerd.cri.v1.images"].Registry
	if reg.ConfigPath == "" || len(reg.Configs) != 2 {
		t.Fatalf("registry = %+v, want config_path and two auth configs\n%s", reg, text)
	}
	for _, host := range []string{"127.0.0.1:15050", "localhost:15050"} {
		a := reg.Configs[host].Auth
		if a == nil || a.Username != creds.Username || a.Password != creds.Password {
			t.Errorf("auth of %s = %+v, want %+v", host, a, creds)
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
