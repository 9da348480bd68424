// Package cfapi is octo's Cloudflare API: the subset of
// https://api.cloudflare.com/client/v4 that the real wrangler CLI uses, served
// on the edge port so that wrangler deploys to octo unchanged.
//
// It is only HTTP: each handler parses the request, calls the domain layer
// (internal/store) and renders Cloudflare's envelope, with the HTTP status
// and error code Cloudflare would send.
package cfapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/tail"
)

// BasePath is where the API is mounted; CLOUDFLARE_API_BASE_URL ends with it.
const BasePath = "/client/v4"

// Options configure a Server.
type Options struct {
	// Identity holds the bearer token wrangler must send and the user
	// /user describes.
	Identity store.Identity
	// Store is the domain layer every handler calls.
	Store *store.Store
	Log   *slog.Logger
	// Tails holds the `wrangler tail` sessions; nil disables the tails API.
	Tails *tail.Hub
	// EdgeURL is the edge's base URL (http://127.0.0.1:<port>), from which
	// tail WebSocket URLs are made; empty means the request's Host.
	EdgeURL string
	// Metrics, when set, answers GET /metrics (Prometheus' text format) for
	// the holders of the API token (Prometheus: authorization.credentials).
	Metrics http.Handler
}

// Server serves the API.
type Server struct {
	id store.Identity
	// tokenHash is the SHA-256 of id.Token: presented tokens are compared
	// by hash, in constant time and whatever their length.
	tokenHash [sha256.Size]byte
	store     *store.Store
	log       *slog.Logger
	tails     *tail.Hub
	edgeURL   string
	metrics   http.Handler
}

// New returns a Server.
func New(opts Options) *Server {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		id: opts.Identity, tokenHash: sha256.Sum256([]byte(opts.Identity.Token)),
		store: opts.Store, log: log, tails: opts.Tails, edgeURL: opts.EdgeURL, metrics: opts.Metrics,
	}
}

// Register mounts the API on e under BasePath.
func (s *Server) Register(e *echo.Echo) {
	g := e.Group(BasePath, s.authenticate)
	g.GET("/user/tokens/verify", s.verifyToken)
	g.GET("/user", s.user)
	g.GET("/accounts", s.listAccounts)
	g.GET("/memberships", s.listMemberships)

	a := g.Group("/accounts/:account_id", s.resolveAccount)
	a.GET("", s.getAccount)
	a.GET("/workers/subdomain", s.accountSubdomain)
	s.registerKV(a)
	s.registerR2(g, a)
	s.registerScripts(a)
	s.registerWorkers(a)
	s.registerTails(a)
	s.registerD1(e, a)
	s.registerAssets(e, a)
	if s.metrics != nil {
		e.GET(MetricsPath, echo.WrapHandler(s.metrics), s.authenticateScrape)
	}

	// Anything else under the API answers a JSON 404, not an empty body.
	g.Any("/*", func(c echo.Context) error { return echo.ErrNotFound })
}

// MetricsPath is where Prometheus scrapes octo (Options.Metrics).
const MetricsPath = "/metrics"

// ErrorPrefix is the path under which RenderError answers errors.
func (s *Server) ErrorPrefix() string { return BasePath }

// NoRouteMessage is logged, with the method and path, for every request
// the API has no route for (answered 7003 or 405): a wrangler release that
// calls an endpoint octo lacks shows up in the log, and the e2e suites fail
// on it.
const NoRouteMessage = "cloudflare api: no route"

// RenderError answers err in Cloudflare's envelope.
func (s *Server) RenderError(err error, c echo.Context) {
	var he *echo.HTTPError
	if errors.As(err, &he) && (he.Code == http.StatusNotFound || he.Code == http.StatusMethodNotAllowed) {
		r := c.Request()
		s.log.Warn(NoRouteMessage, "method", r.Method, "path", r.URL.Path)
	}
	ErrorHandler(err, c)
}

// authenticate checks the bearer token on every call.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		auth := c.Request().Header.Get(echo.HeaderAuthorization)
		token, found := strings.CutPrefix(auth, "Bearer ")
		if !found || !s.validToken(strings.TrimSpace(token)) {
			p := c.Request().URL.Path
			if strings.HasSuffix(p, "/user") || strings.HasSuffix(p, "/memberships") {
				return Errorf(http.StatusForbidden, store.CodeUnauthorized, "Unauthorized to access requested resource")
			}
			if !found {
				return Errorf(http.StatusBadRequest, store.CodeAuthentication, "Authentication error: missing Authorization: Bearer <token> header (see `octo env`)")
			}
			return Errorf(http.StatusBadRequest, store.CodeAuthentication, "Authentication error: invalid API token (see `octo env`)")
		}
		return next(c)
	}
}

// authenticateScrape checks the bearer token of a /metrics scrape: outside
// the API's prefix, a refusal is a plain 401 (Prometheus shows its status).
func (s *Server) authenticateScrape(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		token, found := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
		if !found || !s.validToken(strings.TrimSpace(token)) {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="octo"`)
			return echo.NewHTTPError(http.StatusUnauthorized, "scraping octo's /metrics needs the API token as a bearer token (see `octo env`)")
		}
		return next(c)
	}
}

// validToken compares token with the API token by their SHA-256 digests:
// equal lengths, so the comparison is constant-time and reveals nothing of
// the token's length. Without a configured token nothing is valid.
func (s *Server) validToken(token string) bool {
	if s.id.Token == "" {
		return false
	}
	h := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(h[:], s.tokenHash[:]) == 1
}

// tokenID is the token's id for /user/tokens/verify: 32 hex digits of its
// digest, which say nothing about the token itself.
func (s *Server) tokenID() string { return hex.EncodeToString(s.tokenHash[:16]) }

// accountKey is the echo context key of the resolved Account.
const accountKey = "octo.account"

// resolveAccount answers 404 for unknown accounts and stores the Account.
func (s *Server) resolveAccount(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		a, err := s.store.Account(c.Request().Context(), c.Param("account_id"))
		if err != nil {
			return err
		}
		c.Set(accountKey, a)
		return next(c)
	}
}

// account returns the Account resolved for this request.
func account(c echo.Context) store.Account { return c.Get(accountKey).(store.Account) }
