// Package fakecf is octo's Cloudflare API: the subset of
// https://api.cloudflare.com/client/v4 that the real wrangler CLI uses, served
// on the edge port so that wrangler deploys to octo unchanged.
//
// Every JSON answer uses Cloudflare's envelope, every failure the HTTP status
// and error code Cloudflare would send (see reference/wrangler-api.md). Code
// and metadata of each version live in S3; control state lives in Kubernetes
// objects of group api.cf-worker/v1.
package fakecf

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/internal/operators/api/v1"
	"github.com/octohq/octo/internal/tail"
)

// BasePath is where the API is mounted; CLOUDFLARE_API_BASE_URL ends with it.
const BasePath = "/client/v4"

// Account is one Cloudflare account octo serves.
type Account struct {
	ID        string
	Name      string
	Subdomain string
	// Namespace is the Kubernetes namespace holding the account's objects.
	Namespace string
	// ReleaseLabels are added to the account's objects so that the
	// WorkerAccount's workerReleaseSelector selects them.
	ReleaseLabels map[string]string
}

// AccountSource lists the accounts: the default one and every WorkerAccount.
type AccountSource interface {
	Accounts(ctx context.Context) ([]Account, error)
}

// Options configure a Server.
type Options struct {
	Identity Identity
	Accounts AccountSource
	Blobs    *BlobStore
	// Client reads and writes the api.cf-worker/v1 objects and Secrets.
	Client client.Client
	Log    *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Tails holds the `wrangler tail` sessions; nil disables the tails API.
	Tails *tail.Hub
	// EdgeURL is the edge's base URL (http://127.0.0.1:<port>), from which
	// tail WebSocket URLs are made; empty means the request's Host.
	EdgeURL string
	// Validate, when set, starts every new version once before anything of it
	// is stored (WorkerdValidator does it in workerd). A *workerd.StartupError
	// refuses the upload with 400/10021 and workerd's message; the duration
	// becomes the version's startup_time_ms. nil accepts every version.
	Validate func(ctx context.Context, v *apiv1.WorkerVersion, parts []Part) (time.Duration, error)
}

// Server serves the API.
type Server struct {
	id       Identity
	accounts AccountSource
	blobs    *BlobStore
	k8s      client.Client
	log      *slog.Logger
	now      func() time.Time
	locks    scriptLocks
	tails    *tail.Hub
	edgeURL  string
	validate func(ctx context.Context, v *apiv1.WorkerVersion, parts []Part) (time.Duration, error)
}

// New returns a Server.
func New(opts Options) *Server {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Server{id: opts.Identity, accounts: opts.Accounts, blobs: opts.Blobs, k8s: opts.Client, log: log, now: now,
		tails: opts.Tails, edgeURL: opts.EdgeURL, validate: opts.Validate}
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
	s.registerScripts(a)
	s.registerTails(a)

	// Anything else under the API answers a JSON 404, not an empty body.
	g.Any("/*", func(c echo.Context) error { return echo.ErrNotFound })
}

// ErrorPrefix is the path under which RenderError answers errors.
func (s *Server) ErrorPrefix() string { return BasePath }

// RenderError answers err in Cloudflare's envelope.
func (s *Server) RenderError(err error, c echo.Context) { ErrorHandler(err, c) }

// authenticate checks the bearer token on every call.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		auth := c.Request().Header.Get(echo.HeaderAuthorization)
		token, found := strings.CutPrefix(auth, "Bearer ")
		if !found || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(s.id.Token)) != 1 {
			p := c.Request().URL.Path
			if strings.HasSuffix(p, "/user") || strings.HasSuffix(p, "/memberships") {
				return Errorf(http.StatusForbidden, CodeUnauthorized, "Unauthorized to access requested resource")
			}
			if !found {
				return Errorf(http.StatusBadRequest, CodeAuthentication, "Authentication error: missing Authorization: Bearer <token> header (see `octo env`)")
			}
			return Errorf(http.StatusBadRequest, CodeAuthentication, "Authentication error: invalid API token (see `octo env`)")
		}
		return next(c)
	}
}

// accountKey is the echo context key of the resolved Account.
const accountKey = "octo.account"

// resolveAccount answers 404 for unknown accounts and stores the Account.
func (s *Server) resolveAccount(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Param("account_id")
		accounts, err := s.accounts.Accounts(c.Request().Context())
		if err != nil {
			return err
		}
		for _, a := range accounts {
			if a.ID == id {
				c.Set(accountKey, a)
				return next(c)
			}
		}
		return Errorf(http.StatusNotFound, 7003, "Could not route to /accounts/%s, perhaps your object identifier is invalid?", id)
	}
}

// account returns the Account resolved for this request.
func account(c echo.Context) Account { return c.Get(accountKey).(Account) }
