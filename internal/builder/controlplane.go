package builder

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	octoversion "github.com/octohq/octo/internal/version"
)

// ControlPlaneBin is the octo binary in the control-plane image.
const ControlPlaneBin = "/bin/octo"

// ControlPlane describes the image of octo's control plane: the API, the
// operators and the gateway are roles of one binary (its subcommands), as
// k3s ships one.
type ControlPlane struct {
	// Octo is the octo binary to put in the image (make build's bin/octo).
	Octo string
	// TempDir holds the layer while the image is written or pushed.
	TempDir string
	// Compression of the layer: Zstd (default) or Gzip (for runtimes
	// older than containerd 1.5).
	Compression string
	// LibDirs are searched for the glibc files octo links (its SQLite is
	// cgo); nil means DefaultLibDirs.
	LibDirs []string
	// CACerts is the CA bundle to copy; empty means DefaultCACerts.
	CACerts string
}

// Image builds the control-plane image: /bin/octo as the entrypoint, the
// glibc files, the CA bundle and /tmp, in one layer, running as nobody
// (65534). It is deterministic: the same files give the same digest. The
// layer is a file in TempDir until cleanup is called.
func (c ControlPlane) Image() (img v1.Image, cleanup func(), err error) {
	libDirs, ca := hostFilesOr(c.LibDirs, c.CACerts)
	libs, err := glibcEntries(libDirs)
	if err != nil {
		return nil, nil, fmt.Errorf("control-plane image: %w (octo links glibc)", err)
	}
	entries := append([]entry{
		dir("bin", 0o755),
		{name: ControlPlaneBin[1:], mode: 0o755, path: c.Octo},
		dir("etc", 0o755), dir("etc/ssl", 0o755), dir("etc/ssl/certs", 0o755),
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, path: ca},
		dir("tmp", 0o1777),
	}, libs...)
	l, err := fileLayer(c.TempDir, entries, c.Compression)
	if err != nil {
		return nil, nil, fmt.Errorf("control-plane image: %w", err)
	}
	img, err = oneLayerImage(l, "octo "+octoversion.Octo+": the control plane, one binary with a subcommand per role", v1.Config{
		Entrypoint: []string{ControlPlaneBin},
		Cmd:        []string{"--help"},
		User:       "65534:65534",
		WorkingDir: "/tmp",
		Labels:     map[string]string{"org.opencontainers.image.version": octoversion.Octo, "org.opencontainers.image.title": "octo"},
	})
	if err != nil {
		l.remove()
		return nil, nil, fmt.Errorf("control-plane image: %w", err)
	}
	return img, l.remove, nil
}
