// Package web is octo's dashboard: one page of plain HTML, CSS and a small
// vanilla script, embedded in the binary and served by the edge server on
// the loopback port of the API, with a JSON API under /dashboard/api/ that
// the page polls. The R2 and D1 views read buckets and databases through the
// domain layer (store) and change nothing.
//
// The dashboard reads Kubernetes objects through a controller-runtime
// client.Reader and performs every change (rollback, gradual split, delete,
// KV put and delete) by calling the Cloudflare API handler in-process with
// the API's bearer token, so that the API's validation applies unchanged.
// It never reads Kubernetes Secrets: secret values cannot leave the server
// through it.
//
// Only who can read the data dir may use it (see README.md): the page, the
// JSON API and the tail need a session cookie, which a one-time login link
// gives (`sudo octo dashboard`; see auth.go), and no answer holds a secret:
// the overview names the `octo env` variables without their values. It is
// also protected like Caddy's admin API: loopback Host headers only (DNS
// rebinding), same-origin checks on every JSON request, and a per-daemon
// CSRF token, injected into the page of a logged-in browser only, on every
// change.
package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/octohq/octo/internal/metrics"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/tail"
	"github.com/octohq/octo/internal/workerlogs"
)

//go:embed static
var staticFS embed.FS

// Paths of the dashboard.
const (
	// APIPrefix is where the dashboard's JSON API is mounted.
	APIPrefix = "/dashboard/api"
	// StaticPrefix is where the page's assets are served.
	StaticPrefix = "/static/"
	// TokenHeader carries the dashboard token on every request that changes
	// something.
	TokenHeader = "X-Octo-Token"
	// tokenPlaceholder is replaced by the token in index.html.
	tokenPlaceholder = "__OCTO_DASHBOARD_TOKEN__"
)

// Part is one embedded part of the platform as the overview shows it.
type Part struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Endpoint string `json:"endpoint,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Status is the daemon's state as the overview shows it. The daemon maps
// its own status to it (web must not import the daemon, which imports web).
type Status struct {
	// State is the daemon's state: starting, ready, failed, ...
	State     string    `json:"state"`
	Version   string    `json:"version,omitempty"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	Parts     []Part    `json:"parts"`
}

// ReadyState is the state of a healthy part.
const ReadyState = "ready"

// Tailer streams a script's live tail events; *tail.Hub is one.
type Tailer interface {
	Subscribe(account, script string) (<-chan tail.Event, func())
}

// Options configure a Dashboard.
type Options struct {
	// Status returns the daemon's current status; nil shows no parts.
	Status func() Status
	// Reader reads the cluster's view: bundles, builds, pods and events.
	Reader client.Reader
	// Store is the domain layer: accounts, scripts and KV are read and
	// changed through it, with the same rules as the Cloudflare API.
	Store *store.Store
	// DefaultAccount is the account actions act on when they name none.
	DefaultAccount store.Account
	// APIURL is the Cloudflare API's base URL the overview shows.
	APIURL string
	// PodMemory returns the working-set memory of the pods, by
	// "namespace/name"; nil shows none.
	PodMemory func(ctx context.Context) (map[string]uint64, error)
	// Tail streams the live tail; nil disables it.
	Tail Tailer
	// Metrics returns a script's requests by minute (the gateway's
	// metrics.Recorder.Range); nil shows none.
	Metrics func(ctx context.Context, account, script string, from, to time.Time) ([]metrics.Point, error)
	// Usage returns the CPU time and memory of a bundle's pods by minute
	// (metrics.Usage.Range, by account ID and apiv1.BundleLabelValue; both
	// empty: every bundle's, summed); nil shows none.
	Usage func(ctx context.Context, account, bundle string, from, to time.Time) ([]metrics.UsageMinute, error)
	// Logs searches a script's kept logs (Workers Logs); nil shows none.
	Logs func(ctx context.Context, account, script string, q workerlogs.Query) ([]workerlogs.Entry, error)
	// EdgePort is the loopback port the dashboard is served on: the only
	// Hosts accepted are 127.0.0.1:<EdgePort> and localhost:<EdgePort>. It
	// is also the port of the Worker URLs.
	EdgePort int
	// Env returns the `octo env` export lines. The overview shows only
	// their names (EnvNames): the values hold the API token and the S3 keys
	// and never leave the server. nil shows none.
	Env func() []string
	// Token is the dashboard (CSRF) token; empty means a random one, which
	// is what the daemon wants (a new one at every start).
	Token string
	// LoginKey checks the login tokens (see LoginToken, CreateLoginKey);
	// empty means no login works.
	LoginKey []byte
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Dashboard serves the page and its JSON API. It implements edge.Registrar
// and edge.ErrorRenderer.
type Dashboard struct {
	opts   Options
	token  string
	page   []byte
	static http.Handler
	log    *slog.Logger
	now    func() time.Time
	hosts  map[string]bool
	origin map[string]bool
	auth   auth
	usage  r2UsageCache
}

// New returns a Dashboard.
func New(opts Options) (*Dashboard, error) {
	if opts.Reader == nil || opts.Store == nil {
		return nil, fmt.Errorf("dashboard: needs a Reader and a Store")
	}
	if opts.EdgePort <= 0 || opts.EdgePort > 65535 {
		return nil, fmt.Errorf("dashboard: bad edge port %d", opts.EdgePort)
	}
	d := &Dashboard{opts: opts, token: opts.Token, log: opts.Log, now: opts.Now,
		auth: auth{used: map[string]time.Time{}, sessions: map[string]time.Time{}}}
	if len(opts.LoginKey) > 0 {
		if err := d.SetLoginKey(opts.LoginKey); err != nil {
			return nil, err
		}
	}
	if d.token == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("dashboard token: %w", err)
		}
		d.token = hex.EncodeToString(b)
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	index, err := staticFS.ReadFile("static/index.html")
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(index, []byte(tokenPlaceholder)) {
		return nil, fmt.Errorf("dashboard: index.html has no token placeholder")
	}
	d.page = bytes.ReplaceAll(index, []byte(tokenPlaceholder), []byte(d.token))
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	d.static = http.StripPrefix(StaticPrefix, http.FileServer(http.FS(sub)))
	port := strconv.Itoa(opts.EdgePort)
	d.hosts = map[string]bool{"127.0.0.1:" + port: true, "localhost:" + port: true}
	d.origin = map[string]bool{}
	for h := range d.hosts {
		d.origin["http://"+h] = true
	}
	return d, nil
}

// Token is the dashboard token the page sends in X-Octo-Token.
func (d *Dashboard) Token() string { return d.token }

// URL is the dashboard's address, for `octo up` to print.
func (d *Dashboard) URL() string { return URL(d.opts.EdgePort) }

// URL is the dashboard's address on an edge port.
func URL(edgePort int) string { return "http://127.0.0.1:" + strconv.Itoa(edgePort) + "/" }

// Register implements edge.Registrar.
func (d *Dashboard) Register(e *echo.Echo) {
	e.GET("/", d.servePage, d.checkHost)
	e.GET(LoginPath, d.login, d.checkHost)
	e.GET(StaticPrefix+"*", d.serveStatic, d.checkHost)

	g := e.Group(APIPrefix, d.checkHost, d.checkSameOrigin, d.checkSession, d.checkToken)
	g.GET("/overview", d.overview)
	g.GET("/workers", d.workers)
	g.GET("/workers/:account/:script", d.worker)
	g.GET("/workers/:account/:script/logs", d.workerLogs)
	g.DELETE("/workers/:account/:script", d.deleteWorker)
	g.POST("/actions/rollback", d.rollback)
	g.POST("/actions/split", d.split)
	g.GET("/builds", d.builds)
	g.GET("/cluster", d.cluster)
	g.GET("/kv/:account", d.kvNamespaces)
	g.GET("/kv/:account/:namespace/keys", d.kvKeys)
	g.GET("/kv/:account/:namespace/value", d.kvValue)
	g.PUT("/kv/:account/:namespace/value", d.kvPut)
	g.DELETE("/kv/:account/:namespace/value", d.kvDelete)
	g.GET("/r2/:account", d.r2Buckets)
	g.GET("/r2/:account/:bucket/objects", d.r2Objects)
	g.GET("/r2/:account/:bucket/object", d.r2Object)
	g.GET("/d1/:account", d.d1Databases)
	g.GET("/d1/:account/:database/tables", d.d1Tables)
	g.POST("/d1/:account/:database/query", d.d1Query)
	g.GET("/tail/:account/:script", d.tail)
}

// ErrorPrefix implements edge.ErrorRenderer.
func (d *Dashboard) ErrorPrefix() string { return "/dashboard/" }

// errorBody is every JSON error of the dashboard.
type errorBody struct {
	Error string `json:"error"`
	// Code is the Cloudflare API's error code when the API refused an action.
	Code int `json:"code,omitempty"`
}

// RenderError implements edge.ErrorRenderer: errors as {"error": "..."}.
func (d *Dashboard) RenderError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, body := http.StatusInternalServerError, errorBody{Error: "internal error"}
	se := store.AsError(err)
	switch e := err.(type) {
	case *echo.HTTPError:
		status, body.Error = e.Code, fmt.Sprint(e.Message)
	default:
		if se != nil { // refused by the store: the same status and code as the API's
			status, body = se.Kind.HTTPStatus(), errorBody{Error: se.Msg, Code: se.Code}
			break
		}
		d.log.Error("dashboard", "path", c.Request().URL.Path, "err", err)
		body.Error = err.Error()
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	_ = c.JSON(status, body)
}

// fail is an error with its status, rendered as {"error": msg}.
func fail(status int, format string, args ...any) error {
	return &echo.HTTPError{Code: status, Message: fmt.Sprintf(format, args...)}
}

// contentSecurityPolicy keeps the page to its own origin: no inline script,
// nothing from the internet, never framed.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func securityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// servePage serves the page, with its CSRF token, to a logged-in browser,
// and the login page (401) to any other.
func (d *Dashboard) servePage(c echo.Context) error {
	h := c.Response().Header()
	securityHeaders(h)
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("Cache-Control", "no-store")
	if !d.loggedIn(c.Request()) {
		return d.loginPage(c, "This browser is not logged in.")
	}
	return c.HTMLBlob(http.StatusOK, d.page)
}

func (d *Dashboard) serveStatic(c echo.Context) error {
	p := strings.TrimPrefix(c.Request().URL.Path, StaticPrefix)
	if p == "" || p == "index.html" || strings.HasSuffix(p, "/") {
		return echo.ErrNotFound // the page (with its token) is served at / only; no listings
	}
	h := c.Response().Header()
	securityHeaders(h)
	h.Set("Cache-Control", "no-cache")
	d.static.ServeHTTP(c.Response(), c.Request())
	return nil
}

// checkHost accepts only the loopback Hosts of the edge port, which defeats
// DNS rebinding: a page of evil.example that rebinds its name to 127.0.0.1
// still sends Host: evil.example.
func (d *Dashboard) checkHost(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !d.hosts[strings.ToLower(c.Request().Host)] {
			msg := fmt.Sprintf("host %q not allowed: open the dashboard at %s", c.Request().Host, d.URL())
			if !strings.HasPrefix(c.Request().URL.Path, APIPrefix+"/") {
				securityHeaders(c.Response().Header())
				return c.String(http.StatusForbidden, msg+"\n")
			}
			return fail(http.StatusForbidden, "%s", msg)
		}
		return next(c)
	}
}

// checkSameOrigin refuses every JSON request that a browser says comes
// from another origin: an Origin header other than the dashboard's own, or
// Sec-Fetch-Site other than same-origin (or none: typed in the address bar).
func (d *Dashboard) checkSameOrigin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if o := r.Header.Get("Origin"); o != "" && (!d.origin[strings.ToLower(o)] || !strings.EqualFold(o, "http://"+r.Host)) {
			return fail(http.StatusForbidden, "cross-origin request refused (Origin %q)", o)
		}
		if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
			return fail(http.StatusForbidden, "cross-origin request refused (Sec-Fetch-Site %q)", s)
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		securityHeaders(c.Response().Header())
		return next(c)
	}
}

// checkToken requires the dashboard token on every request but GET and
// HEAD. A cross-origin page cannot read the token (it is only in the page
// served to a logged-in browser, which the same-origin policy hides from
// other origins) and cannot send a custom header without a CORS preflight,
// which the dashboard never grants.
func (d *Dashboard) checkToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			return next(c)
		}
		got := r.Header.Get(TokenHeader)
		if got == "" {
			return fail(http.StatusForbidden, "missing %s header: reload the dashboard", TokenHeader)
		}
		if !constantTimeEqual(got, d.token) {
			return fail(http.StatusForbidden, "wrong %s: the daemon restarted since the page was loaded; reload it", TokenHeader)
		}
		return next(c)
	}
}
