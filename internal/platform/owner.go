package platform

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/octohq/octo/internal/cfapi"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/tail"
)

// Owner is the one process of a cluster that holds what replicas cannot
// share (`octo api --d1-dir --tails`, the chart's state StatefulSet): the D1
// databases (SQLite files on one volume) and the tail sessions (a
// `wrangler tail` WebSocket meets the trace events of the pods there). The
// API replicas reach it through its Cloudflare API: they find the databases
// that uploads bind to with Lookup, and pass the D1 API, the tails API and
// the tail WebSockets through with Proxy. The Workers' pods call its pod API
// for D1 and send it their trace events; the gateways follow which scripts
// are tailed at FeedPath.
type Owner struct {
	// URL is the owner's base URL, e.g. http://octo-state.octo-system.svc.
	URL *url.URL
	// Token is the API token both accept.
	Token string
	// Client makes the lookups; nil: a client with a 10 s timeout.
	Client *http.Client
}

var _ store.D1Catalog = (*Owner)(nil)

// FeedPath is where the owner serves the tail hub's watched feed to the
// gateways, behind the API token.
const FeedPath = "/octo/tails/watched"

// ownedPath matches the paths the owner answers: the D1 API and its file
// transfers (imports, exports), the tails API and the tail WebSockets.
var ownedPath = regexp.MustCompile(`^(` + regexp.QuoteMeta(cfapi.BasePath) + `/accounts/[^/]+/(d1(/|$)|workers/scripts/[^/]+/tails(/|$))|` +
	regexp.QuoteMeta(cfapi.BasePath+cfapi.D1TransferPath) + `|` + regexp.QuoteMeta(tail.Path) + `)`)

// Proxy returns next with the owner's requests passed through to it (the
// client's Host kept, so tail URLs name the address the client used).
func (o *Owner) Proxy(next http.Handler) http.Handler {
	rp := httputil.NewSingleHostReverseProxy(o.URL)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ownedPath.MatchString(r.URL.Path) {
			rp.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// FeedHandler serves a tail hub's watched feed (tail.Hub.FeedHandler) to
// the bearers of token only: a token of its own (the chart's feed Secret),
// so that the gateways need not hold the API's.
func FeedHandler(feed http.Handler, token string) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			http.Error(w, "the tail feed needs the API token", http.StatusUnauthorized)
			return
		}
		feed.ServeHTTP(w, r)
	})
}

// bearer adds a token to every request of a client.
type bearer struct {
	token string
	next  http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// Lookup implements store.D1Catalog with the owner's
// GET /accounts/:id/d1/database/:uuid|:name.
func (o *Owner) Lookup(ctx context.Context, account, idOrName string) (store.D1Database, error) {
	// One path segment each: a binding's database_id must not walk the
	// owner's API (the request carries the token).
	for _, seg := range []string{account, idOrName} {
		if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "/\\?#%") {
			return store.D1Database{}, store.Errorf(store.NotFound, store.CodeD1NotFound, "The database %s could not be found", idOrName)
		}
	}
	u := o.URL.JoinPath(cfapi.BasePath, "accounts", account, "d1", "database", idOrName)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return store.D1Database{}, fmt.Errorf("D1 owner: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+o.Token)
	c := o.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return store.D1Database{}, fmt.Errorf("D1 owner: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return store.D1Database{}, fmt.Errorf("D1 owner: %w", err)
	}
	var env struct {
		Success bool            `json:"success"`
		Errors  []cfapi.Message `json:"errors"`
		Result  json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return store.D1Database{}, fmt.Errorf("D1 owner: %s answered %d without an envelope: %w", u.Host, resp.StatusCode, err)
	}
	if !env.Success {
		if len(env.Errors) > 0 && env.Errors[0].Code == store.CodeD1NotFound {
			return store.D1Database{}, store.Errorf(store.NotFound, store.CodeD1NotFound, "%s", env.Errors[0].Message)
		}
		return store.D1Database{}, fmt.Errorf("D1 owner: %s answered %d: %v", u.Host, resp.StatusCode, env.Errors)
	}
	var db store.D1Database
	if err := json.Unmarshal(env.Result, &db); err != nil {
		return store.D1Database{}, fmt.Errorf("D1 owner: decode database: %w", err)
	}
	return db, nil
}
