package edge

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/labstack/echo/v4"
)

// unixHost is the Host of requests sent over a unix socket (any name
// would do: the dialer ignores it).
const unixHost = "octo-edge"

// UnixClient returns an HTTP client whose connections go to the unix socket
// path, whatever the URL's host; timeout 0 means none.
func UnixClient(path string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: unixTransport(path)}
}

func unixTransport(path string) *http.Transport {
	d := net.Dialer{Timeout: 2 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

// Upstream is a Registrar that sends every request the edge's other parts
// do not route to the edge server listening on the unix socket path: the
// gateway process owns the loopback port and passes the API, the dashboard
// and `wrangler tail` to the daemon. The request goes unchanged (Host,
// path, WebSocket upgrades, streamed bodies and event streams); no
// X-Forwarded-* headers are added.
type Upstream struct {
	proxy *httputil.ReverseProxy
}

// NewUpstream returns the Upstream for the socket at path.
func NewUpstream(path string, log *slog.Logger) *Upstream {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Upstream{proxy: &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", unixHost
		},
		Transport:     unixTransport(path),
		FlushInterval: -1,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client left
			}
			log.Warn("daemon unreachable", "path", r.URL.Path, "err", err)
			http.Error(w, fmt.Sprintf("octo: the API and dashboard are not reachable (%v); is `octo up` still running? See `octo status`.", err), http.StatusBadGateway)
		},
	}}
}

// Register implements Registrar: every path and method not routed
// otherwise.
func (u *Upstream) Register(e *echo.Echo) {
	h := echo.WrapHandler(u.proxy)
	e.Any("/", h)
	e.Any("/*", h)
	e.RouteNotFound("/*", h)
}
