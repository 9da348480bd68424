package builder

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/octohq/octo/internal/workerd"
)

func mustRepo(t *testing.T, s string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// localBase computes b's base image without a registry.
func localBase(t *testing.T, b *Builder) v1.Image {
	t.Helper()
	entries, _, err := b.baseEntries()
	if err != nil {
		t.Fatal(err)
	}
	l, err := memoryLayer(entries, b.Compression)
	if err != nil {
		t.Fatal(err)
	}
	img, err := baseImage(l)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func digestOf(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestBaseDigestStable: the same host files give the same base digest, in
// any registry, from any builder.
func TestBaseDigestStable(t *testing.T) {
	b1, _ := newBuilder(t, "", nil, "")
	want := digestOf(t, localBase(t, b1))
	if again := digestOf(t, localBase(t, b1)); again != want {
		t.Fatalf("base digest %s, then %s", want, again)
	}
	for range 2 {
		reg, auth := startAuthRegistry(t)
		b := &Builder{Registry: reg, Auth: auth, WorkerdPath: b1.WorkerdPath, LibDirs: b1.LibDirs, CACerts: b1.CACerts, TempDir: t.TempDir()}
		ref, err := b.EnsureBase(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ref != reg+"/"+BaseRepository+"@"+want.String() {
			t.Errorf("EnsureBase = %s, want %s/%s@%s", ref, reg, BaseRepository, want)
		}
	}
}

// TestEnsureBaseIgnoresTags: an image pushed under the base tag of older
// octos (or any tag) is never used; the bundle image is built on the
// computed base.
func TestEnsureBaseIgnoresTags(t *testing.T) {
	reg, auth := startAuthRegistry(t)
	blobs := &fakeBlobs{m: map[string][]byte{}}
	b, _ := newBuilder(t, reg, blobs, "")
	b.Auth = auth
	want := digestOf(t, localBase(t, b))

	// Someone who could push put their image at the old tag
	// <workerd.Version>-<hash of the layer's diff ID> and at latest.
	entries, _, err := b.baseEntries()
	if err != nil {
		t.Fatal(err)
	}
	id, err := diffID(entries)
	if err != nil {
		t.Fatal(err)
	}
	evil, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	evilDigest := digestOf(t, evil)
	for _, tag := range []string{workerd.Version + "-" + shortHash(id.String()+" "+Zstd, 12), "latest", workerd.Version} {
		if err := remote.Write(mustRepo(t, reg+"/"+BaseRepository).Tag(tag), evil, remote.WithTransport(defaultTransport), remote.WithAuth(auth)); err != nil {
			t.Fatal(err)
		}
	}

	ref, err := b.EnsureBase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(ref, "@"+want.String()) || strings.Contains(ref, evilDigest.String()) {
		t.Fatalf("EnsureBase = %s, want the computed digest %s", ref, want)
	}
	res, err := b.Build(context.Background(), BuildRequest{AccountID: account, BundleName: "x",
		Workers: []BuildWorker{{Version: version(blobs, "hello", "aaaaaaaa-0000-4000-8000-000000000001", 1, `export default {}`), Port: 8081}}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(res.Image, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, remote.WithTransport(defaultTransport), remote.WithAuth(auth))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 2 {
		t.Fatalf("bundle image layers %d, %v; want base + code", len(layers), err)
	}
	wantLayers, _ := localBase(t, b).Layers()
	got, _ := layers[0].Digest()
	if wl, _ := wantLayers[0].Digest(); got != wl {
		t.Errorf("bundle image's first layer %s, want the computed base layer %s", got, wl)
	}
}

// TestEnsureBaseVerifies: a registry that claims to have the base digest
// but serves something else there is refused.
func TestEnsureBaseVerifies(t *testing.T) {
	evil, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := evil.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	lie := func(w http.ResponseWriter, r *http.Request) bool {
		d, ok := strings.CutPrefix(r.URL.Path, "/v2/"+BaseRepository+"/manifests/")
		if !ok || !strings.HasPrefix(d, "sha256:") {
			return false
		}
		w.Header().Set("Content-Type", string(types.OCIManifestSchema1))
		w.Header().Set("Docker-Content-Digest", d)
		w.Write(raw)
		return true
	}
	reg := startRegistry(t, lie)
	b, _ := newBuilder(t, reg, nil, "")
	ref, err := b.EnsureBase(context.Background())
	if err == nil || !strings.Contains(err.Error(), "base image: verify") {
		t.Fatalf("EnsureBase against a lying registry = %q, %v; want a verification error", ref, err)
	}
	t.Logf("error: %v", err)
	if b.base != "" {
		t.Errorf("the refused base %s was cached", b.base)
	}
}

// TestBuilderAuth: without the registry's credentials the builder cannot
// push; with them it pushes the base and the bundle image.
func TestBuilderAuth(t *testing.T) {
	reg, auth := startAuthRegistry(t)
	blobs := &fakeBlobs{m: map[string][]byte{}}
	b, _ := newBuilder(t, reg, blobs, "")
	_, err := b.EnsureBase(context.Background())
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous EnsureBase: %v, want 401", err)
	}
	b.Auth = auth
	req := BuildRequest{AccountID: account, BundleName: "x",
		Workers: []BuildWorker{{Version: version(blobs, "hello", "aaaaaaaa-0000-4000-8000-000000000001", 1, `export default {}`), Port: 8081}}}
	res, err := b.Build(context.Background(), req)
	if err != nil {
		t.Fatalf("authenticated build: %v", err)
	}
	r, err := name.ParseReference(res.Image, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Image(r, remote.WithTransport(defaultTransport))
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous pull of the bundle image: %v, want 401", err)
	}
	if _, err := remote.Image(r, remote.WithTransport(defaultTransport), remote.WithAuth(auth)); err != nil {
		t.Errorf("authenticated pull of the bundle image: %v", err)
	}
}

// TestEnsureBaseCache: after a restart (a new Builder) the digest remembered
// in BaseCache is used without compressing workerd again, as long as the
// registry has it; a cache that names a digest the registry lacks, or that
// was made from other host files, is not trusted.
func TestEnsureBaseCache(t *testing.T) {
	b1, _ := newBuilder(t, "", nil, "")
	reg, auth := startAuthRegistry(t)
	cache := filepath.Join(t.TempDir(), "builder", "base.json")
	mk := func(tempDir string) *Builder {
		return &Builder{Registry: reg, Auth: auth, WorkerdPath: b1.WorkerdPath, LibDirs: b1.LibDirs, CACerts: b1.CACerts, TempDir: tempDir, BaseCache: cache}
	}
	first, err := mk(t.TempDir()).EnsureBase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v %v, want mode 0600", fi, err)
	}
	// A TempDir that cannot be written proves nothing is compressed.
	noTemp := filepath.Join(t.TempDir(), "missing", "dir")
	if again, err := mk(noTemp).EnsureBase(context.Background()); err != nil || again != first {
		t.Fatalf("after a restart EnsureBase = %q, %v; want the cached %s without building", again, err, first)
	}
	// A digest the registry does not have: computed again.
	raw, _ := os.ReadFile(cache)
	bogus := strings.Replace(string(raw), first[strings.LastIndex(first, ":")+1:], strings.Repeat("0", 64), 1)
	if err := os.WriteFile(cache, []byte(bogus), 0o600); err != nil {
		t.Fatal(err)
	}
	if again, err := mk(t.TempDir()).EnsureBase(context.Background()); err != nil || again != first {
		t.Fatalf("with a cache naming a missing digest EnsureBase = %q, %v; want %s", again, err, first)
	}
}
