package podapi

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"

	"github.com/octohq/octo/internal/config"
)

// KeySize is the length in bytes of the platform key.
const KeySize = 32

// credentialContext separates pod credentials from any other use of the key.
const credentialContext = "octo-pod:"

// Key is the platform secret from which each account's pod credential is
// derived: Credential(account) = hex(HMAC-SHA256(key, "octo-pod:"+account)).
// The builder writes an account's credential into the workerd config of its
// bundles (the AuthHeader of every service that calls the pod API); the pod
// API recomputes it for the account a request names.
type Key struct {
	b [KeySize]byte
}

// NewKey returns the key made of b, which must be KeySize bytes.
func NewKey(b []byte) (*Key, error) {
	if len(b) != KeySize {
		return nil, fmt.Errorf("pod API key: %d bytes, want %d", len(b), KeySize)
	}
	k := &Key{}
	copy(k.b[:], b)
	return k, nil
}

// GenerateKey returns a new random key.
func GenerateKey() (*Key, error) {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("pod API key: %w", err)
	}
	return NewKey(b)
}

// EnsureKey loads the key saved at path, or generates one and saves it
// there (mode 0600) on the first start. It stays the same across restarts,
// so the credentials in images built earlier remain valid.
func EnsureKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := NewKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read pod API key: %w", err)
	}
	k, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	if err := config.WriteFileAtomic(path, k.b[:], 0o600); err != nil {
		return nil, fmt.Errorf("save pod API key: %w", err)
	}
	return k, nil
}

// Credential is the pod credential of an account, in hex.
func (k *Key) Credential(accountID string) string {
	return hex.EncodeToString(k.mac(accountID))
}

// Verify reports, in constant time, whether credential is the pod
// credential of accountID. An empty account never verifies.
func (k *Key) Verify(accountID, credential string) bool {
	if k == nil || accountID == "" {
		return false
	}
	got, err := hex.DecodeString(credential)
	if err != nil {
		return false
	}
	return hmac.Equal(got, k.mac(accountID))
}

func (k *Key) mac(accountID string) []byte {
	m := hmac.New(sha256.New, k.b[:])
	m.Write([]byte(credentialContext + accountID))
	return m.Sum(nil)
}

// podSource reports whether a request from addr may come from a pod: an
// address of the pod network (config.ClusterCIDR) other than the bridge's
// own (config.BridgeIP, the source of the host's own connections), never
// loopback.
func podSource(addr netip.Addr) bool {
	addr = addr.Unmap()
	return addr.IsValid() && !addr.IsLoopback() &&
		addr != netip.MustParseAddr(config.BridgeIP) && netip.MustParsePrefix(config.ClusterCIDR).Contains(addr)
}

// sourceIn admits the non-loopback addresses of nets.
func sourceIn(nets []netip.Prefix) func(netip.Addr) bool {
	return func(addr netip.Addr) bool {
		addr = addr.Unmap()
		if !addr.IsValid() || addr.IsLoopback() {
			return false
		}
		for _, n := range nets {
			if n.Contains(addr) {
				return true
			}
		}
		return false
	}
}
