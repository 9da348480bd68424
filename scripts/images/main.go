// Command images builds the image of octo's control plane (builder.ControlPlane:
// bin/octo, the glibc files it links and the CA bundle, in one deterministic
// layer) without Docker, writes it as an image tarball and, with -push,
// pushes it to any registry with the credentials of ~/.docker/config.json
// (or $DOCKER_CONFIG). `make images` runs it; the same bin/octo gives the
// same digest.
//
//	go run ./scripts/images -octo bin/octo -out dist/octo.tar [-push registry.example.com/octo:v1]
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/octohq/octo/internal/builder"
	"github.com/octohq/octo/internal/version"
)

func main() {
	octo := flag.String("octo", "bin/octo", "the octo binary to put in the image (make build)")
	out := flag.String("out", "dist/octo.tar", "image tarball to write (docker load / crane push read it); empty: none")
	tag := flag.String("tag", "octo:"+version.Octo, "the tarball's image name")
	push := flag.String("push", "", "push the image to this reference too, e.g. registry.example.com/octo:v1")
	insecure := flag.Bool("insecure", false, "the -push registry speaks plain HTTP")
	gzip := flag.Bool("gzip", false, "gzip the layer instead of zstd (runtimes older than containerd 1.5)")
	flag.Parse()
	if err := run(*octo, *out, *tag, *push, *insecure, *gzip); err != nil {
		slog.Error("images", "err", err)
		os.Exit(1)
	}
}

func run(octo, out, tag, push string, insecure, gzip bool) error {
	t0 := time.Now()
	cp := builder.ControlPlane{Octo: octo, TempDir: os.TempDir()}
	if gzip {
		cp.Compression = builder.Gzip
	}
	img, cleanup, err := cp.Image()
	if err != nil {
		return err
	}
	defer cleanup()
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	size, _ := img.Size()
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	if out != "" {
		ref, err := name.NewTag(tag)
		if err != nil {
			return fmt.Errorf("-tag: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		if err := tarball.WriteToFile(out, ref, img); err != nil {
			return fmt.Errorf("write %s: %w", out, err)
		}
		fmt.Printf("wrote %s (%s)\n", out, tag)
	}
	if push != "" {
		ref, err := name.ParseReference(push, opts...)
		if err != nil {
			return fmt.Errorf("-push: %w", err)
		}
		if err := remote.Write(ref, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
		fmt.Printf("pushed %s@%s\n", ref.Context(), digest)
	}
	fmt.Printf("image %s, manifest %d bytes, built in %s\n", digest, size, time.Since(t0).Round(time.Millisecond))
	return nil
}
