package web

import (
	"cmp"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/octohq/octo/internal/store"
)

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// ---------------------------------------------------------------------------
// Actions

// actionRequest is the body of the action routes.
type actionRequest struct {
	// Account defaults to the default account.
	Account string `json:"account"`
	Script  string `json:"script"`
	// Version is the rollback target.
	Version string `json:"version"`
	// A, B and PercentA make a gradual split: A gets PercentA %, B the rest.
	A        string `json:"a"`
	B        string `json:"b"`
	PercentA *int   `json:"percentA"`
}

func readAction(c echo.Context, d *Dashboard) (actionRequest, error) {
	var req actionRequest
	if err := decodeJSON(c, &req, 64<<10); err != nil {
		return req, err
	}
	if req.Account == "" {
		req.Account = d.opts.DefaultAccount.ID
	}
	if req.Script == "" {
		return req, fail(http.StatusBadRequest, "no script")
	}
	return req, nil
}

// decodeJSON reads a JSON body of at most limit bytes without unknown
// fields into v.
func decodeJSON(c echo.Context, v any, limit int64) error {
	dec := json.NewDecoder(io.LimitReader(c.Request().Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fail(http.StatusBadRequest, "invalid JSON body: %v", err)
	}
	return nil
}

// deploy makes a deployment through the store, as `wrangler versions deploy`
// and `wrangler rollback` do; the store checks the versions and percentages.
func (d *Dashboard) deploy(c echo.Context, req actionRequest, versions []store.Traffic, message string) error {
	ctx := c.Request().Context()
	a, err := d.opts.Store.Account(ctx, req.Account)
	if err != nil {
		return err
	}
	dep, err := d.opts.Store.Deploy(ctx, a, req.Script, store.Deployment{Versions: versions, Message: &message})
	if err != nil {
		return err
	}
	d.log.Info("dashboard deployment", "account", req.Account, "script", req.Script, "versions", dep.Versions)
	return c.JSON(http.StatusOK, map[string]any{"ok": true, "deployment": toDeployment(*dep, nil, true)})
}

// percent is p as a deployment's percentage.
func percent(p int) *int { return &p }

// rollback makes one version take 100 % of the script's traffic.
func (d *Dashboard) rollback(c echo.Context) error {
	req, err := readAction(c, d)
	if err != nil {
		return err
	}
	if req.Version == "" {
		return fail(http.StatusBadRequest, "no version")
	}
	return d.deploy(c, req, []store.Traffic{{VersionID: req.Version, Percentage: percent(100)}}, "Rollback from the octo dashboard")
}

// split deploys two versions with percentA and 100-percentA; the API
// checks the versions and the percentages.
func (d *Dashboard) split(c echo.Context) error {
	req, err := readAction(c, d)
	if err != nil {
		return err
	}
	if req.A == "" || req.B == "" || req.PercentA == nil {
		return fail(http.StatusBadRequest, "a split needs versions a and b and percentA")
	}
	pa := *req.PercentA
	if pa < 0 || pa > 100 {
		return fail(http.StatusBadRequest, "percentA must be between 0 and 100, not %d", pa)
	}
	return d.deploy(c, req, []store.Traffic{{VersionID: req.A, Percentage: percent(pa)}, {VersionID: req.B, Percentage: percent(100 - pa)}},
		fmt.Sprintf("Gradual deployment from the octo dashboard (%d/%d)", pa, 100-pa))
}

// deleteWorker deletes a script with everything it has, like `wrangler delete`.
func (d *Dashboard) deleteWorker(c echo.Context) error {
	ctx, script := c.Request().Context(), c.Param("script")
	a, err := d.opts.Store.Account(ctx, c.Param("account"))
	if err != nil {
		return err
	}
	if err := d.opts.Store.DeleteScript(ctx, a, script); err != nil {
		return err
	}
	d.log.Info("dashboard deleted worker", "account", a.ID, "script", script)
	return c.JSON(http.StatusOK, map[string]any{"ok": true})
}

// ---------------------------------------------------------------------------
// KV

// MaxPreview is how much of a KV value the dashboard shows.
const MaxPreview = 4 << 10

// maxKVPut bounds a value put from the dashboard (the API allows 25 MiB;
// the page is a text box).
const maxKVPut = 1 << 20

// kvAccount resolves the account of a KV route.
func (d *Dashboard) kvAccount(c echo.Context) (store.Account, error) {
	return d.opts.Store.Account(c.Request().Context(), c.Param("account"))
}

func (d *Dashboard) kvNamespaces(c echo.Context) error {
	a, err := d.kvAccount(c)
	if err != nil {
		return err
	}
	all, err := d.opts.Store.KV().Namespaces(c.Request().Context(), a.ID)
	if err != nil {
		return err
	}
	slices.SortFunc(all, func(x, y store.KVNamespace) int {
		return cmp.Or(cmp.Compare(x.Title, y.Title), cmp.Compare(x.ID, y.ID))
	})
	type nsJSON struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	out := []nsJSON{}
	for _, ns := range all {
		out = append(out, nsJSON{ID: ns.ID, Title: ns.Title})
	}
	return c.JSON(http.StatusOK, map[string]any{"namespaces": out})
}

type kvKeyJSON struct {
	Name       string          `json:"name"`
	Expiration int64           `json:"expiration,omitempty"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
}

func (d *Dashboard) kvKeys(c echo.Context) error {
	a, err := d.kvAccount(c)
	if err != nil {
		return err
	}
	list, cursor, err := d.opts.Store.KV().List(c.Request().Context(), a.ID, c.Param("namespace"), c.QueryParam("prefix"), c.QueryParam("cursor"), 1000)
	if err != nil {
		return err
	}
	keys := []kvKeyJSON{}
	for _, k := range list {
		keys = append(keys, kvKeyJSON{Name: k.Name, Expiration: k.Expiration, Metadata: k.Metadata})
	}
	return c.JSON(http.StatusOK, map[string]any{"keys": keys, "cursor": cursor})
}

func kvKey(c echo.Context) (string, error) {
	key := c.QueryParam("key")
	if key == "" {
		return "", fail(http.StatusBadRequest, "no key")
	}
	return key, nil
}

// kvValueJSON is a value preview: at most MaxPreview bytes, as text when
// they are UTF-8, else as hex.
type kvValueJSON struct {
	Key       string `json:"key"`
	Size      int64  `json:"size"`
	Preview   string `json:"preview"`
	Truncated bool   `json:"truncated"`
	Binary    bool   `json:"binary"`
	// Expiration is the key's expiry (unix seconds), 0 for none.
	Expiration int64 `json:"expiration,omitempty"`
}

func (d *Dashboard) kvValue(c echo.Context) error {
	key, err := kvKey(c)
	if err != nil {
		return err
	}
	a, err := d.kvAccount(c)
	if err != nil {
		return err
	}
	e, err := d.opts.Store.KV().Get(c.Request().Context(), a.ID, c.Param("namespace"), key)
	if err != nil {
		return err
	}
	b := e.Value[:min(len(e.Value), MaxPreview)]
	out := kvValueJSON{Key: key, Size: int64(len(e.Value)), Expiration: e.Expiration}
	out.Preview, out.Truncated, out.Binary = preview(b, out.Size)
	return c.JSON(http.StatusOK, out)
}

// preview renders the first bytes b of a value of size bytes: as text when
// they are UTF-8 without NULs, else as hex; truncated when b is not all.
func preview(b []byte, size int64) (text string, truncated, binary bool) {
	truncated = size > int64(len(b))
	t := b
	if truncated {
		// Do not call a value binary because the cut split a character.
		for i := 0; i < utf8.UTFMax && len(t) > 0 && !utf8.Valid(t); i++ {
			t = t[:len(t)-1]
		}
	}
	if utf8.Valid(t) && !strings.ContainsRune(string(t), 0) {
		return string(t), truncated, false
	}
	return hexDump(b), truncated, true
}

// hexDump renders bytes as space-separated hex, 16 per line.
func hexDump(b []byte) string {
	var s strings.Builder
	for i, x := range b {
		switch {
		case i > 0 && i%16 == 0:
			s.WriteByte('\n')
		case i > 0:
			s.WriteByte(' ')
		}
		fmt.Fprintf(&s, "%02x", x)
	}
	return s.String()
}

func (d *Dashboard) kvPut(c echo.Context) error {
	key, err := kvKey(c)
	if err != nil {
		return err
	}
	value, err := io.ReadAll(io.LimitReader(c.Request().Body, maxKVPut+1))
	if err != nil {
		return fail(http.StatusBadRequest, "read value: %v", err)
	}
	if len(value) > maxKVPut {
		return fail(http.StatusRequestEntityTooLarge, "the dashboard puts values of at most %d bytes; use wrangler kv key put for larger ones", maxKVPut)
	}
	a, err := d.kvAccount(c)
	if err != nil {
		return err
	}
	if err := d.opts.Store.KV().Put(c.Request().Context(), a.ID, c.Param("namespace"), key, store.KVEntry{Value: value}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"ok": true})
}

func (d *Dashboard) kvDelete(c echo.Context) error {
	key, err := kvKey(c)
	if err != nil {
		return err
	}
	a, err := d.kvAccount(c)
	if err != nil {
		return err
	}
	if err := d.opts.Store.KV().Delete(c.Request().Context(), a.ID, c.Param("namespace"), key); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"ok": true})
}
