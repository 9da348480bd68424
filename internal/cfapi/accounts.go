package cfapi

import (
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/octohq/octo/internal/store"
)

func (s *Server) verifyToken(c echo.Context) error {
	return ok(c, map[string]any{"id": s.tokenID(), "status": "active"})
}

func (s *Server) user(c echo.Context) error {
	return ok(c, map[string]any{"id": s.id.AccountID, "email": s.id.Email, "first_name": "octo", "last_name": "developer"})
}

type accountJSON struct {
	ID       string         `json:"id"`
	Name     string         `json:"name"`
	Type     string         `json:"type"`
	Settings map[string]any `json:"settings"`
}

func toJSON(a store.Account) accountJSON {
	return accountJSON{ID: a.ID, Name: a.Name, Type: "standard", Settings: map[string]any{}}
}

// page slices all by ?page= and ?per_page= (Cloudflare's fetchPagedListResult).
func page[T any](c echo.Context, all []T, defaultPerPage int) ([]T, PageInfo) {
	p, _ := strconv.Atoi(c.QueryParam("page"))
	if p < 1 {
		p = 1
	}
	per, _ := strconv.Atoi(c.QueryParam("per_page"))
	if per < 1 {
		per = defaultPerPage
	}
	start := min((p-1)*per, len(all))
	end := min(start+per, len(all))
	out := append([]T{}, all[start:end]...)
	return out, PageInfo{Page: p, PerPage: per, Count: len(out), TotalCount: len(all)}
}

func (s *Server) listAccounts(c echo.Context) error {
	all, err := s.store.Accounts(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]accountJSON, len(all))
	for i, a := range all {
		out[i] = toJSON(a)
	}
	items, info := page(c, out, 20)
	return okPaged(c, items, info)
}

func (s *Server) listMemberships(c echo.Context) error {
	all, err := s.store.Accounts(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]map[string]any, len(all))
	for i, a := range all {
		out[i] = map[string]any{"id": a.ID, "status": "accepted", "account": toJSON(a), "roles": []string{"Administrator"}}
	}
	items, info := page(c, out, 20)
	return okPaged(c, items, info)
}

func (s *Server) getAccount(c echo.Context) error { return ok(c, toJSON(account(c))) }

func (s *Server) accountSubdomain(c echo.Context) error {
	return ok(c, map[string]any{"subdomain": account(c).Subdomain})
}
