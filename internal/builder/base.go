package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/octohq/octo/internal/workerd"
)

// Paths inside the image.
const (
	// WorkerdBin is the workerd binary.
	WorkerdBin = "/bin/workerd"
	// ConfigDir holds the workerd config and the modules of every worker.
	ConfigDir = "/etc/worker"
	// ConfigPath is the workerd config.
	ConfigPath = ConfigDir + "/config.capnp"
	// libDir is where the glibc files go.
	libDir = "/lib/x86_64-linux-gnu"
	// loader is the ELF interpreter workerd names.
	loader = "ld-linux-x86-64.so.2"
	// caBundle is the CA bundle workerd loads at startup (it exits without one).
	caBundle = "/etc/ssl/certs/ca-certificates.crt"
)

// BaseRepository is the repository of the base image, under the registry.
// The base is pushed and read by digest only: no tag names it.
const BaseRepository = "octo/workerd"

// Command is how the bundle's container starts workerd: through
// octo-launch, which first clears SocketDir of a previous run's sockets.
// --experimental allows the loader host's workerLoader binding; uploads are
// validated without it, so no static Worker uses an experimental feature.
var Command = []string{LauncherBin, SocketDir, WorkerdBin, "serve", "--experimental", ConfigPath}

// glibcFiles are the shared objects workerd needs (its NEEDED entries and
// the loader).
var glibcFiles = []string{"libc.so.6", "libm.so.6", "libdl.so.2", "librt.so.1", "libpthread.so.0", loader}

// DefaultLibDirs are searched, in order, for the glibc files.
var DefaultLibDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"}

// DefaultCACerts is the host CA bundle copied into the base layer.
const DefaultCACerts = "/etc/ssl/certs/ca-certificates.crt"

// baseKey says which inputs a cached base was built from.
type baseKey struct {
	Files   string `json:"files"` // the host files and their size and mtime
	Version string `json:"version"`
	// Entrypoint is Command: a new command makes a new base.
	Entrypoint string `json:"entrypoint"`
}

// cachedBase is the content of Builder.BaseCache.
type cachedBase struct {
	Key baseKey `json:"key"`
	Ref string  `json:"ref"`
}

// loadBaseCache returns the reference BaseCache remembers for key, or "".
func (b *Builder) loadBaseCache(key baseKey) string {
	if b.BaseCache == "" {
		return ""
	}
	raw, err := os.ReadFile(b.BaseCache)
	if err != nil {
		return ""
	}
	var c cachedBase
	if json.Unmarshal(raw, &c) != nil || c.Key != key {
		return ""
	}
	return c.Ref
}

// saveBaseCache remembers ref for key in BaseCache (0600).
func (b *Builder) saveBaseCache(key baseKey, ref string) {
	if b.BaseCache == "" {
		return
	}
	raw, _ := json.Marshal(cachedBase{Key: key, Ref: ref})
	err := os.MkdirAll(filepath.Dir(b.BaseCache), 0o700)
	if err == nil {
		err = os.WriteFile(b.BaseCache, raw, 0o600)
	}
	if err != nil {
		b.log().Warn("remember the workerd base image", "err", err)
	}
}

// baseEntries lists the base layer: workerd, glibc, the loader symlink, the
// CA bundle, /tmp and /etc/worker. It also returns a stamp of the host
// files, to notice when they change.
func (b *Builder) baseEntries() ([]entry, string, error) {
	if b.WorkerdPath == "" {
		return nil, "", errors.New("base image: no workerd binary (Builder.WorkerdPath is empty)")
	}
	libDirs, ca := hostFilesOr(b.LibDirs, b.CACerts)
	launch, launchStamp, err := launcher()
	if err != nil {
		return nil, "", fmt.Errorf("base image: %w", err)
	}
	entries := []entry{
		dir("bin", 0o755),
		{name: "bin/workerd", mode: 0o755, path: b.WorkerdPath},
		{name: LauncherBin[1:], mode: 0o755, data: launch},
		dir("run", 0o755), dir(SocketDir[1:], 0o755),
		dir("etc", 0o755), dir("etc/ssl", 0o755), dir("etc/ssl/certs", 0o755),
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, path: ca},
		dir("etc/worker", 0o755),
		dir("tmp", 0o1777),
	}
	libs, err := glibcEntries(libDirs)
	if err != nil {
		return nil, "", fmt.Errorf("base image: %w (workerd needs glibc)", err)
	}
	entries = append(entries, libs...)
	stamp := launchStamp
	for _, e := range entries {
		if e.path == "" {
			continue
		}
		st, err := os.Stat(e.path)
		if err != nil {
			return nil, "", fmt.Errorf("base image: %w", err)
		}
		stamp += fmt.Sprintf("%s:%d:%d;", e.path, st.Size(), st.ModTime().UnixNano())
	}
	return entries, stamp, nil
}

// hostFilesOr returns libDirs and ca, or DefaultLibDirs and
// DefaultCACerts for those not set.
func hostFilesOr(libDirs []string, ca string) ([]string, string) {
	if len(libDirs) == 0 {
		libDirs = DefaultLibDirs
	}
	if ca == "" {
		ca = DefaultCACerts
	}
	return libDirs, ca
}

// glibcEntries are the directories, files and loader symlink of the glibc
// files (glibcFiles), found in libDirs.
func glibcEntries(libDirs []string) ([]entry, error) {
	entries := []entry{
		dir("lib", 0o755), dir("lib/x86_64-linux-gnu", 0o755),
		dir("lib64", 0o755),
		{name: "lib64/" + loader, mode: 0o777, link: libDir + "/" + loader},
	}
	for _, lib := range glibcFiles {
		found := ""
		for _, d := range libDirs {
			p := filepath.Join(d, lib)
			// Stat follows symlinks (libc.so.6 -> libc-2.31.so on older hosts).
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				found = p
				break
			}
		}
		if found == "" {
			return nil, fmt.Errorf("%s not found in %v", lib, libDirs)
		}
		entries = append(entries, entry{name: "lib/x86_64-linux-gnu/" + lib, mode: 0o755, path: found})
	}
	return entries, nil
}

// EnsureBase makes sure the base image is in the registry and returns its
// reference by digest, <registry>/octo/workerd@sha256:….
//
// The image is computed here, one layer from the host files (the extracted
// workerd, glibc, the CA bundle): deterministic, the same files give the
// same digest. When the registry lacks that digest the image is pushed, by
// digest. Then the registry's manifest at the digest must be byte for byte
// the computed one, and its config and layer blobs must be there with their
// sizes (the registry checks a blob's digest on upload). No tag is ever
// read: whoever can push could point a tag at an image of their own and so
// put code into every Worker pod. The result is cached while the host files
// stay the same: later calls only check that the digest is still there.
func (b *Builder) EnsureBase(ctx context.Context) (string, error) {
	b.baseMu.Lock()
	defer b.baseMu.Unlock()
	entries, stamp, err := b.baseEntries()
	if err != nil {
		return "", err
	}
	key := baseKey{Files: stamp, Version: workerd.Version, Entrypoint: strings.Join(Command, " ")}
	known := b.base
	if b.baseKey != key {
		known = b.loadBaseCache(key) // after a restart
	}
	if known != "" {
		// A digest names its content: if the registry has the manifest
		// at that digest (remote.Get checks the hash), it is the image
		// computed from these very files, and every layer it names is
		// checked by its digest when pulled.
		if ref, err := name.NewDigest(known, name.Insecure); err == nil {
			if got, err := remote.Get(ref, b.remoteOptions(ctx)...); err == nil {
				if m, err := v1.ParseManifest(bytes.NewReader(got.Manifest)); err == nil && b.verifyBlobs(ctx, ref, m) == nil {
					b.base, b.baseKey = known, key
					return b.base, nil
				}
			}
		}
	}
	t0 := time.Now()
	l, err := fileLayer(b.TempDir, entries, b.Compression)
	if err != nil {
		return "", fmt.Errorf("base image: %w", err)
	}
	defer l.remove()
	img, err := baseImage(l)
	if err != nil {
		return "", fmt.Errorf("base image: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("base image: %w", err)
	}
	ref, err := name.NewDigest(b.Registry+"/"+BaseRepository+"@"+digest.String(), name.Insecure)
	if err != nil {
		return "", fmt.Errorf("base image: %w", err)
	}
	_, err = remote.Head(ref, b.remoteOptions(ctx)...)
	var terr *transport.Error
	switch {
	case err == nil:
		b.log().Debug("workerd base image already in the registry", "image", ref.String())
	case errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound:
		if err := remote.Write(ref, img, b.remoteOptions(ctx)...); err != nil {
			return "", fmt.Errorf("base image: push %s: %w", ref, err)
		}
		size, _ := img.Size()
		b.log().Info("workerd base image pushed", "image", ref.String(), "size", size,
			"duration", time.Since(t0).Round(time.Millisecond))
	default:
		return "", fmt.Errorf("base image: check %s: %w", ref, err)
	}
	if err := b.verifyBase(ctx, ref, img); err != nil {
		return "", err
	}
	b.base, b.baseKey = ref.String(), key
	b.saveBaseCache(key, b.base)
	return b.base, nil
}

// verifyBase checks that the registry holds img at ref: the very manifest
// (remote.Get also checks that it hashes to the digest), and the config and
// layer blobs it names, at their sizes.
func (b *Builder) verifyBase(ctx context.Context, ref name.Digest, img v1.Image) error {
	want, err := img.RawManifest()
	if err != nil {
		return fmt.Errorf("base image: %w", err)
	}
	got, err := remote.Get(ref, b.remoteOptions(ctx)...)
	if err != nil {
		return fmt.Errorf("base image: verify %s: %w", ref, err)
	}
	if !bytes.Equal(got.Manifest, want) {
		return fmt.Errorf("base image: the registry serves another manifest at %s", ref)
	}
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("base image: %w", err)
	}
	return b.verifyBlobs(ctx, ref, m)
}

// verifyBlobs checks that the registry has the config and layer blobs m
// names, at their sizes.
func (b *Builder) verifyBlobs(ctx context.Context, ref name.Digest, m *v1.Manifest) error {
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		blob, err := remote.Layer(ref.Context().Digest(d.Digest.String()), b.remoteOptions(ctx)...)
		if err != nil {
			return fmt.Errorf("base image: verify blob %s: %w", d.Digest, err)
		}
		size, err := blob.Size()
		if err != nil {
			return fmt.Errorf("base image: verify blob %s: %w", d.Digest, err)
		}
		if size != d.Size {
			return fmt.Errorf("base image: the registry's blob %s has %d bytes, want %d", d.Digest, size, d.Size)
		}
	}
	return nil
}

// baseImage is the OCI image of the base layer l.
func baseImage(l v1.Layer) (v1.Image, error) {
	return oneLayerImage(l, "octo: workerd "+workerd.Version+" and the glibc files it needs", v1.Config{
		Entrypoint: Command,
		User:       "65534:65534",
		WorkingDir: ConfigDir,
		Labels:     map[string]string{"org.opencontainers.image.version": workerd.Version, "dev.octo.workerd": workerd.Version},
	})
}

// oneLayerImage is the linux/amd64 OCI image of layer l with config c,
// created at the epoch (deterministic). LD_LIBRARY_PATH is set: the loader
// finds glibc there whatever its compiled-in search path.
func oneLayerImage(l v1.Layer, createdBy string, c v1.Config) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.Append(img, mutate.Addendum{
		Layer:   l,
		History: v1.History{CreatedBy: createdBy, Created: v1.Time{Time: epoch}},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: epoch}
	c.Env = append(c.Env, "LD_LIBRARY_PATH="+libDir)
	cf.Config = c
	return mutate.ConfigFile(img, cf)
}
