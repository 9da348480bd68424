package cfapi

import (
	"bytes"
	"cmp"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"

	"github.com/labstack/echo/v4"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
)

// partMIME is the media type GET …/content/v2 gives a module: the inverse
// of store.ModuleTypes, taking the smallest media type where several name
// one type (application/… before its text/… alias), which are the types
// wrangler's fromMimeType accepts. A service worker's body is
// application/javascript, as wrangler uploads it.
func partMIME(p store.Part) string {
	typ := p.Type
	if typ == apiv1.ModuleServiceWorker {
		typ = apiv1.ModuleCommonJS
	}
	best := ""
	for mt, t := range store.ModuleTypes {
		if t == typ && (best == "" || mt < best) {
			best = mt
		}
	}
	return cmp.Or(best, "application/octet-stream")
}

// getContent answers GET …/scripts/:script/content/v2[?version=<id>] (the
// latest version without one), as wrangler's `versions secret put` reads it
// back: a module worker as multipart/form-data, one file part per module and
// the main module named by the cf-entrypoint header; a service worker as its
// script alone.
func (s *Server) getContent(c echo.Context) error {
	ctx, a, script := c.Request().Context(), account(c), c.Param("script")
	var v *apiv1.WorkerVersion
	var err error
	if id := c.QueryParam("version"); id != "" {
		if _, err = s.store.Release(ctx, a, script); err != nil {
			return err
		}
		v, err = s.store.Version(ctx, a, script, id)
	} else {
		v, err = s.store.LatestVersion(ctx, a, script)
	}
	if err != nil {
		return err
	}
	parts, err := s.store.LoadParts(ctx, v)
	if err != nil {
		return fmt.Errorf("content of %s: %w", script, err)
	}
	if v.Spec.MainModule == "" {
		for _, p := range parts {
			if p.Name == v.Spec.BodyPart {
				return c.Blob(http.StatusOK, "application/javascript", p.Data)
			}
		}
		return fmt.Errorf("content of %s: version %s has no body part %q", script, v.Spec.VersionID, v.Spec.BodyPart)
	}
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", multipart.FileContentDisposition(p.Name, p.Name))
		h.Set("Content-Type", partMIME(p))
		pw, err := w.CreatePart(h)
		if err != nil {
			return fmt.Errorf("content of %s: module %s: %w", script, p.Name, err)
		}
		if _, err := pw.Write(p.Data); err != nil {
			return fmt.Errorf("content of %s: module %s: %w", script, p.Name, err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("content of %s: %w", script, err)
	}
	c.Response().Header().Set("cf-entrypoint", v.Spec.MainModule)
	return c.Blob(http.StatusOK, w.FormDataContentType(), body.Bytes())
}
