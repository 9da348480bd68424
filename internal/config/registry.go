package config

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// RegistryUser is the user name of the registry's one account.
const RegistryUser = "octo"

// RegistryCredentials are what every client of the OCI registry presents
// (HTTP basic auth), to push and to pull: the builder, containerd and users
// of `octo env`. They are generated on the first start and saved, mode 0600,
// in RegistryCredentialsPath.
type RegistryCredentials struct {
	// Username is RegistryUser.
	Username string `json:"username"`
	// Password is 43 random URL-safe base64 characters (256 bits).
	Password string `json:"password"`
}

// RegistryCredentialsPath holds the generated registry user and password.
func (c Config) RegistryCredentialsPath() string { return c.Path("registry", "credentials.json") }

// LoadRegistryCredentials reads the registry credentials saved in c's data
// dir. The error wraps fs.ErrNotExist when none were generated yet, and
// fs.ErrPermission when the caller may not read them (not root).
func LoadRegistryCredentials(c Config) (RegistryCredentials, error) {
	path := c.RegistryCredentialsPath()
	b, err := os.ReadFile(path)
	if err != nil {
		return RegistryCredentials{}, fmt.Errorf("read registry credentials: %w", err)
	}
	var rc RegistryCredentials
	if err := json.Unmarshal(b, &rc); err != nil {
		return RegistryCredentials{}, fmt.Errorf("parse %s: %w", path, err)
	}
	if rc.Username == "" || rc.Password == "" {
		return RegistryCredentials{}, fmt.Errorf("parse %s: user name or password is empty", path)
	}
	return rc, nil
}

// EnsureRegistryCredentials returns the saved registry credentials,
// generating and saving new ones when there are none. Concurrent callers
// (the registry and containerd) get the same credentials: the file is
// created with a link, which never replaces an existing one. A saved file
// readable by others is made private again.
func EnsureRegistryCredentials(c Config) (RegistryCredentials, error) {
	rc, err := LoadRegistryCredentials(c)
	switch {
	case err == nil:
		return rc, restrictMode(c.RegistryCredentialsPath())
	case !errors.Is(err, fs.ErrNotExist):
		return RegistryCredentials{}, err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return RegistryCredentials{}, fmt.Errorf("generate registry password: %w", err)
	}
	rc = RegistryCredentials{Username: RegistryUser, Password: base64.RawURLEncoding.EncodeToString(secret)}
	b, err := json.MarshalIndent(rc, "", "  ")
	if err != nil {
		return RegistryCredentials{}, fmt.Errorf("encode registry credentials: %w", err)
	}
	if err := createFile(c.RegistryCredentialsPath(), append(b, '\n'), 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another caller created it first: use theirs.
			return LoadRegistryCredentials(c)
		}
		return RegistryCredentials{}, fmt.Errorf("save registry credentials: %w", err)
	}
	return rc, nil
}

// restrictMode removes the group and other permissions of path.
func restrictMode(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("registry credentials: %w", err)
	}
	if st.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, st.Mode().Perm()&0o700); err != nil {
		return fmt.Errorf("registry credentials: %w", err)
	}
	return nil
}

// createFile writes data to a new file at path, complete, or fails with an
// error wrapping fs.ErrExist when path exists.
func createFile(path string, data []byte, perm fs.FileMode) error {
	return placeFile(path, data, perm, os.Link)
}
