package warmstart

import (
	"net/http"
	"strings"

	"github.com/octohq/octo/internal/workerd"
)

// CodeHandler answers the hosts' code requests, GET
// workerd.LoaderCodePath<script>/<version ID> with the version's account in
// workerd.AccountHeader, from the snapshot: 404 for a version it does not
// hold under that account and script. It serves on a unix socket only the
// hosts reach.
func CodeHandler(s Snapshot, entries []Entry) http.Handler {
	type key struct{ account, script, version string }
	known := make(map[key]bool, len(entries))
	for _, e := range entries {
		known[key{e.Account, e.Script, e.Version}] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		script, version, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, workerd.LoaderCodePath), "/")
		if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, workerd.LoaderCodePath) || !ok ||
			!known[key{r.Header.Get(workerd.AccountHeader), script, version}] {
			http.Error(w, "octo warm start: no such version in the snapshot", http.StatusNotFound)
			return
		}
		b, err := s.Code(version)
		if err != nil {
			http.Error(w, "octo warm start: cannot read the version's code", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
}
