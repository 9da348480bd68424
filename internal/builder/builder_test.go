package builder

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed/registry"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
)

// startAuthRegistry runs octo's registry on a free loopback port in a temp
// dir and returns its address and credentials.
func startAuthRegistry(t *testing.T) (string, authn.Authenticator) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := config.Default(t.TempDir())
	cfg.RegistryPort = port
	s := registry.New(cfg, nil)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defaultTransport.CloseIdleConnections()
		_ = s.Stop(context.Background())
	})
	rc, err := config.LoadRegistryCredentials(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.RegistryAddr(), &authn.Basic{Username: rc.Username, Password: rc.Password}
}

// startRegistry runs octo's registry behind a proxy that adds the
// credentials to every request, for the tests that are not about
// authentication, and returns the proxy's address. rewrite, when not nil,
// may answer a request itself (a registry that lies).
func startRegistry(t *testing.T, rewrite ...func(w http.ResponseWriter, r *http.Request) bool) string {
	t.Helper()
	addr, auth := startAuthRegistry(t)
	cred, err := auth.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	target := &url.URL{Scheme: "http", Host: addr}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // the registry's upload URLs name the proxy
		r.Out.SetBasicAuth(cred.Username, cred.Password)
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, f := range rewrite {
			if f(w, r) {
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		defaultTransport.CloseIdleConnections()
		srv.Close()
	})
	return srv.Listener.Addr().String()
}

// fakeBlobs is an in-memory S3.
type fakeBlobs struct {
	mu   sync.Mutex
	m    map[string][]byte
	gets int
}

func (f *fakeBlobs) Get(_ context.Context, key string) ([]byte, map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	b, ok := f.m[key]
	if !ok {
		return nil, nil, fmt.Errorf("%s: %w", key, store.ErrBlobNotFound)
	}
	return b, nil, nil
}

// hostFiles writes a fake workerd, glibc and CA bundle.
func hostFiles(t *testing.T) (bin, libDir, ca string) {
	t.Helper()
	dir := t.TempDir()
	bin = filepath.Join(dir, "workerd")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho fake workerd\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	libDir = filepath.Join(dir, "lib")
	if err := os.Mkdir(libDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range glibcFiles {
		if err := os.WriteFile(filepath.Join(libDir, l), []byte("fake "+l), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ca = filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return bin, libDir, ca
}

// validator is a ValidateFunc that refuses workers whose main module says
// "throw", and counts its calls.
type validator struct {
	mu    sync.Mutex
	calls map[string]int
}

func (v *validator) validate(_ context.Context, w workerd.Worker, files map[string][]byte) (time.Duration, error) {
	v.mu.Lock()
	v.calls[w.Name]++
	v.mu.Unlock()
	for _, m := range w.Modules {
		if _, ok := files[m.Path]; !ok {
			return 0, fmt.Errorf("no file for %s", m.Path)
		}
	}
	if strings.Contains(string(files[w.Modules[0].Path]), "throw") {
		return 0, &workerd.StartupError{Message: "Uncaught Error: boom at index.js:1:7"}
	}
	return 3 * time.Millisecond, nil
}

func newBuilder(t *testing.T, reg string, blobs Blobs, compression string) (*Builder, *validator) {
	bin, lib, ca := hostFiles(t)
	val := &validator{calls: map[string]int{}}
	return &Builder{Registry: reg, WorkerdPath: bin, Blobs: blobs, LibDirs: []string{lib}, CACerts: ca,
		Validate: val.validate, Compression: compression, TempDir: t.TempDir()}, val
}

const account = "0123456789abcdef0123456789abcdef"

// version returns a WorkerVersion of script with one ES module holding code,
// stored in blobs.
func version(blobs *fakeBlobs, script, id string, number int64, code string, bindings ...apiv1.WorkerBinding) *apiv1.WorkerVersion {
	prefix := fmt.Sprintf("accounts/%s/workers/%s/versions/%s/", account, script, id)
	key := prefix + "modules/index.js"
	blobs.mu.Lock()
	blobs.m[key] = []byte(code)
	blobs.m[prefix+"modules/index.js.map"] = []byte("{}")
	blobs.mu.Unlock()
	return &apiv1.WorkerVersion{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-v%d", script, number), Namespace: "octo"},
		Spec: apiv1.WorkerVersionSpec{
			AccountID: account, ScriptName: script, VersionID: id, Number: number,
			Storage:           apiv1.WorkerVersionStorage{Bucket: "octo", Prefix: prefix},
			MainModule:        "index.js",
			Modules:           []apiv1.WorkerModule{{Name: "index.js", Type: apiv1.ModuleESModule, Key: key}, {Name: "index.js.map", Type: apiv1.ModuleSourceMap, Key: prefix + "modules/index.js.map"}},
			Bindings:          bindings,
			CompatibilityDate: "2025-01-01",
		},
	}
}

// layerFiles reads a layer's tar: name -> header and content.
func layerFiles(t *testing.T, l v1.Layer) ([]*tar.Header, map[string][]byte) {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var hdrs []*tar.Header
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		hdrs = append(hdrs, h)
		files[h.Name] = b
	}
	return hdrs, files
}

func pull(t *testing.T, ref string) v1.Image {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, remote.WithTransport(defaultTransport))
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	return img
}

func TestEnsureBase(t *testing.T) {
	reg := startRegistry(t)
	for _, compression := range []string{Zstd, Gzip} {
		t.Run(compression, func(t *testing.T) {
			b, _ := newBuilder(t, reg, &fakeBlobs{m: map[string][]byte{}}, compression)
			ref, err := b.EnsureBase(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`^` + regexp.QuoteMeta(reg+"/octo/workerd@sha256:") + `[0-9a-f]{64}$`).MatchString(ref) {
				t.Fatalf("EnsureBase = %q, want <registry>/octo/workerd@sha256:…", ref)
			}
			// Pushed by digest only: no tag names it.
			// (distribution answers 404 for a repository without tags).
			tags, err := remote.List(mustRepo(t, reg+"/"+BaseRepository), remote.WithTransport(defaultTransport))
			var terr *transport.Error
			if len(tags) != 0 || (err != nil && (!errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound)) {
				t.Errorf("base repository tags %v, %v; want none", tags, err)
			}
			img := pull(t, ref)
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			wantMT := types.OCILayerZStd
			if compression == Gzip {
				wantMT = types.OCILayer
			}
			if m.MediaType != types.OCIManifestSchema1 || len(m.Layers) != 1 || m.Layers[0].MediaType != wantMT {
				t.Fatalf("manifest %s with layers %+v, want one %s layer in an OCI manifest", m.MediaType, m.Layers, wantMT)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(cf.Config.Entrypoint, " ") != "/bin/octo-launch /run/octo /bin/workerd serve --experimental /etc/worker/config.capnp" || cf.OS != "linux" || cf.Architecture != "amd64" {
				t.Errorf("config: entrypoint %q, platform %s/%s", cf.Config.Entrypoint, cf.OS, cf.Architecture)
			}
			layers, _ := img.Layers()
			hdrs, files := layerFiles(t, layers[0])
			var names []string
			for i, h := range hdrs {
				names = append(names, h.Name)
				if i > 0 && hdrs[i-1].Name >= h.Name {
					t.Errorf("entries not sorted: %s before %s", hdrs[i-1].Name, h.Name)
				}
				if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(time.Unix(0, 0)) {
					t.Errorf("%s: owner %d:%d (%q:%q), mtime %v; want 0:0 at the epoch", h.Name, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime)
				}
			}
			want := []string{"bin/", "bin/octo-launch", "bin/workerd", "etc/", "etc/ssl/", "etc/ssl/certs/", "etc/ssl/certs/ca-certificates.crt", "etc/worker/",
				"lib/", "lib/x86_64-linux-gnu/", "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/libc.so.6",
				"lib/x86_64-linux-gnu/libdl.so.2", "lib/x86_64-linux-gnu/libm.so.6", "lib/x86_64-linux-gnu/libpthread.so.0",
				"lib/x86_64-linux-gnu/librt.so.1", "lib64/", "lib64/ld-linux-x86-64.so.2", "run/", "run/octo/", "tmp/"}
			if strings.Join(names, " ") != strings.Join(want, " ") {
				t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
			}
			for _, h := range hdrs {
				switch h.Name {
				case "tmp/":
					if h.Mode != 0o1777 {
						t.Errorf("/tmp mode %o, want 1777", h.Mode)
					}
				case "lib64/ld-linux-x86-64.so.2":
					if h.Typeflag != tar.TypeSymlink || h.Linkname != "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" {
						t.Errorf("loader: type %c -> %q", h.Typeflag, h.Linkname)
					}
				case "bin/workerd":
					if h.Mode != 0o755 || !strings.Contains(string(files[h.Name]), "fake workerd") {
						t.Errorf("workerd mode %o content %q", h.Mode, files[h.Name])
					}
				}
			}

			// Cached: the same reference without rebuilding.
			again, err := b.EnsureBase(context.Background())
			if err != nil || again != ref {
				t.Errorf("second EnsureBase = %q, %v; want %q", again, err, ref)
			}
			// Deterministic: a fresh builder on the same files finds the same
			// image (and pushes nothing), and building it again locally gives
			// the same digest.
			b2 := &Builder{Registry: reg, WorkerdPath: b.WorkerdPath, LibDirs: b.LibDirs, CACerts: b.CACerts, Compression: compression, TempDir: t.TempDir()}
			if ref2, err := b2.EnsureBase(context.Background()); err != nil || ref2 != ref {
				t.Errorf("fresh builder EnsureBase = %q, %v; want %q", ref2, err, ref)
			}
			entries, _, err := b.baseEntries()
			if err != nil {
				t.Fatal(err)
			}
			var digests []string
			for range 2 {
				l, err := memoryLayer(entries, compression)
				if err != nil {
					t.Fatal(err)
				}
				img, err := baseImage(l)
				if err != nil {
					t.Fatal(err)
				}
				d, _ := img.Digest()
				digests = append(digests, d.String())
			}
			if digests[0] != digests[1] || !strings.HasSuffix(ref, digests[0]) {
				t.Errorf("rebuilt base digests %v, pushed %s", digests, ref)
			}

			// Another workerd is another base.
			if err := os.WriteFile(b.WorkerdPath, []byte("#!/bin/sh\necho other workerd\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			other, err := b.EnsureBase(context.Background())
			if err != nil || other == ref {
				t.Errorf("EnsureBase after workerd changed = %q, %v; want a new image", other, err)
			}
		})
	}
}

func TestEnsureBaseMissingLib(t *testing.T) {
	bin, lib, ca := hostFiles(t)
	os.Remove(filepath.Join(lib, "librt.so.1"))
	b := &Builder{Registry: "127.0.0.1:1", WorkerdPath: bin, LibDirs: []string{lib}, CACerts: ca}
	_, err := b.EnsureBase(context.Background())
	if err == nil || !strings.Contains(err.Error(), "librt.so.1 not found") {
		t.Errorf("EnsureBase = %v, want librt.so.1 not found", err)
	}
}

func TestBuild(t *testing.T) {
	reg := startRegistry(t)
	blobs := &fakeBlobs{m: map[string][]byte{}}
	b, val := newBuilder(t, reg, blobs, "")
	b.PodCredential = func(accountID string) string { return "cred-of-" + accountID }
	ctx := context.Background()

	const (
		idA1 = "aaaaaaaa-0000-4000-8000-000000000001"
		idA2 = "aaaaaaaa-0000-4000-8000-000000000002"
		idB  = "bbbbbbbb-0000-4000-8000-000000000001"
	)
	a1 := version(blobs, "hello", idA1, 1, `export default { fetch() { return new Response("v1") } }`,
		apiv1.WorkerBinding{Name: "GREETING", Type: apiv1.BindingPlainText, Text: "hi"},
		apiv1.WorkerBinding{Name: "API_KEY", Type: apiv1.BindingSecretText, SecretRef: &apiv1.SecretKeyRef{Name: "hello-secrets", Key: "API_KEY"}},
		apiv1.WorkerBinding{Name: "CACHE", Type: apiv1.BindingKV, NamespaceID: "0123456789abcdef0123456789abcdef"},
		apiv1.WorkerBinding{Name: "DB", Type: apiv1.BindingD1, DatabaseID: "0b7e1f1c-2f57-4f0e-9d56-4b1b0f6a2d11"})
	// Version 2 pins its own value of API_KEY: a variable of its own.
	a2 := version(blobs, "hello", idA2, 2, `export default { fetch() { return new Response("v2") } }`,
		apiv1.WorkerBinding{Name: "API_KEY", Type: apiv1.BindingSecretText, SecretRef: &apiv1.SecretKeyRef{Name: "hello-secrets", Key: "API_KEY.v2"}})
	bad := version(blobs, "broken_one", idB, 1, `throw new Error("boom")`)
	req := BuildRequest{
		AccountID: account, BundleName: "octo",
		Workers:   []BuildWorker{{Version: bad, Port: 8083}, {Version: a2, Port: 8082}, {Version: a1, Port: 8081}},
		KVAddress: "10.42.0.1:8787", TailAddress: "10.42.0.1:8787",
		// D1 has an owner of its own (cluster mode's StatefulSet).
		D1Address: "10.42.9.9:8788",
	}
	res, err := b.Build(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %v", res.Image, res.Duration)
	wantImage := reg + "/octo/accounts/" + account + "@" + res.Digest
	if res.Image != wantImage || !strings.HasPrefix(res.Digest, "sha256:") {
		t.Errorf("Image %q Digest %q, want %q", res.Image, res.Digest, wantImage)
	}
	if res.Tag != "sha256-"+strings.TrimPrefix(res.Digest, "sha256:") {
		t.Errorf("tag %q not derived from the digest %s", res.Tag, res.Digest)
	}
	if len(res.Ports) != 2 || res.Ports[idA1] != 8081 || res.Ports[idA2] != 8082 {
		t.Errorf("Ports = %v, want the requested ports of the two good versions", res.Ports)
	}
	if len(res.Failed) != 1 || res.Failed[0].ScriptName != "broken_one" || res.Failed[0].VersionID != idB ||
		res.Failed[0].Message != "Uncaught Error: boom at index.js:1:7" {
		t.Errorf("Failed = %+v, want broken_one with workerd's message", res.Failed)
	}

	img := pull(t, res.Image)
	layers, err := img.Layers()
	if err != nil || len(layers) != 2 {
		t.Fatalf("layers %d, %v; want base + code", len(layers), err)
	}
	base := pull(t, b.base)
	baseLayers, _ := base.Layers()
	bd, _ := baseLayers[0].Digest()
	if d, _ := layers[0].Digest(); d != bd {
		t.Errorf("first layer %s, want the base layer %s", d, bd)
	}
	_, files := layerFiles(t, layers[1])
	capnp := string(files["etc/worker/config.capnp"])
	t.Logf("config.capnp:\n%s", capnp)
	for _, want := range []string{
		`address = "*:8080", http = (), service = "octo-health"`,
		`(name = "hello-aaaaaaaa", address = "*:8081"`, `address = "*:8082"`,
		`embed "hello-aaaaaaaa/000-index.js"`,
		`fromEnvironment = "` + SecretEnv("hello", "API_KEY") + `"`,
		`fromEnvironment = "` + SecretEnv("hello", "API_KEY.v2") + `"`,
		// The pod API services carry the account's credential.
		`external = (address = "10.42.0.1:8787", http = (injectRequestHeaders = [(name = "x-octo-auth", value = "cred-of-` + account + `"), (name = "x-octo-kv", value = "` + account + `/0123456789abcdef0123456789abcdef")]`,
		`external = (address = "10.42.9.9:8788", http = (injectRequestHeaders = [(name = "x-octo-auth", value = "cred-of-` + account + `"), (name = "x-octo-d1", value = "` + account + `/0b7e1f1c-2f57-4f0e-9d56-4b1b0f6a2d11")]`,
		`(name = "octo-tail-collector", external = (address = "10.42.0.1:8787", http = (injectRequestHeaders = [(name = "x-octo-account", value = "` + account + `"), (name = "x-octo-auth", value = "cred-of-` + account + `")]))),`,
		// Only the traced twin has the tail consumer, on port + 20000, with
		// the plain worker's name in its events.
		`(name = "hello-aaaaaaaa-traced", address = "*:28081"`,
		`tails = [(name = "octo-tail", props = (json = "{\"script\":\"hello-aaaaaaaa\"}"))]`,
	} {
		if !strings.Contains(capnp, want) {
			t.Errorf("config.capnp lacks %s", want)
		}
	}
	if n := strings.Count(capnp, "tails = "); n != 2 {
		t.Errorf("config.capnp has %d tail consumers, want 2 (the traced twins of the 2 workers)", n)
	}
	if strings.Contains(capnp, "8083") || strings.Contains(capnp, "broken") {
		t.Errorf("config.capnp still has the failed worker")
	}
	if _, ok := files["etc/worker/octo-health/health.js"]; !ok {
		t.Errorf("no health worker in the code layer")
	}
	for name := range files {
		if strings.HasSuffix(name, ".map") {
			t.Errorf("source map %s in the image", name)
		}
	}
	var haveModule bool
	for name, data := range files {
		if strings.HasPrefix(name, "etc/worker/hello-aaaaaaaa/") && strings.Contains(string(data), `"v1"`) {
			haveModule = true
		}
	}
	if !haveModule {
		t.Errorf("module of hello v1 not in the code layer: %v", keys(files))
	}

	// Same inputs, same digest; validation results are cached by version.
	res2, err := b.Build(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Digest != res.Digest {
		t.Errorf("rebuild digest %s, want %s", res2.Digest, res.Digest)
	}
	for name, n := range val.calls {
		if n != 1 {
			t.Errorf("%s validated %d times, want once", name, n)
		}
	}
	// A fresh builder (no cache) with the request in another order also
	// gives the same digest.
	b2, _ := newBuilder(t, reg, blobs, "")
	b2.WorkerdPath, b2.LibDirs, b2.CACerts, b2.PodCredential = b.WorkerdPath, b.LibDirs, b.CACerts, b.PodCredential
	req.Workers = []BuildWorker{req.Workers[2], req.Workers[0], req.Workers[1]}
	res3, err := b2.Build(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res3.Digest != res.Digest {
		t.Errorf("fresh builder digest %s, want %s", res3.Digest, res.Digest)
	}

	// Ports come from the request and stay: adding a worker changes the
	// image but not the others' sockets.
	idC := "cccccccc-0000-4000-8000-000000000001"
	c := version(blobs, "other", idC, 1, `export default { fetch() { return new Response("c") } }`)
	req.Workers = append(req.Workers, BuildWorker{Version: c, Port: 8084})
	res4, err := b.Build(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res4.Digest == res.Digest || res4.Ports[idA1] != 8081 || res4.Ports[idA2] != 8082 || res4.Ports[idC] != 8084 {
		t.Errorf("after adding a worker: digest %s (was %s), ports %v", res4.Digest, res.Digest, res4.Ports)
	}
}

func TestBuildErrors(t *testing.T) {
	reg := startRegistry(t)
	blobs := &fakeBlobs{m: map[string][]byte{}}
	b, _ := newBuilder(t, reg, blobs, "")
	ctx := context.Background()
	good := version(blobs, "good", "11111111-0000-4000-8000-000000000001", 1, `export default {}`)
	gone := version(blobs, "gone", "22222222-0000-4000-8000-000000000001", 1, `export default {}`)
	delete(blobs.m, gone.Spec.Modules[0].Key)
	unsupported := version(blobs, "caller", "33333333-0000-4000-8000-000000000001", 1, `export default {}`,
		apiv1.WorkerBinding{Name: "OTHER", Type: apiv1.BindingService, Service: "elsewhere"},
		apiv1.WorkerBinding{Name: "RPC", Type: apiv1.BindingService, Service: "elsewhere", Entrypoint: "Greeter"})

	// A missing module fails that worker only. A service binding to a
	// script without an active version (deleted) reaches a stub that
	// answers 503, and its worker keeps running.
	res, err := b.Build(ctx, BuildRequest{AccountID: account, BundleName: "x", Workers: []BuildWorker{
		{Version: good, Port: 8081}, {Version: gone, Port: 8082}, {Version: unsupported, Port: 8083},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Ports) != 2 || res.Ports[unsupported.Spec.VersionID] != 8083 || len(res.Failed) != 1 || !strings.Contains(res.Failed[0].Message, "missing from storage") {
		t.Errorf("ports %v failed %+v", res.Ports, res.Failed)
	}
	img := pull(t, res.Image)
	layers, err := img.Layers()
	if err != nil || len(layers) != 2 {
		t.Fatalf("layers %d, %v", len(layers), err)
	}
	_, files := layerFiles(t, layers[1])
	stub := missingTargetName("elsewhere")
	if src := string(files["etc/worker/octo-stub/"+stub+".js"]); !strings.Contains(src, `Worker \"elsewhere\" is not deployed`) ||
		!strings.Contains(src, "export class Greeter extends WorkerEntrypoint {}") {
		t.Errorf("the stub of elsewhere is %q", src)
	}
	if capnp := string(files["etc/worker/config.capnp"]); !strings.Contains(capnp, `service = (name = "`+stub+`"`) {
		t.Errorf("config.capnp binds no service to the stub %s:\n%s", stub, capnp)
	}

	// Every worker failing still gives an image with the health worker.
	res, err = b.Build(ctx, BuildRequest{AccountID: account, BundleName: "x", Workers: []BuildWorker{{Version: gone, Port: 8081}}})
	if err != nil || len(res.Ports) != 0 || len(res.Failed) != 1 || res.Image == "" {
		t.Errorf("all failing: %+v, %v", res, err)
	}

	// Bad requests.
	for _, ws := range [][]BuildWorker{
		{{Version: good, Port: 8080}},
		{{Version: good, Port: 8081}, {Version: unsupported, Port: 8081}},
		{{Version: good, Port: 8081}, {Version: good, Port: 8082}},
	} {
		if _, err := b.Build(ctx, BuildRequest{AccountID: account, Workers: ws}); err == nil {
			t.Errorf("Build(%v) succeeded", ws)
		}
	}

	// A validator that cannot run workerd fails the build, and that outcome
	// is not cached.
	fresh := version(blobs, "fresh", "44444444-0000-4000-8000-000000000001", 1, `export default {}`)
	saved := b.Validate
	b.Validate = func(context.Context, workerd.Worker, map[string][]byte) (time.Duration, error) {
		return 0, errors.New("workerd cannot run on this host: GLIBC_2.27 not found")
	}
	freshReq := BuildRequest{AccountID: account, BundleName: "x", Workers: []BuildWorker{{Version: fresh, Port: 8081}}}
	if _, err := b.Build(ctx, freshReq); err == nil || !strings.Contains(err.Error(), "cannot run on this host") {
		t.Errorf("Build with a broken workerd = %v, want the host error", err)
	}
	b.Validate = saved
	if res, err := b.Build(ctx, freshReq); err != nil || len(res.Ports) != 1 {
		t.Errorf("Build after the host recovered = %+v, %v", res, err)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestSecretEnv(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,255}$`)
	seen := map[string]string{}
	for _, c := range [][2]string{{"hello", "API_KEY"}, {"hello", "api-key"}, {"hello_world", "KEY"}, {"hello-world", "KEY"},
		{"hello", "API_KEY.v2"}, {"hello", "API_KEY_v2"}, {"hello", "API_KEY.v3"},
		{"a", strings.Repeat("x", 256)}, {strings.Repeat("s", 63), "é$weird name"}} {
		e := SecretEnv(c[0], c[1])
		if !re.MatchString(e) {
			t.Errorf("SecretEnv(%q, %q) = %q: not a valid variable name", c[0], c[1], e)
		}
		if e != SecretEnv(c[0], c[1]) {
			t.Errorf("SecretEnv not deterministic")
		}
		if prev, dup := seen[e]; dup {
			t.Errorf("SecretEnv(%q, %q) = %q, same as for %s", c[0], c[1], e, prev)
		}
		seen[e] = c[0] + "/" + c[1]
	}
}

// TestValidatedAtUploadIsNotStartedAgain: a version the API started at
// upload with the same workerd is not started again by the build; one
// validated by another workerd, or never, is.
func TestValidatedAtUploadIsNotStartedAgain(t *testing.T) {
	reg := startRegistry(t)
	blobs := &fakeBlobs{m: map[string][]byte{}}
	b, val := newBuilder(t, reg, blobs, "")
	const (
		idA = "aaaaaaaa-0000-4000-8000-000000000001"
		idB = "bbbbbbbb-0000-4000-8000-000000000001"
		idC = "cccccccc-0000-4000-8000-000000000001"
	)
	same := version(blobs, "same", idA, 1, `export default { fetch() { return new Response("a") } }`)
	same.Annotations = map[string]string{apiv1.AnnotationValidatedBy: workerd.Version}
	older := version(blobs, "older", idB, 1, `export default { fetch() { return new Response("b") } }`)
	older.Annotations = map[string]string{apiv1.AnnotationValidatedBy: "1.20200101.0"}
	never := version(blobs, "never", idC, 1, `export default { fetch() { return new Response("c") } }`)
	res, err := b.Build(context.Background(), BuildRequest{AccountID: account, BundleName: "octo",
		Workers: []BuildWorker{{Version: same, Port: 8081}, {Version: older, Port: 8082}, {Version: never, Port: 8083}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Ports) != 3 {
		t.Errorf("ports %v, want all three workers", res.Ports)
	}
	val.mu.Lock()
	defer val.mu.Unlock()
	calls := 0
	for name, n := range val.calls {
		calls += n
		if strings.HasPrefix(name, "same") {
			t.Errorf("the version validated by workerd %s was started again", workerd.Version)
		}
	}
	if calls != 2 {
		t.Errorf("validations %v, want the other two versions once each", val.calls)
	}
}

// TestBuildWithLoader: with the loader host (docs/adr/0007), the image runs
// it on LoaderPort with the pod API as its code service and the trace
// collector's bindings; a version the loader can run has no static traced
// twin (the host loads it on demand), one with a KV binding keeps its twin.
func TestBuildWithLoader(t *testing.T) {
	reg := startRegistry(t)
	blobs := &fakeBlobs{m: map[string][]byte{}}
	b, _ := newBuilder(t, reg, blobs, "")
	b.PodCredential = func(accountID string) string { return "cred-of-" + accountID }
	const idPlain, idKV = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000001"
	plain := version(blobs, "plain", idPlain, 1, `export default { fetch() { return new Response("p") } }`,
		apiv1.WorkerBinding{Name: "GREETING", Type: apiv1.BindingPlainText, Text: "hi"})
	withKV := version(blobs, "withkv", idKV, 1, `export default { fetch() { return new Response("k") } }`,
		apiv1.WorkerBinding{Name: "CACHE", Type: apiv1.BindingKV, NamespaceID: "0123456789abcdef0123456789abcdef"})
	res, err := b.Build(context.Background(), BuildRequest{
		AccountID: account, BundleName: "octo", Loader: true,
		Workers:   []BuildWorker{{Version: plain, Port: 8081}, {Version: withKV, Port: 8082}},
		KVAddress: "10.42.0.1:8787", TailAddress: "10.42.0.1:8787",
	})
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := pull(t, res.Image).Layers()
	_, files := layerFiles(t, layers[1])
	capnp := string(files["etc/worker/config.capnp"])
	for _, want := range []string{
		`(name = "octo-loader", address = "*:8079", http = (), service = "octo-loader")`,
		`(name = "octo-loader-unix", address = "unix:/run/octo/8079.sock"`,
		`(name = "LOADER", workerLoader = (id = "octo"))`,
		`(name = "CODE", service = "octo-loader-code")`,
		`(name = "COLLECTOR", service = "octo-tail-collector")`,
		`(name = "octo-loader-code", external = (address = "10.42.0.1:8787", http = (injectRequestHeaders = [(name = "x-octo-account", value = "` + account + `"), (name = "x-octo-auth", value = "cred-of-` + account + `")]))),`,
		`(name = "withkv-bbbbbbbb-traced", address = "*:28082"`,
	} {
		if !strings.Contains(capnp, want) {
			t.Errorf("config.capnp lacks %s", want)
		}
	}
	if strings.Contains(capnp, "plain-aaaaaaaa-traced") {
		t.Errorf("the loadable version has a static traced twin:\n%s", capnp)
	}
	if src := string(files["etc/worker/octo-loader/loader.js"]); !strings.Contains(src, "env.LOADER.get(") {
		t.Errorf("no loader host module in the code layer: %v", keys(files))
	}
}

// TestBuildDurableObjects: the host version declares the classes on the
// disk service; the script's other version and the host's traced twin bind
// them there; when the host fails, the versions that bind its classes are
// left out with it, and the build still succeeds.
func TestBuildDurableObjects(t *testing.T) {
	reg := startRegistry(t)
	blobs := &fakeBlobs{m: map[string][]byte{}}
	b, _ := newBuilder(t, reg, blobs, "")
	ctx := context.Background()
	const ns = "0123456789abcdef0123456789abcdef"
	objects := &apiv1.VersionDurableObjects{MigrationTag: "v1", Classes: []apiv1.DurableObjectClass{{ClassName: "Counter", NamespaceID: ns, SQLite: true}}}
	counter := apiv1.WorkerBinding{Name: "COUNTER", Type: apiv1.BindingDurableObject, ClassName: "Counter", NamespaceID: ns}
	src := `import { DurableObject } from "cloudflare:workers"; export class Counter extends DurableObject {} export default { fetch() { return new Response("x") } }`
	host := version(blobs, "counter", "dddddddd-0000-4000-8000-000000000002", 2, src, counter)
	old := version(blobs, "counter", "cccccccc-0000-4000-8000-000000000001", 1, src, counter)
	host.Spec.DurableObjects, old.Spec.DurableObjects = objects, objects
	res, err := b.Build(ctx, BuildRequest{AccountID: account, BundleName: "octo-1", TailAddress: "10.42.0.1:8787",
		Workers: []BuildWorker{{Version: host, Port: 8081, DurableObjects: true}, {Version: old, Port: 8082}}})
	if err != nil || len(res.Failed) != 0 {
		t.Fatalf("build: %v, failed %+v", err, res.Failed)
	}
	layers, _ := pull(t, res.Image).Layers()
	_, files := layerFiles(t, layers[len(layers)-1])
	capnp := string(files["etc/worker/config.capnp"])
	for _, want := range []string{
		`(name = "octo-durable-objects", disk = (path = "` + DurableObjectsDir + `", writable = true))`,
		`durableObjectNamespaces = [` + "\n" + `        (className = "Counter", uniqueKey = "` + ns + `", enableSql = true),`,
		`durableObjectStorage = (localDisk = "octo-durable-objects")`,
		`(name = "COUNTER", durableObjectNamespace = (className = "Counter")),`,
		`(name = "COUNTER", durableObjectNamespace = (className = "Counter", serviceName = "counter-dddddddd")),`,
	} {
		if !strings.Contains(capnp, want) {
			t.Errorf("config.capnp lacks %s:\n%s", want, capnp)
		}
	}
	if n := strings.Count(capnp, "durableObjectNamespaces"); n != 1 {
		t.Errorf("%d workers declare the classes, want the host alone:\n%s", n, capnp)
	}

	broken := version(blobs, "counter", "eeeeeeee-0000-4000-8000-000000000003", 3, `export default { fetch( { }`, counter)
	broken.Spec.DurableObjects = objects
	b.Validate = func(_ context.Context, w workerd.Worker, _ map[string][]byte) (time.Duration, error) {
		if strings.Contains(w.Name, "eeeeeeee") {
			return 0, &workerd.StartupError{Message: "Uncaught SyntaxError"}
		}
		return time.Millisecond, nil
	}
	res, err = b.Build(ctx, BuildRequest{AccountID: account, BundleName: "octo-1",
		Workers: []BuildWorker{{Version: broken, Port: 8081, DurableObjects: true}, {Version: old, Port: 8082}}})
	if err != nil || len(res.Failed) != 2 || len(res.Ports) != 0 || !strings.Contains(res.Failed[1].Message+res.Failed[0].Message, "hosts the script's Durable Object classes did not start") {
		t.Errorf("a failed host: %v, failed %+v, ports %v", err, res.Failed, res.Ports)
	}
}
