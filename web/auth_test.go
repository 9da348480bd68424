package web

import (
	"encoding/base64"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The attack: any local user (curl as nobody, no cookie) asked the
// dashboard for the `octo env` lines (API token, S3 keys) and the page for
// the CSRF token, then made changes. Without a session everything but the
// static assets and the login is refused, and no answer holds a secret.
func TestNoSessionIsRefused(t *testing.T) {
	w := newWorld(t, testPort)
	rollback := `{"script":"e2e-esm","version":"` + esmV1 + `"}`
	for _, cookie := range []string{"", SessionCookie + "=", SessionCookie + "=forged0123", "other=" + w.cookie} {
		noSession := map[string]string{"Cookie": cookie}
		for _, tc := range []struct{ method, path, body string }{
			{"GET", "/dashboard/api/overview", ""},
			{"GET", "/dashboard/api/workers", ""},
			{"GET", "/dashboard/api/workers/" + acct + "/e2e-vars", ""},
			{"GET", "/dashboard/api/builds", ""},
			{"GET", "/dashboard/api/cluster", ""},
			{"GET", "/dashboard/api/kv/" + acct, ""},
			{"GET", "/dashboard/api/kv/" + acct + "/" + w.kvNS + "/value?key=greeting", ""},
			{"GET", "/dashboard/api/tail/" + acct + "/e2e-esm", ""},
			{"GET", "/dashboard/api/nope", ""},
			// Writes, even with the right CSRF token and Origin.
			{"POST", "/dashboard/api/actions/rollback", rollback},
			{"POST", "/dashboard/api/actions/split", `{"script":"e2e-esm","a":"` + esmV1 + `","b":"` + esmV2 + `","percentA":50}`},
			{"DELETE", "/dashboard/api/workers/" + acct + "/e2e-esm", ""},
			{"PUT", "/dashboard/api/kv/" + acct + "/" + w.kvNS + "/value?key=greeting", "owned"},
			{"DELETE", "/dashboard/api/kv/" + acct + "/" + w.kvNS + "/value?key=greeting", ""},
		} {
			before := w.state(t)
			rec := w.do(t, tc.method, tc.path, tc.body, noSession)
			if tc.path != "/dashboard/api/nope" || rec.Code != http.StatusNotFound { // unknown routes may 404 first
				wantError(t, rec, http.StatusUnauthorized, "sudo octo dashboard")
			}
			noSecrets(t, tc.method+" "+tc.path, rec.Body.String())
			if after := w.state(t); after != before {
				t.Errorf("%s %s (cookie %q) changed the store", tc.method, tc.path, cookie)
			}
		}

		// The page: a 401 login page, without the CSRF token.
		rec := w.do(t, http.MethodGet, "/", "", map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "none"})
		if rec.Code != http.StatusUnauthorized || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
			t.Errorf("GET / (cookie %q) = %d %q", cookie, rec.Code, rec.Header().Get("Content-Type"))
		}
		if body := rec.Body.String(); strings.Contains(body, testDashTok) || strings.Contains(body, "octo-token") || !strings.Contains(body, "sudo octo dashboard") {
			t.Errorf("GET / (cookie %q) without a session:\n%s", cookie, body)
		}
		noSecrets(t, "GET /", rec.Body.String())
	}
	if w.kvValue(t, "greeting") != "hello from KV" {
		t.Error("the KV value changed")
	}
	// The assets stay public: they hold nothing of the daemon's.
	for _, p := range []string{"/static/app.js", "/static/app.css", "/static/favicon.svg"} {
		rec := w.do(t, http.MethodGet, p, "", map[string]string{"Cookie": ""})
		if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), testDashTok) {
			t.Errorf("GET %s without a session = %d", p, rec.Code)
		}
	}
}

func noSecrets(t *testing.T, what, body string) {
	t.Helper()
	for _, s := range []string{testAPIToken, testS3Secret, secretValue, testLoginKey} {
		if strings.Contains(body, s) {
			t.Errorf("%s answers the secret %q", what, s)
		}
	}
}

// get GETs path without a session cookie.
func (w *world) get(t *testing.T, path string) *httptest.ResponseRecorder {
	t.Helper()
	return w.do(t, http.MethodGet, path, "", map[string]string{"Cookie": "", "Sec-Fetch-Site": "none"})
}

func TestLogin(t *testing.T) {
	w := newWorld(t, testPort)
	tok := w.loginToken(t)

	rec := w.get(t, LoginPath+"?token="+tok)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/" {
		t.Fatalf("login = %d, Location %q, want 303 to /", rec.Code, rec.Header().Get("Location"))
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("login sets %d cookies, want 1", len(cookies))
	}
	c := cookies[0]
	if c.Name != SessionCookie || len(c.Value) != 64 || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" ||
		c.MaxAge != int(SessionTTL/time.Second) {
		t.Errorf("session cookie = %+v, want HttpOnly, SameSite=Strict, Path=/", c)
	}
	if sc := rec.Header().Get("Set-Cookie"); !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Strict") {
		t.Errorf("Set-Cookie = %q", sc)
	}
	if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("login headers = %v", rec.Header())
	}
	// The cookie opens the page (with the CSRF token) and the API.
	w.cookie = c.Value
	if rec := w.do(t, http.MethodGet, "/", "", nil); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), testDashTok) {
		t.Errorf("GET / with the new session = %d", rec.Code)
	}
	if rec := w.do(t, http.MethodGet, "/dashboard/api/overview", "", nil); rec.Code != http.StatusOK {
		t.Errorf("overview with the new session = %d", rec.Code)
	}

	// The token works once.
	rec = w.get(t, LoginPath+"?token="+tok)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "already used") || len(rec.Result().Cookies()) != 0 {
		t.Errorf("second use = %d %s", rec.Code, rec.Body)
	}

	refused := func(name, token, reason string) {
		t.Helper()
		rec := w.get(t, LoginPath+"?token="+token)
		if rec.Code != http.StatusUnauthorized || len(rec.Result().Cookies()) != 0 || !strings.Contains(rec.Body.String(), reason) ||
			!strings.Contains(rec.Body.String(), "sudo octo dashboard") {
			t.Errorf("%s: login = %d %v\n%s", name, rec.Code, rec.Result().Cookies(), rec.Body)
		}
	}
	// Expired: minted more than LoginTTL ago.
	old, err := LoginToken([]byte(testLoginKey), w.now().Add(-LoginTTL-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	refused("expired", old, "expired")
	// Forged: another key, a changed expiry, garbage, nothing.
	forged, _ := LoginToken([]byte("another-key-0123456789abcdef-012"), w.now())
	refused("other key", forged, "invalid")
	b, _ := base64.RawURLEncoding.DecodeString(w.loginToken(t))
	b[7]++ // a later expiry
	refused("changed expiry", base64.RawURLEncoding.EncodeToString(b), "invalid")
	refused("garbage", "not-a-token", "invalid")
	refused("empty", "", "invalid")
	// Valid far too long (minted with a clock an hour ahead).
	future, _ := LoginToken([]byte(testLoginKey), w.now().Add(time.Hour))
	refused("future", future, "invalid")
	// The login checks the Host like every route.
	r := httptest.NewRequest(http.MethodGet, LoginPath+"?token="+w.loginToken(t), nil)
	r.Host = "evil.example:8787"
	rec = httptest.NewRecorder()
	w.e.ServeHTTP(rec, r)
	if rec.Code != http.StatusForbidden || len(rec.Result().Cookies()) != 0 {
		t.Errorf("login on a foreign Host = %d", rec.Code)
	}

	// Sessions end after SessionTTL.
	w.advance(SessionTTL)
	wantError(t, w.do(t, http.MethodGet, "/dashboard/api/overview", "", nil), http.StatusUnauthorized, "not logged in")
}

func TestNoLoginKey(t *testing.T) {
	w := newWorld(t, testPort)
	d, err := New(Options{Reader: w.c, Store: w.st, EdgePort: testPort})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := LoginToken([]byte(testLoginKey), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.redeem(tok); err == nil {
		t.Error("a dashboard without a login key took a token")
	}
	if err := d.SetLoginKey([]byte("short")); err == nil {
		t.Error("SetLoginKey took a short key")
	}
	if err := d.SetLoginKey([]byte(testLoginKey)); err != nil {
		t.Fatal(err)
	}
	if err := d.redeem(tok); err != nil {
		t.Errorf("redeem after SetLoginKey: %v", err)
	}
	if _, err := LoginToken(nil, time.Now()); err == nil {
		t.Error("LoginToken without a key succeeded")
	}
}

func TestLoginKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dashboard", "login.key")
	if _, err := ReadLoginKey(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadLoginKey of no file: %v, want fs.ErrNotExist", err)
	}
	key, err := CreateLoginKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	got, err := ReadLoginKey(path)
	if err != nil || string(got) != string(key) || len(key) != LoginKeySize {
		t.Errorf("ReadLoginKey = %x, %v; want %x", got, err, key)
	}
	again, _ := CreateLoginKey(path)
	if string(again) == string(key) {
		t.Error("CreateLoginKey made the same key twice")
	}
	if err := os.WriteFile(path, []byte("zz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLoginKey(path); err == nil {
		t.Error("ReadLoginKey took a bad file")
	}
	if u := LoginURL(18787, "abc_-"); u != "http://127.0.0.1:18787/login?token=abc_-" {
		t.Errorf("LoginURL = %q", u)
	}
}

func TestEnvNames(t *testing.T) {
	got := EnvNames([]string{"export CLOUDFLARE_API_TOKEN='tok=en'", "AWS_REGION=us-east-1", "  export OCTO_HOME='/x'  ",
		"S3CRETVALUE", "export bad-name=x", "=x", "export 9X=y", ""})
	if want := []string{"CLOUDFLARE_API_TOKEN", "AWS_REGION", "OCTO_HOME"}; !slices.Equal(got, want) {
		t.Errorf("EnvNames = %q, want %q", got, want)
	}
}
