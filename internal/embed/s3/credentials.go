package s3

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/octohq/octo/internal/config"
)

// Region is the AWS region the S3 store reports to clients.
const Region = "us-east-1"

// Lengths of generated keys, the same as AWS access keys.
const (
	accessKeyLen = 20
	secretKeyLen = 40
)

// Credentials are the S3 store's root credentials and where to reach it. They
// are generated on the first start and saved in config.S3CredentialsPath.
type Credentials struct {
	// AccessKey is the access key ID (20 characters).
	AccessKey string `json:"accessKey"`
	// SecretKey is the secret access key (40 characters).
	SecretKey string `json:"secretKey"`
	// Region is the region to sign requests for.
	Region string `json:"region"`
	// Endpoint is the store's URL, for example "http://127.0.0.1:9000".
	Endpoint string `json:"endpoint"`
}

// LoadCredentials reads the credentials saved by the S3 store in cfg's data
// dir. The error wraps fs.ErrNotExist when the store never started there.
func LoadCredentials(cfg config.Config) (Credentials, error) {
	path := cfg.S3CredentialsPath()
	b, err := os.ReadFile(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("read S3 credentials: %w", err)
	}
	var c Credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return Credentials{}, fmt.Errorf("parse %s: %w", path, err)
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return Credentials{}, fmt.Errorf("parse %s: access key or secret key is empty", path)
	}
	if c.Region == "" {
		c.Region = Region
	}
	return c, nil
}

// ensureCredentials returns the saved credentials, generating and saving new
// ones on the first start. The saved endpoint follows cfg's S3 port.
func ensureCredentials(cfg config.Config) (Credentials, error) {
	c, err := LoadCredentials(cfg)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		if c.AccessKey, err = randomString(accessKeyLen, accessKeyAlphabet); err != nil {
			return Credentials{}, err
		}
		if c.SecretKey, err = randomString(secretKeyLen, secretKeyAlphabet); err != nil {
			return Credentials{}, err
		}
		c.Region = Region
	default:
		return Credentials{}, err
	}
	endpoint := "http://" + config.Addr(cfg.S3Port)
	if c.Endpoint == endpoint && err == nil {
		return c, nil
	}
	c.Endpoint = endpoint
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return Credentials{}, fmt.Errorf("encode S3 credentials: %w", err)
	}
	if err := config.WriteFileAtomic(cfg.S3CredentialsPath(), append(b, '\n'), 0o600); err != nil {
		return Credentials{}, fmt.Errorf("save S3 credentials: %w", err)
	}
	return c, nil
}

const (
	accessKeyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	secretKeyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// randomString returns n characters drawn uniformly from alphabet (at most
// 256 characters) with crypto/rand.
func randomString(n int, alphabet string) (string, error) {
	// Reject bytes at or above the largest multiple of len(alphabet) so
	// that every character is equally likely.
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("generate S3 key: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out), nil
}
