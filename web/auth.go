package web

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/octohq/octo/internal/config"
)

// Login: the dashboard is only for who can read the data dir. The daemon
// keeps a login key in a 0600 file of the data dir (see CreateLoginKey);
// root derives one-time login tokens from it (`sudo octo dashboard`), and
// GET /login?token=… exchanges one for a session cookie.
const (
	// LoginPath exchanges a login token (query parameter "token") for a
	// session cookie, then redirects to the page.
	LoginPath = "/login"
	// SessionCookie is the name of the session cookie.
	SessionCookie = "octo_dashboard_session"
	// LoginTTL is how long a login token is valid; it works once.
	LoginTTL = 10 * time.Minute
	// SessionTTL is how long a session lasts; a daemon restart ends it too.
	SessionTTL = 24 * time.Hour
	// LoginHint is what a request without a session is told.
	LoginHint = "run `sudo octo dashboard` for a login link"
	// LoginKeySize is the size of a login key in bytes.
	LoginKeySize = 32

	// loginLabel separates the tokens' MACs from any other use of the key.
	loginLabel = "octo dashboard login v1\x00"
	nonceSize  = 16
	// tokenSize is a decoded token: expiry (unix seconds), nonce, MAC.
	tokenSize = 8 + nonceSize + sha256.Size
	// maxClockSkew tolerates a CLI clock slightly ahead of the daemon's.
	maxClockSkew = time.Minute
)

// loginError is why a login token was refused.
type loginError string

func (e loginError) Error() string { return string(e) }

// Reasons of a refused login token.
const (
	errLoginInvalid loginError = "invalid"
	errLoginExpired loginError = "expired"
	errLoginUsed    loginError = "already used"
	errNoLoginKey   loginError = "not usable yet: the daemon has no login key"
)

// NewLoginKey returns a random login key.
func NewLoginKey() ([]byte, error) {
	key := make([]byte, LoginKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("dashboard login key: %w", err)
	}
	return key, nil
}

// CreateLoginKey writes a new random login key to path (mode 0600, so only
// root reads it) and returns it. The daemon makes a new one at every start:
// the links and sessions of an earlier daemon never work again.
func CreateLoginKey(path string) ([]byte, error) {
	key, err := NewLoginKey()
	if err != nil {
		return nil, err
	}
	if err := config.WriteFileAtomic(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("dashboard login key: %w", err)
	}
	return key, nil
}

// ReadLoginKey reads the login key CreateLoginKey wrote. Its errors wrap
// fs.ErrNotExist (no daemon started yet) and fs.ErrPermission (not root).
func ReadLoginKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read dashboard login key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != LoginKeySize {
		return nil, fmt.Errorf("dashboard login key %s: not %d hex-encoded bytes", path, LoginKeySize)
	}
	return key, nil
}

// LoginToken returns a new login token signed with key: it is valid for
// LoginTTL after now, once.
func LoginToken(key []byte, now time.Time) (string, error) {
	if len(key) < LoginKeySize {
		return "", errNoLoginKey
	}
	b := make([]byte, 8, tokenSize)
	binary.BigEndian.PutUint64(b, uint64(now.Add(LoginTTL).Unix()))
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("login token: %w", err)
	}
	b = append(b, nonce...)
	b = append(b, loginMAC(key, b)...)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// LoginURL is the login link of a token for the dashboard on an edge port.
func LoginURL(edgePort int, token string) string {
	return strings.TrimSuffix(URL(edgePort), "/") + LoginPath + "?token=" + url.QueryEscape(token)
}

// loginMAC signs a token's expiry and nonce.
func loginMAC(key, expiryAndNonce []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(loginLabel))
	m.Write(expiryAndNonce)
	return m.Sum(nil)
}

// auth is the dashboard's login state: the key, the login tokens already
// used (until they expire) and the sessions, by the SHA-256 of the cookie.
type auth struct {
	mu       sync.Mutex
	key      []byte
	used     map[string]time.Time
	sessions map[string]time.Time
}

// SetLoginKey sets the key login tokens are checked with, for a builder that
// cannot pass Options.LoginKey to New. Until a key is set no login works.
func (d *Dashboard) SetLoginKey(key []byte) error {
	if len(key) < LoginKeySize {
		return fmt.Errorf("dashboard login key: %d bytes, want %d", len(key), LoginKeySize)
	}
	d.auth.mu.Lock()
	defer d.auth.mu.Unlock()
	d.auth.key = bytes.Clone(key)
	return nil
}

// redeem checks a login token and marks it used.
func (d *Dashboard) redeem(token string) error {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != tokenSize {
		return errLoginInvalid
	}
	now := d.now()
	d.auth.mu.Lock()
	defer d.auth.mu.Unlock()
	if d.auth.key == nil {
		return errNoLoginKey
	}
	signed, mac := b[:8+nonceSize], b[8+nonceSize:]
	if !hmac.Equal(mac, loginMAC(d.auth.key, signed)) {
		return errLoginInvalid
	}
	exp := time.Unix(int64(binary.BigEndian.Uint64(signed[:8])), 0)
	switch {
	case !now.Before(exp):
		return errLoginExpired
	case exp.After(now.Add(LoginTTL + maxClockSkew)):
		return errLoginInvalid // longer than a token lives
	}
	for k, e := range d.auth.used {
		if !now.Before(e) {
			delete(d.auth.used, k)
		}
	}
	id := string(signed)
	if _, ok := d.auth.used[id]; ok {
		return errLoginUsed
	}
	d.auth.used[id] = exp
	return nil
}

// sessionKey is how a session is kept: the cookie's hash, so that looking
// it up leaks nothing about the cookie's value through timing.
func sessionKey(cookie string) string {
	sum := sha256.Sum256([]byte(cookie))
	return hex.EncodeToString(sum[:])
}

// newSession starts a session and returns its cookie value.
func (d *Dashboard) newSession() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("dashboard session: %w", err)
	}
	cookie := hex.EncodeToString(b)
	now := d.now()
	d.auth.mu.Lock()
	defer d.auth.mu.Unlock()
	for k, e := range d.auth.sessions {
		if !now.Before(e) {
			delete(d.auth.sessions, k)
		}
	}
	d.auth.sessions[sessionKey(cookie)] = now.Add(SessionTTL)
	return cookie, nil
}

// endSession forgets the session of r, if any.
func (d *Dashboard) endSession(r *http.Request) {
	if c, err := r.Cookie(SessionCookie); err == nil {
		d.auth.mu.Lock()
		delete(d.auth.sessions, sessionKey(c.Value))
		d.auth.mu.Unlock()
	}
}

// loggedIn reports whether r carries the cookie of a live session.
func (d *Dashboard) loggedIn(r *http.Request) bool {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return false
	}
	k := sessionKey(c.Value)
	now := d.now()
	d.auth.mu.Lock()
	defer d.auth.mu.Unlock()
	exp, ok := d.auth.sessions[k]
	if ok && !now.Before(exp) {
		delete(d.auth.sessions, k)
		return false
	}
	return ok
}

// checkSession refuses every JSON request without a session: 401.
func (d *Dashboard) checkSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !d.loggedIn(c.Request()) {
			return fail(http.StatusUnauthorized, "not logged in: %s", LoginHint)
		}
		return next(c)
	}
}

// login exchanges a login token for a session cookie (HttpOnly,
// SameSite=Strict) and redirects to the page.
func (d *Dashboard) login(c echo.Context) error {
	h := c.Response().Header()
	securityHeaders(h)
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("Cache-Control", "no-store")
	if err := d.redeem(c.QueryParam("token")); err != nil {
		d.log.Warn("dashboard login refused", "err", err)
		return d.loginPage(c, "This login link is "+err.Error()+".")
	}
	cookie, err := d.newSession()
	if err != nil {
		return err
	}
	d.endSession(c.Request())
	c.SetCookie(&http.Cookie{
		Name: SessionCookie, Value: cookie, Path: "/", MaxAge: int(SessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
	d.log.Info("dashboard login")
	return c.Redirect(http.StatusSeeOther, "/")
}

// loginPageHTML is what the page's address answers without a session: %s
// is the message (HTML-escaped), %d the minutes a login link lives.
const loginPageHTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>octo · log in</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/app.css">
</head>
<body>
<main id="main">
<section class="card" id="login">
<h2>Log in to the octo dashboard</h2>
<p>%s</p>
<p>Run <code>sudo octo dashboard</code> in a terminal and open the link it prints: it logs this browser in,
once, within %d minutes. The dashboard needs the same rights as <code>sudo octo env</code>.</p>
</section>
</main>
</body>
</html>
`

// loginPage answers 401 with the page that says how to log in.
func (d *Dashboard) loginPage(c echo.Context, msg string) error {
	page := fmt.Sprintf(loginPageHTML, html.EscapeString(msg), int(LoginTTL/time.Minute))
	return c.HTMLBlob(http.StatusUnauthorized, []byte(page))
}
