package fakecf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/internal/operators/api/v1"
)

// registerScripts mounts the Workers scripts, versions, deployments and
// secrets API on the account group.
func (s *Server) registerScripts(a *echo.Group) {
	w := a.Group("/workers")
	w.GET("/scripts", s.listScripts)
	w.GET("/services/:script", s.getService)
	w.DELETE("/services/:script", s.deleteScript)
	w.GET("/tails/by-consumer/:script", func(c echo.Context) error { return ok(c, []any{}) })

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
	sc.GET("/deployments", s.listDeployments)
	sc.POST("/deployments", s.postDeployment)
	sc.GET("/secrets", s.listSecrets)
	sc.PUT("/secrets", s.putSecret)
	sc.GET("/secrets/:secret", s.getSecretHandler)
	sc.DELETE("/secrets/:secret", s.deleteSecret)
}

// validScript refuses invalid script names before anything else.
func (s *Server) validScript(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := ValidScriptName(c.Param("script")); err != nil {
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
	v, _, err := s.createVersion(c.Request().Context(), a, script, versionInput{parts: u.Parts, meta: u.Metadata, triggeredBy: TriggerUpload, deploy: true})
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
	v, _, err := s.createVersion(c.Request().Context(), a, script, versionInput{parts: u.Parts, meta: u.Metadata, triggeredBy: TriggerUpload})
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
	var list apiv1.WorkerReleaseList
	if err := s.k8s.List(ctx, &list, client.InNamespace(a.Namespace), client.MatchingLabels{LabelAccount: a.ID}); err != nil {
		return fmt.Errorf("list releases: %w", err)
	}
	out := []map[string]any{}
	for i := range list.Items {
		rel := &list.Items[i]
		versions, err := s.listVersions(ctx, a, rel.Spec.ScriptName)
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
	if err := ValidScriptName(script); err != nil {
		return err
	}
	rel, err := s.mustRelease(ctx, a, script)
	if err != nil {
		return err
	}
	versions, err := s.listVersions(ctx, a, script)
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
	ctx, a, script := c.Request().Context(), account(c), c.Param("script")
	if err := ValidScriptName(script); err != nil {
		return err
	}
	unlock := s.locks.lock(a, script)
	defer unlock()
	rel, err := s.mustRelease(ctx, a, script)
	if err != nil {
		return err
	}
	versions, err := s.listVersions(ctx, a, script)
	if err != nil {
		return err
	}
	for i := range versions {
		if err := client.IgnoreNotFound(s.k8s.Delete(ctx, &versions[i])); err != nil {
			return fmt.Errorf("delete version: %w", err)
		}
	}
	if sec, exists, err := s.getSecret(ctx, a, script); err != nil {
		return err
	} else if exists {
		if err := client.IgnoreNotFound(s.k8s.Delete(ctx, sec)); err != nil {
			return fmt.Errorf("delete secrets: %w", err)
		}
	}
	// The files go before the release: the release's finalizer (operators)
	// removes them too, and two removals of one prefix must not race.
	if err := s.blobs.DeletePrefix(ctx, scriptPrefix(a, script)); err != nil {
		return err
	}
	if err := client.IgnoreNotFound(s.k8s.Delete(ctx, rel)); err != nil {
		return fmt.Errorf("delete release: %w", err)
	}
	return ok(c, nil)
}

func (s *Server) latestVersion(ctx context.Context, a Account, script string) (*apiv1.WorkerVersion, error) {
	if _, err := s.mustRelease(ctx, a, script); err != nil {
		return nil, err
	}
	versions, err := s.listVersions(ctx, a, script)
	if err != nil {
		return nil, err
	}
	if len(versions) == 0 {
		return nil, workerNotFound(script)
	}
	return last(versions), nil
}

func (s *Server) getSettings(c echo.Context) error {
	v, err := s.latestVersion(c.Request().Context(), account(c), c.Param("script"))
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
	ctx, a, script := c.Request().Context(), account(c), c.Param("script")
	raw, err := settingsPart(c.Request())
	if err != nil {
		return err
	}
	var body struct {
		Bindings []Binding `json:"bindings"`
	}
	if err := decodeStrict(raw, &body); err != nil {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "settings is not valid JSON: %v", err)
	}
	unlock := s.locks.lock(a, script)
	defer unlock()
	prev, err := s.latestVersion(ctx, a, script)
	if err != nil {
		return err
	}
	var bindings []Binding
	names := map[string]bool{}
	for _, b := range body.Bindings {
		if !bindingRE.MatchString(b.Name) {
			return Errorf(http.StatusBadRequest, CodeBadRequest, "invalid binding name %q", b.Name)
		}
		if names[b.Name] {
			return Errorf(http.StatusBadRequest, CodeBadRequest, "binding %q is listed twice", b.Name)
		}
		names[b.Name] = true
		if b.Type == apiv1.BindingSecretText && b.Text != nil {
			if err := validSecretName(b.Name); err != nil {
				return err
			}
			bindings = append(bindings, b)
			continue
		}
		bindings = append(bindings, Binding{Name: b.Name, Type: bindingInherit})
	}
	if err := s.requireLatestDeployed(ctx, a, script, prev, CodeSettingsEditNotDeployed,
		"Script edit failed. You attempted to deploy the latest version with modified settings, but the latest version isn't currently deployed."); err != nil {
		return err
	}
	v, err := s.deriveVersion(ctx, a, script, prev, bindings, nil)
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
	mr, _, err := multipartReader(r)
	if err != nil {
		return nil, err
	}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, Errorf(http.StatusBadRequest, CodeBadRequest, "the body has no \"settings\" part")
		}
		if err != nil {
			return nil, Errorf(http.StatusBadRequest, CodeBadRequest, "malformed multipart body: %v", err)
		}
		if p.FormName() == "settings" {
			return readPart(p)
		}
	}
}

func readPart(p *multipart.Part) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(p, 1<<20))
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, CodeBadRequest, "malformed multipart body: %v", err)
	}
	return b, nil
}

const secretEditNotDeployed = "Secret edit failed. You attempted to modify a secret, but the latest version of your Worker isn't currently deployed. " +
	"Please ensure that the latest version of your Worker is fully deployed (wrangler versions deploy) before modifying secrets."

// requireLatestDeployed refuses a secret change unless the newest deployment
// sends all traffic to the latest version, as Cloudflare does: the change is
// made to the latest version and deployed at 100%, which after a `versions
// upload`, a split or a rollback would silently deploy other code.
func (s *Server) requireLatestDeployed(ctx context.Context, a Account, script string, latest *apiv1.WorkerVersion, code int, msg string) error {
	rel, err := s.mustRelease(ctx, a, script)
	if err != nil {
		return err
	}
	if len(rel.Spec.Deployments) > 0 {
		for _, t := range rel.Spec.Deployments[0].Versions {
			if t.VersionID == latest.Spec.VersionID && t.Percentage == 100 {
				return nil
			}
		}
	}
	return Errorf(http.StatusBadRequest, code, "%s", msg)
}

// deriveVersion makes and deploys a new version from prev with other
// bindings (a secret change). The caller holds the script's lock from before
// it read prev, so that no upload lands in between and is reverted.
func (s *Server) deriveVersion(ctx context.Context, a Account, script string, prev *apiv1.WorkerVersion, bindings []Binding, secretWrites map[string]*string) (*apiv1.WorkerVersion, error) {
	parts, err := s.loadParts(ctx, prev)
	if err != nil {
		return nil, err
	}
	meta := Metadata{
		MainModule: prev.Spec.MainModule, BodyPart: prev.Spec.BodyPart, Bindings: bindings,
		CompatibilityDate: prev.Spec.CompatibilityDate, CompatibilityFlags: prev.Spec.CompatibilityFlags,
	}
	v, _, err := s.createVersionLocked(ctx, a, script, versionInput{parts: parts, meta: meta, triggeredBy: TriggerSecret, deploy: true, secretWrites: secretWrites})
	return v, err
}

func (s *Server) scriptSettings(c echo.Context) error {
	if _, err := s.mustRelease(c.Request().Context(), account(c), c.Param("script")); err != nil {
		return err
	}
	return ok(c, withBody(c, map[string]any{"logpush": false, "observability": map[string]any{"enabled": false}, "tags": []string{}, "tail_consumers": nil}))
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
	if _, err := s.mustRelease(c.Request().Context(), account(c), c.Param("script")); err != nil {
		return err
	}
	res := map[string]any{"enabled": true, "previews_enabled": true}
	if c.Request().Method == http.MethodPost {
		res = withBody(c, res)
	}
	return ok(c, res)
}

func (s *Server) references(c echo.Context) error {
	if _, err := s.mustRelease(c.Request().Context(), account(c), c.Param("script")); err != nil {
		return err
	}
	return ok(c, map[string]any{
		"services":        map[string]any{"incoming": []any{}, "outgoing": []any{}},
		"durable_objects": []any{}, "dispatch_outbounds": []any{},
	})
}

func (s *Server) listVersionsHandler(c echo.Context) error {
	ctx, a, script := c.Request().Context(), account(c), c.Param("script")
	if _, err := s.mustRelease(ctx, a, script); err != nil {
		return err
	}
	versions, err := s.listVersions(ctx, a, script)
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
	if _, err := s.mustRelease(ctx, a, script); err != nil {
		return err
	}
	v, err := s.findVersion(ctx, a, script, c.Param("version"))
	if err != nil {
		return err
	}
	return ok(c, versionJSON(v))
}

func (s *Server) listDeployments(c echo.Context) error {
	rel, err := s.mustRelease(c.Request().Context(), account(c), c.Param("script"))
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
	ctx, a, script := c.Request().Context(), account(c), c.Param("script")
	var req deploymentRequest
	if err := json.NewDecoder(io.LimitReader(c.Request().Body, 1<<20)).Decode(&req); err != nil {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "invalid JSON body: %v", err)
	}
	if req.Strategy != "" && req.Strategy != string(apiv1.DeploymentStrategyPercentage) {
		return Errorf(http.StatusBadRequest, CodeBadDeployment, "unsupported deployment strategy %q: use \"percentage\"", req.Strategy)
	}
	if n := len(req.Versions); n < 1 || n > apiv1.MaxVersionsPerDeployment {
		return Errorf(http.StatusBadRequest, CodeBadDeployment, "a deployment needs 1 or 2 versions, got %d", n)
	}
	if _, err := s.mustRelease(ctx, a, script); err != nil {
		return err
	}
	var traffic []apiv1.VersionTraffic
	sum, seen := 0, map[string]bool{}
	for _, v := range req.Versions {
		if v.Percentage == nil || *v.Percentage < 0 || *v.Percentage > 100 {
			return Errorf(http.StatusBadRequest, CodeBadDeployment, "version %s needs a percentage between 0 and 100", v.VersionID)
		}
		wv, err := s.findVersion(ctx, a, script, v.VersionID)
		if err != nil {
			return err
		}
		if seen[wv.Spec.VersionID] {
			return Errorf(http.StatusBadRequest, CodeBadDeployment, "version %s is listed twice", wv.Spec.VersionID)
		}
		seen[wv.Spec.VersionID] = true
		sum += *v.Percentage
		traffic = append(traffic, apiv1.VersionTraffic{VersionID: wv.Spec.VersionID, Percentage: int32(*v.Percentage)})
	}
	if sum != 100 {
		return Errorf(http.StatusBadRequest, CodeBadDeployment, "the percentages of a deployment must add up to 100, not %d", sum)
	}
	annotations := map[string]string{}
	if m, okm := req.Annotations[apiv1.AnnotationMessage]; okm {
		annotations[apiv1.AnnotationMessage] = m
	}
	unlock := s.locks.lock(a, script)
	defer unlock()
	d, err := s.deploy(ctx, a, script, traffic, annotations, "")
	if err != nil {
		return err
	}
	return ok(c, deploymentJSON(*d))
}

func (s *Server) listSecrets(c echo.Context) error {
	v, err := s.latestVersion(c.Request().Context(), account(c), c.Param("script"))
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
	v, err := s.latestVersion(c.Request().Context(), account(c), c.Param("script"))
	if err != nil {
		return err
	}
	name, _ := url.PathUnescape(c.Param("secret"))
	for _, b := range v.Spec.Bindings {
		if b.Name == name && (b.Type == apiv1.BindingSecretText || b.Type == apiv1.BindingSecretKey) {
			return ok(c, map[string]string{"name": b.Name, "type": b.Type})
		}
	}
	return Errorf(http.StatusNotFound, CodeSecretNotFound, "secret %q not found", name)
}

// putSecret is `wrangler secret put`: a new version with the secret, deployed.
func (s *Server) putSecret(c echo.Context) error {
	ctx, a, script := c.Request().Context(), account(c), c.Param("script")
	var body struct {
		Name string  `json:"name"`
		Text *string `json:"text"`
		Type string  `json:"type"`
	}
	if err := json.NewDecoder(io.LimitReader(c.Request().Body, 1<<20)).Decode(&body); err != nil {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "invalid JSON body: %v", err)
	}
	if err := validSecretName(body.Name); err != nil {
		return err
	}
	if body.Type != apiv1.BindingSecretText || body.Text == nil {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "a secret needs \"type\":\"secret_text\" and a \"text\" value (secret_key is not supported by octo yet)")
	}
	unlock := s.locks.lock(a, script)
	defer unlock()
	prev, err := s.latestVersion(ctx, a, script)
	if err != nil {
		return err
	}
	if err := s.requireLatestDeployed(ctx, a, script, prev, CodeSecretEditNotDeployed, secretEditNotDeployed); err != nil {
		return err
	}
	bindings := []Binding{{Name: body.Name, Type: apiv1.BindingSecretText, Text: body.Text}}
	for _, b := range prev.Spec.Bindings {
		if b.Name != body.Name {
			bindings = append(bindings, Binding{Name: b.Name, Type: bindingInherit})
		}
	}
	if _, err := s.deriveVersion(ctx, a, script, prev, bindings, nil); err != nil {
		return err
	}
	return ok(c, map[string]string{"name": body.Name, "type": body.Type})
}

// deleteSecret is `wrangler secret delete`: a new version without it.
func (s *Server) deleteSecret(c echo.Context) error {
	ctx, a, script := c.Request().Context(), account(c), c.Param("script")
	name, _ := url.PathUnescape(c.Param("secret"))
	unlock := s.locks.lock(a, script)
	defer unlock()
	prev, err := s.latestVersion(ctx, a, script)
	if err != nil {
		return err
	}
	var bindings []Binding
	found := false
	for _, b := range prev.Spec.Bindings {
		if b.Name == name && b.Type == apiv1.BindingSecretText {
			found = true
			continue
		}
		bindings = append(bindings, Binding{Name: b.Name, Type: bindingInherit})
	}
	if !found {
		return Errorf(http.StatusNotFound, CodeSecretNotFound, "secret %q not found on script %q", name, script)
	}
	if err := s.requireLatestDeployed(ctx, a, script, prev, CodeSecretEditNotDeployed, secretEditNotDeployed); err != nil {
		return err
	}
	if _, err := s.deriveVersion(ctx, a, script, prev, bindings, map[string]*string{name: nil}); err != nil {
		return err
	}
	return ok(c, nil)
}
