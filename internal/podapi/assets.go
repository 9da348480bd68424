package podapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/octohq/octo/internal/assets"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
)

// AssetsBinding serves env.ASSETS.fetch(request) of a Worker with static
// assets: the request's path is answered from the manifest named by
// workerd.AssetsHeader, with the rules of workerd.AssetsConfigHeader and,
// where no file matches, its not_found_handling (the Worker asked, so no
// Worker comes after).
func AssetsBinding(src store.AssetReader, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		account, digest, _ := strings.Cut(strings.TrimSpace(r.Header.Get(workerd.AssetsHeader)), "/")
		var cfg assets.Config
		if c := r.Header.Get(workerd.AssetsConfigHeader); c != "" {
			if err := json.Unmarshal([]byte(c), &cfg); err != nil {
				http.Error(w, "octo pod API: bad "+workerd.AssetsConfigHeader, http.StatusBadRequest)
				return
			}
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: static assets answer GET and HEAD", http.StatusMethodNotAllowed)
			return
		}
		m, err := src.Manifest(r.Context(), account, digest)
		if err != nil {
			var se *store.Error
			if errors.As(err, &se) && se.Kind == store.NotFound {
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			}
			log.Warn("assets binding: manifest", "account", account, "manifest", digest, "err", err)
			http.Error(w, "octo pod API: cannot read the assets manifest", http.StatusBadGateway)
			return
		}
		site := assets.Site{
			Hash: func(p string) (string, bool) { e, ok := m[p]; return e.Hash, ok },
			Open: func(hash string) (assets.File, error) {
				body, ct, size, err := src.Open(r.Context(), account, hash)
				return assets.File{Body: body, ContentType: ct, Size: size}, err
			},
		}
		if handled, err := assets.Answer(w, r, cfg, site, false); err != nil {
			log.Warn("assets binding: serve", "account", account, "path", r.URL.Path, "err", err)
			if !handled {
				http.Error(w, "octo pod API: cannot read the asset", http.StatusBadGateway)
			}
		}
	})
}
