package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/assets"
	"github.com/octohq/octo/internal/store"
)

// Files up to maxCachedFile bytes are kept in memory once read, up to
// fileCacheBytes in all (the oldest go first): a file never changes under
// its hash, and reading it from S3 costs more than serving it.
const (
	maxCachedFile  = 1 << 20
	fileCacheBytes = 64 << 20
)

// fileCache holds small asset files by account and hash.
type fileCache struct {
	mu    sync.Mutex
	m     map[string]cachedFile
	order []string
	bytes int
}

type cachedFile struct {
	data        []byte
	contentType string
}

// openAsset returns the file of hash, from memory when it was read before.
func (g *Gateway) openAsset(ctx context.Context, accountID, hash string) (assets.File, error) {
	key := accountID + "/" + hash
	c := &g.files
	c.mu.Lock()
	f, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return assets.File{Body: io.NopCloser(bytes.NewReader(f.data)), ContentType: f.contentType, Size: int64(len(f.data))}, nil
	}
	body, ct, size, err := g.assets.Open(ctx, accountID, hash)
	if err != nil || size > maxCachedFile {
		return assets.File{Body: body, ContentType: ct, Size: size}, err
	}
	data, err := io.ReadAll(io.LimitReader(body, maxCachedFile+1))
	body.Close()
	if err != nil {
		return assets.File{}, err
	}
	if int64(len(data)) != size {
		return assets.File{}, fmt.Errorf("asset %s: read %d bytes, want %d", hash, len(data), size)
	}
	c.mu.Lock()
	if _, ok := c.m[key]; !ok {
		for c.bytes+len(data) > fileCacheBytes && len(c.order) > 0 {
			old := c.order[0]
			c.order = c.order[1:]
			c.bytes -= len(c.m[old].data)
			delete(c.m, old)
		}
		c.m[key] = cachedFile{data: data, contentType: ct}
		c.order = append(c.order, key)
		c.bytes += len(data)
	}
	c.mu.Unlock()
	return assets.File{Body: io.NopCloser(bytes.NewReader(data)), ContentType: ct, Size: size}, nil
}

// manifestCache holds manifests by digest (they never change).
type manifestCache struct {
	mu sync.Mutex
	m  map[string]store.AssetManifest
}

// serveAssets answers r from the static assets of the version info
// describes, with Cloudflare's rules (package assets), and reports true;
// it reports false, having written nothing, when the Worker answers
// instead: run_worker_first, a method other than GET or HEAD, or no asset
// for the path.
func (g *Gateway) serveAssets(w http.ResponseWriter, r *http.Request, a store.Account, info loadability) bool {
	va, cfg := info.assets, info.assetsConfig
	p := r.URL.Path
	if info.code && cfg.WorkerFirst(p) {
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if info.code {
			return false
		}
		w.Header().Set("Allow", "GET, HEAD")
		text(w, http.StatusMethodNotAllowed, "method not allowed: this Worker serves static assets only")
		return true
	}
	if g.assets == nil {
		if info.code {
			return false
		}
		text(w, http.StatusServiceUnavailable, "octo: this gateway cannot read the static assets store")
		return true
	}
	ctx := r.Context()
	m, err := g.assets.Manifest(ctx, a.ID, va.Manifest)
	if err != nil {
		g.fail(w, err)
		return true
	}
	site := assets.Site{
		Hash: func(p string) (string, bool) { e, ok := m[p]; return e.Hash, ok },
		Open: func(hash string) (assets.File, error) { return g.openAsset(ctx, a.ID, hash) },
	}
	handled, err := assets.Answer(w, r, cfg, site, info.code)
	if err != nil {
		g.log.Warn("gateway: serve asset", "account", a.ID, "path", p, "err", err)
		if !handled {
			g.fail(w, err)
		}
	}
	return handled || err != nil
}

// assetsConfig is how a version's assets are served. Its _redirects and
// _headers were checked at upload; a rule that no longer parses is logged
// and left out.
func assetsConfig(a *apiv1.VersionAssets, log *slog.Logger) assets.Config {
	c := assets.Config{HTMLHandling: a.HTMLHandling, NotFoundHandling: a.NotFoundHandling,
		RunWorkerFirst: a.RunWorkerFirst, RunWorkerFirstPaths: a.RunWorkerFirstPaths}
	var err error
	if c.Redirects, err = assets.ParseRedirects(a.Redirects); err != nil {
		log.Warn("gateway: _redirects", "manifest", a.Manifest, "err", err)
	}
	if c.Headers, err = assets.ParseHeaders(a.Headers); err != nil {
		log.Warn("gateway: _headers", "manifest", a.Manifest, "err", err)
	}
	return c
}
