package store

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/octohq/octo/internal/config"
)

// Identity is what the first `octo up` generates for the API: the bearer
// token wrangler sends and the default account. It is saved (0600) in the
// data dir and reused by later starts.
type Identity struct {
	Token       string `json:"token"`
	AccountID   string `json:"accountID"`
	AccountName string `json:"accountName"`
	Subdomain   string `json:"subdomain"`
	Email       string `json:"email"`
	// Namespace holds the default account's objects; empty:
	// DefaultNamespace. Set on clusters (`octo api --account-namespace`).
	Namespace string `json:"namespace,omitempty"`
	// ImagePullSecret is the default account's podTemplate.imagePullSecret
	// when octo creates it: the pull secret of an external registry.
	ImagePullSecret string `json:"imagePullSecret,omitempty"`
}

// IdentityPath is where the identity is saved.
func IdentityPath(cfg config.Config) string { return cfg.Path("api", "identity.json") }

// LoadIdentity reads the saved identity; the error wraps fs.ErrNotExist
// before the first start.
func LoadIdentity(cfg config.Config) (Identity, error) {
	b, err := os.ReadFile(IdentityPath(cfg))
	if err != nil {
		return Identity{}, fmt.Errorf("read API identity: %w", err)
	}
	var id Identity
	if err := json.Unmarshal(b, &id); err != nil {
		return Identity{}, fmt.Errorf("parse %s: %w", IdentityPath(cfg), err)
	}
	return id, nil
}

// EnsureIdentity loads the identity or generates and saves a new one.
func EnsureIdentity(cfg config.Config) (Identity, error) {
	id, err := LoadIdentity(cfg)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Identity{}, err
	}
	token, err := RandomHex(20)
	if err != nil {
		return Identity{}, err
	}
	account, err := RandomHex(16)
	if err != nil {
		return Identity{}, err
	}
	id = Identity{Token: token, AccountID: account, AccountName: "octo", Subdomain: "octo", Email: "dev@octo.localhost"}
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return Identity{}, err
	}
	if err := config.WriteFileAtomic(IdentityPath(cfg), b, 0o600); err != nil {
		return Identity{}, fmt.Errorf("save API identity: %w", err)
	}
	return id, nil
}

// RandomHex returns n random bytes as lowercase hex.
func RandomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return hex.EncodeToString(b), nil
}
