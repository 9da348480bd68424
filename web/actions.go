package web

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/octohq/octo/internal/fakecf"
)

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// apiError is a refusal of the Cloudflare API, passed on to the page with
// the API's status, code and message.
type apiError struct {
	status int
	code   int
	msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("API %d: %s", e.code, e.msg) }

// capture is the http.ResponseWriter of an in-process API call: it keeps at
// most limit bytes of the body and counts the rest.
type capture struct {
	header http.Header
	status int
	body   bytes.Buffer
	limit  int
	size   int64
}

func newCapture(limit int) *capture { return &capture{header: http.Header{}, limit: limit} }

func (w *capture) Header() http.Header { return w.header }

func (w *capture) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *capture) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.size += int64(len(p))
	if room := w.limit - w.body.Len(); room > 0 {
		w.body.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// Flush lets handlers that flush (echo's Response) run.
func (w *capture) Flush() {}

// maxAPIBody bounds what the dashboard keeps of a JSON answer of the API.
const maxAPIBody = 8 << 20

// call sends one request to the Cloudflare API handler in-process, with
// the API's bearer token, and returns the captured answer. path is below
// /client/v4 and already escaped.
func (d *Dashboard) call(ctx context.Context, method, path string, query url.Values, body []byte, contentType string, limit int) (*capture, error) {
	u := &url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(d.opts.EdgePort)}
	full := fakecf.BasePath + path
	p, err := url.PathUnescape(full)
	if err != nil {
		return nil, fmt.Errorf("API path %q: %w", full, err)
	}
	u.Path, u.RawPath = p, full
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	var r io.Reader = http.NoBody
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return nil, err
	}
	req.Host = u.Host
	req.RequestURI = u.RequestURI()
	req.RemoteAddr = "127.0.0.1:0"
	req.Header.Set("Authorization", "Bearer "+d.opts.API.Token)
	req.Header.Set("User-Agent", "octo-dashboard")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if d.api == nil {
		return nil, fmt.Errorf("dashboard: no API handler")
	}
	w := newCapture(limit)
	d.api.ServeHTTP(w, req)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w, nil
}

// envelope is the Cloudflare answer.
type envelope struct {
	Success bool `json:"success"`
	Errors  []struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
	Result     json.RawMessage `json:"result"`
	ResultInfo json.RawMessage `json:"result_info"`
}

// callJSON is call for an API route answering the envelope: it decodes the
// result into out (when not nil) and turns a refusal into an *apiError.
func (d *Dashboard) callJSON(ctx context.Context, method, path string, query url.Values, body any, out any) (*envelope, error) {
	var b []byte
	ct := ""
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return nil, err
		}
		ct = "application/json"
	}
	w, err := d.call(ctx, method, path, query, b, ct, maxAPIBody)
	if err != nil {
		return nil, err
	}
	return decodeEnvelope(w, out)
}

func decodeEnvelope(w *capture, out any) (*envelope, error) {
	var env envelope
	if err := json.Unmarshal(w.body.Bytes(), &env); err != nil {
		return nil, fmt.Errorf("API answered %d with no JSON envelope: %.200q", w.status, w.body.String())
	}
	if !env.Success || w.status >= 300 {
		e := &apiError{status: w.status, msg: "the API refused the request"}
		if e.status < 400 {
			e.status = http.StatusBadGateway
		}
		if len(env.Errors) > 0 {
			e.code, e.msg = env.Errors[0].Code, env.Errors[0].Message
		}
		return nil, e
	}
	if out != nil && len(env.Result) > 0 {
		if err := json.Unmarshal(env.Result, out); err != nil {
			return nil, fmt.Errorf("API result: %w", err)
		}
	}
	return &env, nil
}

func accountPath(account string) string { return "/accounts/" + url.PathEscape(account) }

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
	dec := json.NewDecoder(io.LimitReader(c.Request().Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fail(http.StatusBadRequest, "invalid JSON body: %v", err)
	}
	if req.Account == "" {
		req.Account = d.opts.API.AccountID
	}
	if req.Script == "" {
		return req, fail(http.StatusBadRequest, "no script")
	}
	return req, nil
}

type deployVersion struct {
	VersionID  string `json:"version_id"`
	Percentage int    `json:"percentage"`
}

type deployBody struct {
	Strategy    string            `json:"strategy"`
	Versions    []deployVersion   `json:"versions"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// deploy posts a deployment to the API, as `wrangler versions deploy` and
// `wrangler rollback` do.
func (d *Dashboard) deploy(c echo.Context, req actionRequest, versions []deployVersion, message string) error {
	var out map[string]any
	path := accountPath(req.Account) + "/workers/scripts/" + url.PathEscape(req.Script) + "/deployments"
	body := deployBody{Strategy: "percentage", Versions: versions, Annotations: map[string]string{"workers/message": message}}
	if _, err := d.callJSON(c.Request().Context(), http.MethodPost, path, nil, body, &out); err != nil {
		return err
	}
	d.log.Info("dashboard deployment", "account", req.Account, "script", req.Script, "versions", versions)
	return c.JSON(http.StatusOK, map[string]any{"ok": true, "deployment": out})
}

// rollback makes one version take 100 % of the script's traffic.
func (d *Dashboard) rollback(c echo.Context) error {
	req, err := readAction(c, d)
	if err != nil {
		return err
	}
	if req.Version == "" {
		return fail(http.StatusBadRequest, "no version")
	}
	return d.deploy(c, req, []deployVersion{{VersionID: req.Version, Percentage: 100}}, "Rollback from the octo dashboard")
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
	return d.deploy(c, req, []deployVersion{{VersionID: req.A, Percentage: pa}, {VersionID: req.B, Percentage: 100 - pa}},
		fmt.Sprintf("Gradual deployment from the octo dashboard (%d/%d)", pa, 100-pa))
}

// deleteWorker deletes a script with everything it has, like `wrangler delete`.
func (d *Dashboard) deleteWorker(c echo.Context) error {
	a, script := c.Param("account"), c.Param("script")
	path := accountPath(a) + "/workers/scripts/" + url.PathEscape(script)
	if _, err := d.callJSON(c.Request().Context(), http.MethodDelete, path, nil, nil, nil); err != nil {
		return err
	}
	d.log.Info("dashboard deleted worker", "account", a, "script", script)
	return c.JSON(http.StatusOK, map[string]any{"ok": true})
}

// ---------------------------------------------------------------------------
// KV

// MaxPreview is how much of a KV value the dashboard shows.
const MaxPreview = 4 << 10

// maxKVPut bounds a value put from the dashboard (the API allows 25 MiB;
// the page is a text box).
const maxKVPut = 1 << 20

func kvPath(account, ns string) string {
	return accountPath(account) + "/storage/kv/namespaces/" + url.PathEscape(ns)
}

func (d *Dashboard) kvNamespaces(c echo.Context) error {
	var out []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	q := url.Values{"per_page": {"1000"}}
	if _, err := d.callJSON(c.Request().Context(), http.MethodGet, accountPath(c.Param("account"))+"/storage/kv/namespaces", q, nil, &out); err != nil {
		return err
	}
	if out == nil {
		out = out[:0]
	}
	return c.JSON(http.StatusOK, map[string]any{"namespaces": out})
}

type kvKeyJSON struct {
	Name       string          `json:"name"`
	Expiration int64           `json:"expiration,omitempty"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
}

func (d *Dashboard) kvKeys(c echo.Context) error {
	q := url.Values{"limit": {"1000"}}
	if p := c.QueryParam("prefix"); p != "" {
		q.Set("prefix", p)
	}
	if cur := c.QueryParam("cursor"); cur != "" {
		q.Set("cursor", cur)
	}
	var keys []kvKeyJSON
	env, err := d.callJSON(c.Request().Context(), http.MethodGet, kvPath(c.Param("account"), c.Param("namespace"))+"/keys", q, nil, &keys)
	if err != nil {
		return err
	}
	var info struct {
		Cursor string `json:"cursor"`
	}
	_ = json.Unmarshal(env.ResultInfo, &info)
	if keys == nil {
		keys = []kvKeyJSON{}
	}
	return c.JSON(http.StatusOK, map[string]any{"keys": keys, "cursor": info.Cursor})
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
	path := kvPath(c.Param("account"), c.Param("namespace")) + "/values/" + url.PathEscape(key)
	w, err := d.call(c.Request().Context(), http.MethodGet, path, nil, nil, "", MaxPreview)
	if err != nil {
		return err
	}
	if w.status != http.StatusOK {
		// An error envelope: small enough for the preview's buffer.
		if _, err := decodeEnvelope(w, nil); err != nil {
			return err
		}
		return fmt.Errorf("API answered %d", w.status)
	}
	b := w.body.Bytes()
	out := kvValueJSON{Key: key, Size: w.size, Truncated: w.size > int64(len(b))}
	out.Expiration, _ = strconv.ParseInt(w.header.Get("Expiration"), 10, 64)
	text := b
	if out.Truncated {
		// Do not call a value binary because the cut split a character.
		for i := 0; i < utf8.UTFMax && len(text) > 0 && !utf8.Valid(text); i++ {
			text = text[:len(text)-1]
		}
	}
	if utf8.Valid(text) && !strings.ContainsRune(string(text), 0) {
		out.Preview = string(text)
	} else {
		out.Binary = true
		out.Preview = hexDump(b)
	}
	return c.JSON(http.StatusOK, out)
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
	path := kvPath(c.Param("account"), c.Param("namespace")) + "/values/" + url.PathEscape(key)
	w, err := d.call(c.Request().Context(), http.MethodPut, path, nil, value, "application/octet-stream", maxAPIBody)
	if err != nil {
		return err
	}
	if _, err := decodeEnvelope(w, nil); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"ok": true})
}

func (d *Dashboard) kvDelete(c echo.Context) error {
	key, err := kvKey(c)
	if err != nil {
		return err
	}
	path := kvPath(c.Param("account"), c.Param("namespace")) + "/values/" + url.PathEscape(key)
	if _, err := d.callJSON(c.Request().Context(), http.MethodDelete, path, nil, nil, nil); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"ok": true})
}
