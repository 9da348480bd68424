package containerd

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"

	"github.com/octohq/octo/internal/config"
)

// bin holds the binaries `make build` places in bin/ before compiling octo.
//
//go:embed bin
var bin embed.FS

// Names of the embedded binaries.
const (
	ShimName  = "containerd-shim-runc-v2"
	PauseName = "pause"
)

// ErrNotEmbedded means octo was compiled without `make build`, so the shim or
// the pause binary is missing.
var ErrNotEmbedded = errors.New("this octo binary was built without its embedded containerd shim and pause binaries; build it with `make build`")

// Asset returns an embedded binary. A binary stored compressed (name.zst,
// as `make assets` stores the shim) is decompressed.
func Asset(name string) ([]byte, error) {
	if z, err := bin.ReadFile("bin/" + name + ".zst"); err == nil {
		dec, err := zstd.NewReader(nil)
		if err != nil {
			return nil, err
		}
		defer dec.Close()
		b, err := dec.DecodeAll(z, nil)
		if err != nil {
			return nil, fmt.Errorf("decompress %s: %w", name, err)
		}
		return b, nil
	}
	b, err := bin.ReadFile("bin/" + name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", name, ErrNotEmbedded)
	}
	return b, err
}

// ExtractShim writes the shim to cfg.BinDir() unless an identical copy is
// there. Shims already running keep their (renamed-over) executable.
func ExtractShim(cfg config.Config) (string, error) {
	data, err := Asset(ShimName)
	if err != nil {
		return "", err
	}
	path := filepath.Join(cfg.BinDir(), ShimName)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return path, nil
	}
	if err := config.WriteFileAtomic(path, data, 0o755); err != nil {
		return "", fmt.Errorf("extract shim: %w", err)
	}
	return path, nil
}
