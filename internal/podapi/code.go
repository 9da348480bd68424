package podapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
)

// serveCode answers GET /code/<script>/<version ID> of an authenticated
// account's loader host with the version's workerd.LoaderCode as JSON: 404
// when the account has no such version, 409 when the loader cannot run it.
func (s *Server) serveCode(w http.ResponseWriter, r *http.Request, account string) {
	if s.code == nil {
		http.Error(w, "octo pod API: code is not available", http.StatusServiceUnavailable)
		return
	}
	script, id, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, workerd.LoaderCodePath), "/")
	if !ok || script == "" || id == "" || strings.Contains(id, "/") {
		http.Error(w, "octo pod API: want GET "+workerd.LoaderCodePath+"<script>/<version ID>", http.StatusNotFound)
		return
	}
	code, err := s.code(r.Context(), account, script, id)
	var se *store.Error
	switch {
	case errors.As(err, &se) && se.Kind == store.NotFound:
		http.Error(w, "octo pod API: "+se.Msg, http.StatusNotFound)
		return
	case errors.Is(err, store.ErrNotLoadable):
		http.Error(w, "octo pod API: "+err.Error(), http.StatusConflict)
		return
	case err != nil:
		s.log.Warn("loader code", "account", account, "script", script, "version", id, "err", err)
		http.Error(w, "octo pod API: cannot read the version's code (see octo's log)", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(code); err != nil {
		s.log.Debug("loader code: write", "err", err)
	}
}
