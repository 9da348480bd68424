package builder

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestControlPlaneImage: octo, glibc and the CA bundle in one layer, octo
// as the entrypoint, as nobody; the same files give the same digest, other
// ones another.
func TestControlPlaneImage(t *testing.T) {
	bin, lib, ca := hostFiles(t) // the fake binary stands in for octo
	cp := ControlPlane{Octo: bin, TempDir: t.TempDir(), LibDirs: []string{lib}, CACerts: ca}
	digest := func(cp ControlPlane) string {
		t.Helper()
		img, cleanup, err := cp.Image()
		if err != nil {
			t.Fatal(err)
		}
		defer cleanup()
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	img, cleanup, err := cp.Image()
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{ControlPlaneBin}) || cf.Config.User != "65534:65534" || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("config = %+v", cf.Config)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	hdrs, files := layerFiles(t, layers[0])
	if string(files["bin/octo"]) != "#!/bin/sh\necho fake workerd\n" || files["lib/x86_64-linux-gnu/libc.so.6"] == nil || files["etc/ssl/certs/ca-certificates.crt"] == nil {
		t.Errorf("files: %v", len(files))
	}
	for _, h := range hdrs {
		if h.Name == "bin/octo" && h.Mode != 0o755 {
			t.Errorf("bin/octo mode %o", h.Mode)
		}
	}

	first := digest(cp)
	if again := digest(ControlPlane{Octo: bin, TempDir: t.TempDir(), LibDirs: []string{lib}, CACerts: ca}); again != first {
		t.Errorf("the same files gave %s, then %s", first, again)
	}
	other := filepath.Join(t.TempDir(), "octo")
	if err := os.WriteFile(other, []byte("another octo"), 0o755); err != nil {
		t.Fatal(err)
	}
	if d := digest(ControlPlane{Octo: other, TempDir: t.TempDir(), LibDirs: []string{lib}, CACerts: ca}); d == first {
		t.Error("another binary gave the same digest")
	}
	if _, _, err := (ControlPlane{Octo: bin, TempDir: t.TempDir(), LibDirs: []string{t.TempDir()}, CACerts: ca}).Image(); err == nil {
		t.Error("no glibc: no error")
	}
}
