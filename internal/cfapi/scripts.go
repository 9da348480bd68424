package cfapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
)

// registerScripts mounts the Workers scripts, versions, deployments and
// secrets API on the account group.
func (s *Server) registerScripts(a *echo.Group) {
	w := a.Group("/workers")
	w.GET("/scripts", s.listScripts)
	w.GET("/services/:script", s.getService)
	w.DELETE("/services/:script", s.deleteScript)
	w.GET("/tails/by-consumer/:script", func(c echo.Context) error { return ok(c, []any{}) })
	// No Durable Object namespaces exist yet; newer wrangler lists them
	// before `wrangler delete`.
	w.GET("/durable_objects/namespaces", func(c echo.Context) error {
		return okPaged(c, []any{}, PageInfo{Page: 1, PerPage: 1000})
	})

	sc := w.Group("/scripts/:script", s.validScript)
	sc.PUT("", s.putScript)
	sc.DELETE("", s.deleteScript)
	sc.GET("/settings", s.getSettings)
	sc.PATCH("/settings", s.patchSettings)
	sc.GET("/script-settings", s.scriptSettings)
	sc.PATCH("/script-settings", s.scriptSettings)
	sc.GET("/subdomain", s.scriptSubdomain)
	sc.POST("/subdomain", s.scriptSubdomain)
	sc.GET("/references", s.references)
	sc.POST("/versions", s.postVersion)
	sc.GET("/versions", s.listVersionsHandler)
	sc.GET("/versions/:version", s.getVersion)
	sc.GET("/content/v2", s.getContent)
	sc.GET("/deployments", s.listDeployments)
	sc.POST("/deployments", s.postDeployment)
	sc.GET("/secrets", s.listSecrets)
	sc.PUT("/secrets", s.putSecret)
	sc.GET("/secrets/:secret", s.getSecretHandler)
	sc.DELETE("/secrets/:secret", s.deleteSecret)
	sc.PATCH("/secrets-bulk", s.patchSecretsBulk)
	sc.GET("/schedules", s.getSchedules)
	sc.PUT("/schedules", s.putSchedules)
}

// validScript refuses invalid script names before anything else.
func (s *Server) validScript(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := store.ValidScriptName(c.Param("script")); err != nil {
			return err
		}
		return next(c)
	}
}

func (s *Server) putScript(c echo.Context) error {
	a, script := account(c), c.Param("script")
	u, err := ParseUpload(c.Request())
	if err != nil {
		return err
	}
	v, _, err := s.store.CreateVersion(c.Request().Context(), a, script, store.VersionInput{Parts: u.Parts, Metadata: u.Metadata, TriggeredBy: store.TriggerUpload, Deploy: true})
	if err != nil {
		return err
	}
	res := map[string]any{
		"id": script, "etag": etag(v), "handlers": v.Spec.Handlers, "deployment_id": v.Spec.VersionID,
		"compatibility_date": v.Spec.CompatibilityDate, "compatibility_flags": flags(v),
		"created_on": ts(v.Spec.CreatedAt.Time), "modified_on": ts(v.Spec.CreatedAt.Time),
		"usage_model": "standard", "has_modules": v.Spec.MainModule != "", "startup_time_ms": v.Spec.StartupTimeMs,
	}
	return okNotes(c, res, u.Notes)
}

func (s *Server) postVersion(c echo.Context) error {
	a, script := account(c), c.Param("script")
	u, err := ParseUpload(c.Request())
	if err != nil {
		return err
	}
	v, _, err := s.store.CreateVersion(c.Request().Context(), a, script, store.VersionInput{Parts: u.Parts, Metadata: u.Metadata, TriggeredBy: store.TriggerUpload})
	if err != nil {
		return err
	}
	return okNotes(c, versionJSON(v), u.Notes)
}

// okNotes is ok with messages in the envelope (e.g. a clamped date).
func okNotes(c echo.Context, result any, notes []string) error {
	msgs := []Message{}
	for _, n := range notes {
		msgs = append(msgs, Message{Code: 10000 + len(msgs), Message: n})
	}
	return c.JSON(http.StatusOK, Envelope{Success: true, Errors: []Message{}, Messages: msgs, Result: result})
}

func (s *Server) listScripts(c echo.Context) error {
	ctx, a := c.Request().Context(), account(c)
	releases, err := s.store.Releases(ctx, a)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for i := range releases {
		rel := &releases[i]
		versions, err := s.store.Versions(ctx, a, rel.Spec.ScriptName)
		if err != nil {
			return err
		}
		out = append(out, scriptJSON(rel.Spec.ScriptName, rel, last(versions)))
	}
	return ok(c, out)
}

func last(vs []apiv1.WorkerVersion) *apiv1.WorkerVersion {
	if len(vs) == 0 {
		return nil
	}
	return &vs[len(vs)-1]
}

func (s *Server) getService(c echo.Context) error {
	ctx, a, script := c.Request().Context(), account(c), c.Param("script")
	if err := store.ValidScriptName(script); err != nil {
		return err
	}
	rel, err := s.store.Release(ctx, a, script)
	if err != nil {
		return err
	}
	versions, err := s.store.Versions(ctx, a, script)
	if err != nil {
		return err
	}
	sj := scriptJSON(script, rel, last(versions))
	return ok(c, map[string]any{
		"id": script, "created_on": sj["created_on"], "modified_on": sj["modified_on"],
		"default_environment": map[string]any{"environment": "production", "created_on": sj["created_on"], "modified_on": sj["modified_on"], "script": sj},
	})
}

// deleteScript removes the script: its versions, deployments, secrets and
// stored files.
func (s *Server) deleteScript(c echo.Context) error {
	if err := s.store.DeleteScript(c.Request().Context(), account(c), c.Param("script")); err != nil {
		return err
	}
	return ok(c, nil)
}

func (s *Server) getSettings(c echo.Context) error {
	v, err := s.store.LatestVersion(c.Request().Context(), account(c), c.Param("script"))
	if err != nil {
		return err
	}
	return ok(c, map[string]any{
		"bindings": wireBindingList(v), "compatibility_date": v.Spec.CompatibilityDate, "compatibility_flags": flags(v),
		"logpush": false, "placement": map[string]any{}, "tail_consumers": nil, "usage_model": "standard",
		"observability": map[string]any{"enabled": false},
	})
}

// patchSettings is `wrangler secret bulk`: a multipart body with one part
// "settings" listing every binding; those with text set a secret.
func (s *Server) patchSettings(c echo.Context) error {
	raw, err := settingsPart(c.Request())
	if err != nil {
		return err
	}
	var body struct {
		Bindings []store.Binding `json:"bindings"`
	}
	if err := decodeStrict(raw, &body); err != nil {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "settings is not valid JSON: %v", err)
	}
	v, err := s.store.UpdateSettings(c.Request().Context(), account(c), c.Param("script"), body.Bindings)
	if err != nil {
		return err
	}
	return ok(c, map[string]any{"bindings": wireBindingList(v), "compatibility_date": v.Spec.CompatibilityDate, "compatibility_flags": flags(v)})
}

// settingsPart reads the "settings" part of a multipart PATCH (or a plain
// JSON body).
func settingsPart(r *http.Request) ([]byte, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/json" {
		return io.ReadAll(io.LimitReader(r.Body, 1<<20))
	}
	mr, _, err := multipartReader(r, maxRequestSize)
	if err != nil {
		return nil, err
	}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, Errorf(http.StatusBadRequest, store.CodeBadRequest, "the body has no \"settings\" part")
		}
		if err != nil {
			return nil, Errorf(http.StatusBadRequest, store.CodeBadRequest, "malformed multipart body: %v", err)
		}
		if p.FormName() == "settings" {
			return readPart(p)
		}
	}
}

func readPart(p *multipart.Part) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(p, 1<<20))
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, store.CodeBadRequest, "malformed multipart body: %v", err)
	}
	return b, nil
}

// scriptSettings is GET and PATCH …/script-settings: the observability
// setting is kept (Workers Logs), the other fields are echoed.
func (s *Server) scriptSettings(c echo.Context) error {
	ctx, a, script := c.Request().Context(), account(c), c.Param("script")
	rel, err := s.store.Release(ctx, a, script)
	if err != nil {
		return err
	}
	out := map[string]any{"logpush": false, "observability": observabilityJSON(rel.Spec.Observability), "tags": []string{}, "tail_consumers": nil}
	if c.Request().Method != http.MethodPatch {
		return ok(c, out)
	}
	var body map[string]json.RawMessage
	if err := json.NewDecoder(io.LimitReader(c.Request().Body, 1<<20)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "the body is not a JSON object: %v", err)
	}
	for k, v := range body {
		out[k] = v
	}
	if raw, ok := body["observability"]; ok {
		var settings store.ObservabilitySettings
		if err := json.Unmarshal(raw, &settings); err != nil {
			return Errorf(http.StatusBadRequest, store.CodeBadRequest, "observability: %v", err)
		}
		obs, err := settings.Observability()
		if err != nil {
			return err
		}
		if err := s.store.SetObservability(ctx, a, script, obs); err != nil {
			return err
		}
		out["observability"] = observabilityJSON(obs)
	}
	return ok(c, out)
}

// observabilityJSON is a script's observability as the API shows it.
func observabilityJSON(o *apiv1.Observability) map[string]any {
	if o == nil || !o.Enabled {
		return map[string]any{"enabled": false}
	}
	return map[string]any{"enabled": true, "head_sampling_rate": o.SamplingRate()}
}

// withBody returns defaults overlaid with the fields of the request's JSON
// body (settings octo accepts and echoes without acting on them).
func withBody(c echo.Context, defaults map[string]any) map[string]any {
	var body map[string]any
	_ = json.NewDecoder(io.LimitReader(c.Request().Body, 1<<20)).Decode(&body)
	for k, v := range body {
		defaults[k] = v
	}
	return defaults
}

func (s *Server) scriptSubdomain(c echo.Context) error {
	if _, err := s.store.Release(c.Request().Context(), account(c), c.Param("script")); err != nil {
		return err
	}
	res := map[string]any{"enabled": true, "previews_enabled": true}
	if c.Request().Method == http.MethodPost {
		res = withBody(c, res)
	}
	return ok(c, res)
}

// references answers which scripts' active versions bind this one and which
// scripts its own active version binds, as `wrangler delete` asks before it
// deletes (it warns that the dependent Workers will break).
func (s *Server) references(c echo.Context) error {
	ctx, a, script := c.Request().Context(), account(c), c.Param("script")
	if _, err := s.store.Release(ctx, a, script); err != nil {
		return err
	}
	refs, err := s.store.ServiceReferences(ctx, a, script)
	if err != nil {
		return err
	}
	entries := func(scripts []string) []map[string]any {
		out := []map[string]any{}
		for _, sc := range scripts {
			out = append(out, map[string]any{"service": sc})
		}
		return out
	}
	return ok(c, map[string]any{
		"services":        map[string]any{"incoming": entries(refs.Incoming), "outgoing": entries(refs.Outgoing)},
		"durable_objects": []any{}, "dispatch_outbounds": []any{},
	})
}

func (s *Server) listVersionsHandler(c echo.Context) error {
	ctx, a, script := c.Request().Context(), account(c), c.Param("script")
	if _, err := s.store.Release(ctx, a, script); err != nil {
		return err
	}
	versions, err := s.store.Versions(ctx, a, script)
	if err != nil {
		return err
	}
	items := []map[string]any{}
	for i := len(versions) - 1; i >= 0; i-- {
		items = append(items, versionJSON(&versions[i]))
	}
	return ok(c, map[string]any{"items": items})
}

func (s *Server) getVersion(c echo.Context) error {
	ctx, a, script := c.Request().Context(), account(c), c.Param("script")
	if _, err := s.store.Release(ctx, a, script); err != nil {
		return err
	}
	v, err := s.store.Version(ctx, a, script, c.Param("version"))
	if err != nil {
		return err
	}
	return ok(c, versionJSON(v))
}

func (s *Server) listDeployments(c echo.Context) error {
	rel, err := s.store.Release(c.Request().Context(), account(c), c.Param("script"))
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, d := range rel.Spec.Deployments {
		out = append(out, deploymentJSON(d))
	}
	return ok(c, map[string]any{"deployments": out})
}

// deploymentRequest is the body of POST …/deployments.
type deploymentRequest struct {
	Strategy string `json:"strategy"`
	Versions []struct {
		VersionID  string `json:"version_id"`
		Percentage *int   `json:"percentage"`
	} `json:"versions"`
	Annotations map[string]string `json:"annotations"`
}

func (s *Server) postDeployment(c echo.Context) error {
	var req deploymentRequest
	if err := json.NewDecoder(io.LimitReader(c.Request().Body, 1<<20)).Decode(&req); err != nil {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "invalid JSON body: %v", err)
	}
	d := store.Deployment{Strategy: req.Strategy}
	for _, v := range req.Versions {
		d.Versions = append(d.Versions, store.Traffic{VersionID: v.VersionID, Percentage: v.Percentage})
	}
	if m, found := req.Annotations[apiv1.AnnotationMessage]; found {
		d.Message = &m
	}
	dep, err := s.store.Deploy(c.Request().Context(), account(c), c.Param("script"), d)
	if err != nil {
		return err
	}
	return ok(c, deploymentJSON(*dep))
}

func (s *Server) listSecrets(c echo.Context) error {
	v, err := s.store.LatestVersion(c.Request().Context(), account(c), c.Param("script"))
	if err != nil {
		return err
	}
	out := []map[string]string{}
	for _, b := range v.Spec.Bindings {
		if b.Type == apiv1.BindingSecretText || b.Type == apiv1.BindingSecretKey {
			out = append(out, map[string]string{"name": b.Name, "type": b.Type})
		}
	}
	return ok(c, out)
}

func (s *Server) getSecretHandler(c echo.Context) error {
	v, err := s.store.LatestVersion(c.Request().Context(), account(c), c.Param("script"))
	if err != nil {
		return err
	}
	name, _ := url.PathUnescape(c.Param("secret"))
	for _, b := range v.Spec.Bindings {
		if b.Name == name && (b.Type == apiv1.BindingSecretText || b.Type == apiv1.BindingSecretKey) {
			return ok(c, map[string]string{"name": b.Name, "type": b.Type})
		}
	}
	return Errorf(http.StatusNotFound, store.CodeSecretNotFound, "secret %q not found", name)
}

// putSecret is `wrangler secret put`: a new version with the secret, deployed.
func (s *Server) putSecret(c echo.Context) error {
	var body struct {
		Name string  `json:"name"`
		Text *string `json:"text"`
		Type string  `json:"type"`
	}
	if err := json.NewDecoder(io.LimitReader(c.Request().Body, 1<<20)).Decode(&body); err != nil {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "invalid JSON body: %v", err)
	}
	if err := store.ValidSecretName(body.Name); err != nil {
		return err
	}
	if body.Type != apiv1.BindingSecretText || body.Text == nil {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "a secret needs \"type\":\"secret_text\" and a \"text\" value (secret_key is not supported by octo yet)")
	}
	if err := s.store.PutSecret(c.Request().Context(), account(c), c.Param("script"), body.Name, *body.Text); err != nil {
		return err
	}
	return ok(c, map[string]string{"name": body.Name, "type": body.Type})
}

// deleteSecret is `wrangler secret delete`: a new version without it.
func (s *Server) deleteSecret(c echo.Context) error {
	name, _ := url.PathUnescape(c.Param("secret"))
	if err := s.store.DeleteSecret(c.Request().Context(), account(c), c.Param("script"), name); err != nil {
		return err
	}
	return ok(c, nil)
}
