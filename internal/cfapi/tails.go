package cfapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/tail"
)

// maxTailBody bounds the filters wrangler sends when creating a tail.
const maxTailBody = 1 << 20

// codeTailRefused is the code Cloudflare refuses to create a tail with
// (its "too much traffic for live tailing"); octo sends it, with a 429, when
// a script or account has too many live tails.
const codeTailRefused = 10057

// registerTails mounts `wrangler tail`'s calls (create, list, delete a tail)
// on the account group.
func (s *Server) registerTails(a *echo.Group) {
	const p = "/workers/scripts/:script/tails"
	a.POST(p, s.createTail, s.validScript)
	a.GET(p, s.listTails, s.validScript)
	a.DELETE(p+"/:tail_id", s.deleteTail, s.validScript)
}

// tailJSON is a tail as the API returns it.
type tailJSON struct {
	ID        string `json:"id"`
	URL       string `json:"url"`
	ExpiresAt string `json:"expires_at"`
}

func (s *Server) tailJSON(c echo.Context, t tail.Session) tailJSON {
	base := s.edgeURL
	if base == "" {
		// Behind a TLS Ingress the scheme is the proxy's (X-Forwarded-Proto).
		base = c.Scheme() + "://" + c.Request().Host
	}
	base = strings.TrimSuffix(base, "/")
	if rest, ok := strings.CutPrefix(base, "https://"); ok {
		base = "wss://" + rest
	} else {
		base = "ws://" + strings.TrimPrefix(base, "http://")
	}
	return tailJSON{ID: t.ID, URL: base + tail.Path + t.ID, ExpiresAt: ts(t.ExpiresAt)}
}

func (s *Server) tailHub() (*tail.Hub, error) {
	if s.tails == nil {
		return nil, Errorf(http.StatusNotImplemented, store.CodeInternal, "tails are not available on this server")
	}
	return s.tails, nil
}

// createTail takes {"filters":[...]} sent as text/plain; the body is parsed
// leniently (an empty or malformed body means no filters).
func (s *Server) createTail(c echo.Context) error {
	hub, err := s.tailHub()
	if err != nil {
		return err
	}
	a, script := account(c), c.Param("script")
	if _, err := s.store.Release(c.Request().Context(), a, script); err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, maxTailBody))
	if err != nil {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "could not read the request body: %v", err)
	}
	if !json.Valid(body) {
		body = nil
	}
	t, err := hub.Create(a.ID, script, body)
	var le *tail.LimitError
	if errors.As(err, &le) {
		return Errorf(http.StatusTooManyRequests, codeTailRefused, "%s", le.Error())
	}
	if err != nil {
		return fmt.Errorf("create tail of %s: %w", script, err)
	}
	return ok(c, s.tailJSON(c, t))
}

func (s *Server) listTails(c echo.Context) error {
	hub, err := s.tailHub()
	if err != nil {
		return err
	}
	a, script := account(c), c.Param("script")
	if _, err := s.store.Release(c.Request().Context(), a, script); err != nil {
		return err
	}
	out := []tailJSON{}
	for _, t := range hub.List(a.ID, script) {
		out = append(out, s.tailJSON(c, t))
	}
	return ok(c, out)
}

// deleteTail ends a tail of the script; deleting a tail that already
// expired succeeds (wrangler deletes after the server closed it).
func (s *Server) deleteTail(c echo.Context) error {
	hub, err := s.tailHub()
	if err != nil {
		return err
	}
	a, script, id := account(c), c.Param("script"), c.Param("tail_id")
	if t, found := hub.Get(id); found {
		if t.Account != a.ID || t.Script != script {
			return Errorf(http.StatusNotFound, store.CodeNotFound, "tail %s does not belong to script %q", id, script)
		}
		hub.Delete(id)
	}
	return ok(c, nil)
}
