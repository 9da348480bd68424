// Package workerd ships the workerd runtime inside octo and turns Worker
// versions into workerd configuration.
//
// The binary is npm's @cloudflare/workerd-linux-64 at Version, fetched at
// build time by `make workerd` (pinned and integrity-checked by
// tools/workerd/package-lock.json), stripped and embedded zstd-compressed.
// Extract writes it to disk; Render writes the text Cap'n Proto config that
// runs a set of Workers in one workerd process; Validate starts one Worker
// once on the host to catch startup errors before a version is accepted.
package workerd

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Version is the npm version of @cloudflare/workerd-linux-64 octo embeds:
// the one wrangler 4.86.0 uses (`workerd --version` prints "workerd 2026-04-26").
const Version = "1.20260426.1"

// MaxCompatibilityDate is the newest compatibility date the embedded workerd
// supports. Measured: with compatibilityDate "2099-01-01" it exits with
// `This Worker requires compatibility date "2099-01-01", but the newest date
// supported by this server binary is "2026-05-03".`
const MaxCompatibilityDate = "2026-05-03"

// DefaultCompatibilityDate is used for a version uploaded without a
// compatibility date (the draft Worker `wrangler secret put` creates for a
// missing script). Cloudflare runs such a Worker with the oldest behaviour,
// none of the date-gated changes enabled; miniflare does the same with this
// very date (its FALLBACK_COMPATIBILITY_DATE).
const DefaultCompatibilityDate = "2000-01-01"

// BinaryName is the file name Extract writes.
const BinaryName = "workerd"

// bin holds what `make workerd` writes: workerd.zst and workerd.sha256 (and
// a committed README.md, so the directory always exists).
//
//go:embed bin
var bin embed.FS

// ErrNotEmbedded means octo was compiled without the workerd runtime.
var ErrNotEmbedded = errors.New("this octo binary was built without workerd; run `make build` (or `make workerd` before `go build`)")

// SHA256 returns the hex SHA-256 of the embedded (uncompressed) binary.
func SHA256() (string, error) {
	b, err := bin.ReadFile("bin/workerd.sha256")
	if errors.Is(err, fs.ErrNotExist) {
		return "", ErrNotEmbedded
	}
	if err != nil {
		return "", err
	}
	sum := strings.TrimSpace(string(b))
	if len(sum) != 64 {
		return "", fmt.Errorf("embedded workerd.sha256 is malformed: %q", sum)
	}
	return sum, nil
}

// Embedded reports whether this octo binary carries workerd.
func Embedded() bool {
	_, err := SHA256()
	if err != nil {
		return false
	}
	_, err = fs.Stat(bin, "bin/workerd.zst")
	return err == nil
}

// verified remembers files this process has already hashed, so repeated
// Extract calls do not re-read ~90 MB each time.
var verified sync.Map // path -> fileStamp

type fileStamp struct {
	sum     string
	size    int64
	modTime time.Time
}

// Extract writes the embedded workerd to <dir>/workerd (mode 0755) unless a
// file with the same SHA-256 is already there, and returns its path. The
// fast path (the file is up to date) hashes the file but never decompresses.
// Concurrent calls are safe: the file is replaced by an atomic rename.
func Extract(dir string) (string, error) {
	want, err := SHA256()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, BinaryName)
	if ok, err := upToDate(path, want); err != nil {
		return "", err
	} else if ok {
		return path, nil
	}
	zf, err := bin.Open("bin/workerd.zst")
	if errors.Is(err, fs.ErrNotExist) {
		return "", ErrNotEmbedded
	}
	if err != nil {
		return "", err
	}
	defer zf.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("extract workerd: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".workerd-*")
	if err != nil {
		return "", fmt.Errorf("extract workerd: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	dec, err := zstd.NewReader(zf, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		tmp.Close()
		return "", fmt.Errorf("extract workerd: %w", err)
	}
	defer dec.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), dec); err != nil {
		tmp.Close()
		return "", fmt.Errorf("extract workerd: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		tmp.Close()
		return "", fmt.Errorf("extract workerd: embedded binary has sha256 %s, expected %s; rebuild with `make build`", got, want)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return "", fmt.Errorf("extract workerd: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("extract workerd: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("extract workerd: %w", err)
	}
	remember(path, want)
	return path, nil
}

// upToDate reports whether path is an executable file with SHA-256 want.
func upToDate(path, want string) (bool, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("extract workerd: %w", err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return false, nil
	}
	if v, ok := verified.Load(path); ok {
		s := v.(fileStamp)
		if s.sum == want && s.size == st.Size() && s.modTime.Equal(st.ModTime()) {
			return true, nil
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return false, nil // unreadable: rewrite it
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, nil
	}
	if hex.EncodeToString(h.Sum(nil)) != want {
		return false, nil
	}
	verified.Store(path, fileStamp{sum: want, size: st.Size(), modTime: st.ModTime()})
	return true, nil
}

func remember(path, sum string) {
	if st, err := os.Stat(path); err == nil {
		verified.Store(path, fileStamp{sum: sum, size: st.Size(), modTime: st.ModTime()})
	}
}

// runtimeVersion is what `workerd --version` prints for Version:
// "1.20260426.1" → "workerd 2026-04-26".
func runtimeVersion() string {
	parts := strings.Split(Version, ".")
	if len(parts) != 3 || len(parts[1]) != 8 {
		return ""
	}
	d := parts[1]
	return "workerd " + d[:4] + "-" + d[4:6] + "-" + d[6:]
}
