package containerd

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// PauseImageTarball builds the pause image from the embedded pause binary as a
// docker-archive tarball tagged PauseImage. The result is deterministic.
func PauseImageTarball() ([]byte, error) {
	bin, err := Asset(PauseName)
	if err != nil {
		return nil, err
	}
	img, err := SingleBinaryImage("/pause", bin)
	if err != nil {
		return nil, fmt.Errorf("build pause image: %w", err)
	}
	tag, err := name.NewTag(PauseImage)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := tarball.Write(tag, img, &buf); err != nil {
		return nil, fmt.Errorf("write pause image: %w", err)
	}
	return buf.Bytes(), nil
}

// SingleBinaryImage is a one-layer linux/amd64 image holding one static
// executable at path, which is also its entrypoint.
func SingleBinaryImage(path string, binary []byte) (v1.Image, error) {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.WriteHeader(&tar.Header{
		Name: path[1:], Mode: 0o755, Size: int64(len(binary)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0),
	}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(binary); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := layer.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{path}
	return mutate.ConfigFile(img, cf)
}

// importPause imports and unpacks the pause image unless it is there already.
func (c *Containerd) importPause(ctx context.Context) error {
	cl, err := c.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	if img, err := cl.GetImage(ctx, PauseImage); err == nil {
		if ok, err := img.IsUnpacked(ctx, "overlayfs"); err == nil && ok {
			return nil
		}
	}
	archive, err := PauseImageTarball()
	if err != nil {
		return err
	}
	imgs, err := cl.Import(ctx, bytes.NewReader(archive))
	if err != nil {
		return fmt.Errorf("import pause image: %w", err)
	}
	for _, i := range imgs {
		if err := containerd.NewImage(cl, i).Unpack(ctx, "overlayfs"); err != nil {
			return fmt.Errorf("unpack %s: %w", i.Name, err)
		}
	}
	return nil
}
