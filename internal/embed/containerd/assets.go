package containerd

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed/packed"
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

// Asset returns an embedded binary stored as is (the pause binary).
func Asset(name string) ([]byte, error) {
	b, err := bin.ReadFile("bin/" + name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", name, ErrNotEmbedded)
	}
	return b, err
}

// shim is the packed shim (`make assets` stores it compressed, with its
// SHA-256).
func shim() packed.Binary {
	return packed.Binary{FS: bin, Dir: "bin", Name: ShimName}
}

// ExtractShim writes the shim to cfg.BinDir() unless an identical copy is
// there (its SHA-256 is checked; nothing is decompressed then). Shims
// already running keep their (renamed-over) executable.
func ExtractShim(cfg config.Config) (string, error) {
	path, err := shim().Extract(cfg.BinDir())
	if errors.Is(err, packed.ErrNotEmbedded) {
		return "", fmt.Errorf("%s: %w", ShimName, ErrNotEmbedded)
	}
	return path, err
}
