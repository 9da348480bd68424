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
	"embed"
	"errors"
	"strings"

	"github.com/octohq/octo/internal/embed/packed"
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

// binary is the packed workerd in bin.
func binary() packed.Binary {
	return packed.Binary{FS: bin, Dir: "bin", Name: BinaryName}
}

// SHA256 returns the hex SHA-256 of the embedded (uncompressed) binary.
func SHA256() (string, error) {
	sum, err := binary().SHA256()
	if errors.Is(err, packed.ErrNotEmbedded) {
		return "", ErrNotEmbedded
	}
	return sum, err
}

// Embedded reports whether this octo binary carries workerd.
func Embedded() bool { return binary().Embedded() }

// Extract writes the embedded workerd to <dir>/workerd (mode 0755) unless a
// file with the same SHA-256 is already there, and returns its path
// (packed.Binary.Extract: the fast path hashes the file, once per process,
// and never decompresses).
func Extract(dir string) (string, error) {
	path, err := binary().Extract(dir)
	if errors.Is(err, packed.ErrNotEmbedded) {
		return "", ErrNotEmbedded
	}
	return path, err
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
