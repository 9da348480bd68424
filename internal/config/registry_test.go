package config

import (
	"errors"
	"io/fs"
	"os"
	"sync"
	"testing"
)

func TestEnsureRegistryCredentials(t *testing.T) {
	c := Default(t.TempDir())
	if _, err := LoadRegistryCredentials(c); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load before the first start: %v, want ErrNotExist", err)
	}
	// Concurrent first starts agree on one set of credentials.
	var wg sync.WaitGroup
	got := make([]RegistryCredentials, 8)
	for i := range got {
		wg.Go(func() {
			rc, err := EnsureRegistryCredentials(c)
			if err != nil {
				t.Error(err)
			}
			got[i] = rc
		})
	}
	wg.Wait()
	rc := got[0]
	if rc.Username != RegistryUser || len(rc.Password) != 43 {
		t.Fatalf("credentials %q/%d characters, want %q and 43 characters", rc.Username, len(rc.Password), RegistryUser)
	}
	for _, g := range got {
		if g != rc {
			t.Fatalf("concurrent Ensure returned %+v and %+v", g, rc)
		}
	}
	st, err := os.Stat(c.RegistryCredentialsPath())
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	if loaded, err := LoadRegistryCredentials(c); err != nil || loaded != rc {
		t.Fatalf("Load = %+v, %v; want %+v", loaded, err, rc)
	}

	// Kept across starts, and made private again.
	if err := os.Chmod(c.RegistryCredentialsPath(), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := EnsureRegistryCredentials(c)
	if err != nil || again != rc {
		t.Fatalf("second Ensure = %+v, %v; want %+v", again, err, rc)
	}
	if st, _ := os.Stat(c.RegistryCredentialsPath()); st.Mode().Perm() != 0o600 {
		t.Errorf("mode after Ensure %v, want 0600", st.Mode().Perm())
	}

	// Another data dir, other credentials.
	other, err := EnsureRegistryCredentials(Default(t.TempDir()))
	if err != nil || other.Password == rc.Password {
		t.Errorf("other data dir: %+v, %v; want another password", other, err)
	}
}
