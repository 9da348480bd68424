package cfapi

import (
	"cmp"
	"encoding/json"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/octohq/octo/internal/store"
)

// registerWorkers mounts the newer Workers resource
// (/accounts/:a/workers/workers/:name) that wrangler 4.x after 4.86 reads
// after every upload, and its versions/latest secret edits.
func (s *Server) registerWorkers(a *echo.Group) {
	w := a.Group("/workers/workers/:script", s.validScript)
	w.GET("", s.getWorker)
	w.PATCH("", s.patchWorker)
	w.PATCH("/versions/latest", s.patchLatestVersion)
}

// getWorker is GET …/workers/workers/:name: the Worker with its workers.dev
// settings. wrangler reads subdomain.enabled, subdomain.previews_enabled,
// subdomain.url and subdomain.preview_url_suffix (the URLs it prints).
func (s *Server) getWorker(c echo.Context) error {
	w, err := s.workerJSON(c)
	if err != nil {
		return err
	}
	return ok(c, w)
}

// patchWorker is PATCH …/workers/workers/:name (merge-patch). octo serves
// every Worker on its workers.dev host, so the settings are answered merged,
// as Cloudflare does, without changing how the Worker is served (like POST
// …/scripts/:name/subdomain).
func (s *Server) patchWorker(c echo.Context) error {
	w, err := s.workerJSON(c)
	if err != nil {
		return err
	}
	var patch map[string]any
	if err := json.NewDecoder(io.LimitReader(c.Request().Body, 1<<20)).Decode(&patch); err != nil {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "the body is not a JSON merge patch: %v", err)
	}
	return ok(c, mergePatch(w, patch))
}

// workerJSON describes the request's script as the Workers resource.
func (s *Server) workerJSON(c echo.Context) (map[string]any, error) {
	ctx, a, script := c.Request().Context(), account(c), c.Param("script")
	rel, err := s.store.Release(ctx, a, script)
	if err != nil {
		return nil, err
	}
	versions, err := s.store.Versions(ctx, a, script)
	if err != nil {
		return nil, err
	}
	sj := scriptJSON(script, rel, last(versions))
	created := sj["created_on"]
	if len(versions) > 0 { // the first version is when the Worker was made
		created = ts(versions[0].Spec.CreatedAt.Time)
	}
	host := script + "." + a.Subdomain + ".workers.dev"
	return map[string]any{
		"id": cmp.Or(string(rel.UID), script), "name": script,
		"created_on": created, "updated_on": sj["modified_on"], "deployed_on": sj["modified_on"],
		"logpush": false, "tags": []string{}, "tail_consumers": []any{},
		"observability": observabilityJSON(rel.Spec.Observability),
		"subdomain": map[string]any{
			"enabled": true, "previews_enabled": true,
			"url": "https://" + host, "preview_url_suffix": "-" + host,
		},
		"references":           map[string]any{"dispatch_namespace_outbounds": []any{}, "domains": []any{}, "durable_objects": []any{}, "queues": []any{}, "workers": []any{}},
		"previews_base_config": map[string]any{},
	}, nil
}

// mergePatch applies an RFC 7396 JSON merge patch to doc.
func mergePatch(doc, patch map[string]any) map[string]any {
	for k, v := range patch {
		if v == nil {
			delete(doc, k)
			continue
		}
		if pm, ok := v.(map[string]any); ok {
			if dm, ok := doc[k].(map[string]any); ok {
				doc[k] = mergePatch(dm, pm)
				continue
			}
			doc[k] = mergePatch(map[string]any{}, pm)
			continue
		}
		doc[k] = v
	}
	return doc
}

// envEntry is one named entry of PATCH …/versions/latest's env and
// …/secrets-bulk's secrets: a secret_text with its text sets a secret; a
// null entry (a nil *envEntry) removes it.
type envEntry struct {
	Type string  `json:"type"`
	Text *string `json:"text"`
}

// secretChanges checks an env or secrets merge patch and returns the
// secret changes: a value sets, nil removes.
func secretChanges(entries map[string]*envEntry) (map[string]*string, error) {
	out := make(map[string]*string, len(entries))
	for name, e := range entries {
		if e == nil {
			out[name] = nil
			continue
		}
		if e.Type != "secret_text" || e.Text == nil {
			return nil, Errorf(http.StatusBadRequest, store.CodeBadRequest, "binding %q: octo changes only secrets here (\"type\":\"secret_text\" with a \"text\", or null to remove)", name)
		}
		out[name] = e.Text
	}
	return out, nil
}

// patchLatestVersion is `wrangler versions secret put/delete/bulk` (wrangler
// 4.113 and later): a new version from the latest one with the secret changes
// and annotations, not deployed. It answers the new version.
func (s *Server) patchLatestVersion(c echo.Context) error {
	var body struct {
		Env         map[string]*envEntry `json:"env"`
		Annotations map[string]*string   `json:"annotations"`
	}
	if err := json.NewDecoder(io.LimitReader(c.Request().Body, 1<<20)).Decode(&body); err != nil {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "the body is not a JSON merge patch: %v", err)
	}
	secrets, err := secretChanges(body.Env)
	if err != nil {
		return err
	}
	annotations := map[string]string{}
	for k, v := range body.Annotations {
		if v != nil {
			annotations[k] = *v
		}
	}
	v, err := s.store.PatchLatestVersion(c.Request().Context(), account(c), c.Param("script"), secrets, annotations)
	if err != nil {
		return err
	}
	return ok(c, versionJSON(v))
}

// patchSecretsBulk is `wrangler secret bulk` (wrangler 4.93 and later):
// PATCH …/scripts/:name/secrets-bulk with {"secrets":{NAME:{…}|null}}; the
// change is a new version deployed at 100 %. It answers the secrets set.
func (s *Server) patchSecretsBulk(c echo.Context) error {
	var body struct {
		Secrets map[string]*envEntry `json:"secrets"`
	}
	if err := json.NewDecoder(io.LimitReader(c.Request().Body, 1<<20)).Decode(&body); err != nil {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "the body is not a JSON merge patch: %v", err)
	}
	secrets, err := secretChanges(body.Secrets)
	if err != nil {
		return err
	}
	if _, err := s.store.BulkSecrets(c.Request().Context(), account(c), c.Param("script"), secrets); err != nil {
		return err
	}
	out := []map[string]string{}
	for name, v := range secrets {
		if v != nil {
			out = append(out, map[string]string{"name": name, "type": "secret_text"})
		}
	}
	return ok(c, out)
}
