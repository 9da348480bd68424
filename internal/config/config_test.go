package config

import (
	"errors"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestSaveLoadRoundTripIsPrivate(t *testing.T) {
	dir := t.TempDir()
	c := Default(dir)
	c.S3Port, c.NodeName, c.NodeIP = 19000, "node", "192.0.2.2"
	c.InsecureRegistries = []string{"10.42.0.1:5000"}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("Load = %+v, want %+v", got, c)
	}
	st, err := os.Stat(c.Path("config.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config.json mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
}

func TestLoadMissingAndDefault(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of empty dir: %v, want ErrNotExist", err)
	}
	c, err := LoadOrDefault(dir)
	if err != nil || !reflect.DeepEqual(c, Default(dir)) {
		t.Fatalf("LoadOrDefault = %+v, %v", c, err)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"defaults", func(*Config) {}, ""},
		{"relative data dir", func(c *Config) { c.DataDir = "octo" }, "absolute"},
		{"duplicate port", func(c *Config) { c.S3Port = c.RegistryPort }, "used for both OCI registry and S3 store"},
		{"clash with fixed port", func(c *Config) { c.EdgePort = 10257 }, "kube-controller-manager"},
		{"out of range", func(c *Config) { c.APIServerPort = 70000 }, "--apiserver-port"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default("/var/lib/octo")
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestRunDirIsPerDataDir(t *testing.T) {
	if got := Default(DefaultDataDir).RunDir(); got != DefaultRunDir {
		t.Errorf("default run dir = %s", got)
	}
	a, b := Default("/tmp/a").RunDir(), Default("/tmp/b").RunDir()
	if a == b || !strings.HasPrefix(a, DefaultRunDir+"-") {
		t.Errorf("run dirs %s and %s must differ and live under /run", a, b)
	}
	if Default("/tmp/a/").RunDir() != a {
		t.Error("run dir depends on a trailing slash")
	}
}

func TestDataDirFromEnv(t *testing.T) {
	t.Setenv("OCTO_HOME", "/srv/octo")
	if got := DataDirFromEnv(); got != "/srv/octo" {
		t.Fatalf("DataDirFromEnv = %s", got)
	}
	t.Setenv("OCTO_HOME", "")
	if got := DataDirFromEnv(); got != DefaultDataDir {
		t.Fatalf("DataDirFromEnv = %s", got)
	}
}
