package gateway

import (
	"context"
	"errors"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/octohq/octo/internal/store"
)

// rewrite sends the request to the chosen pod, unchanged but for the
// headers Cloudflare adds. The Host header is kept: workerd builds
// request.url from it.
func rewrite(pr *httputil.ProxyRequest) {
	t := pr.In.Context().Value(targetKey{}).(*target)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = t.primary.addr
	pr.Out.Host = pr.In.Host

	ip := pr.In.RemoteAddr
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	proto := "http"
	if pr.In.TLS != nil {
		proto = "https"
	}
	h := pr.Out.Header
	xff := ip
	if prior := pr.In.Header.Values("X-Forwarded-For"); len(prior) > 0 {
		xff = strings.Join(prior, ", ") + ", " + ip
	}
	visitor := `{"scheme":"http"}`
	if proto == "https" {
		visitor = `{"scheme":"https"}`
	}
	// One backing array for the seven values (canonical keys, set directly).
	keys := [...]string{"X-Forwarded-For", "X-Forwarded-Proto", "Cf-Connecting-Ip", "Cf-Ipcountry", "Cf-Ray", "Cf-Visitor", "Cf-Worker"}
	v := [...]string{xff, proto, ip, "XX", t.ray, visitor, t.script}
	vals := v[:]
	for i, k := range keys {
		h[k] = vals[i : i+1 : i+1]
	}
	loaderHeaders(h, t.primary)
}

// retryTransport retries once, on another pod, a request whose connection
// could not be opened (a pod that just terminated), when the method is
// idempotent and the body can be replayed. Nothing reached the pod, so the
// retry is safe. It also retries a request a loader host could not run
// (loadFailed); proxied requests carry no GetBody, so that retry is for
// requests without a body, and the others get the host's 503.
type retryTransport struct {
	base http.RoundTripper
	log  *slog.Logger
}

// A loader host that could not load its version (loadFailed) answers
// before any Worker sees the request: that request, whatever its method, is
// retried the same way on the pod of the previous deployment.
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	tg, _ := req.Context().Value(targetKey{}).(*target)
	switch {
	case err == nil && !loadFailed(tg, resp):
		return resp, nil
	case tg == nil || len(tg.alts) == 0 || req.Context().Err() != nil:
		return resp, err
	case err != nil && (!dialError(err) || !idempotent(req.Method)):
		return nil, err
	}
	alt := tg.alts[0]
	retry := req.Clone(req.Context())
	retry.URL.Host = alt.addr
	loaderHeaders(retry.Header, alt)
	if req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			return resp, err
		}
		body, gerr := req.GetBody()
		if gerr != nil {
			return resp, err
		}
		retry.Body = body
	}
	if resp != nil {
		t.log.Info("loader could not run the new version; retrying on the previous deployment", "script", tg.script,
			"version", tg.primary.version, "pod", tg.primary.pod, "retry", alt.pod)
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	} else {
		t.log.Debug("retrying on another pod", "script", tg.script, "failed", tg.primary.pod, "retry", alt.pod, "err", err)
	}
	return t.base.RoundTrip(retry)
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// dialError reports whether err happened while connecting.
func dialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// proxyError answers a request the pod did not answer.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	t, _ := r.Context().Value(targetKey{}).(*target)
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		w.WriteHeader(http.StatusBadGateway) // the client is gone
		return
	}
	script, pod := "", ""
	if t != nil {
		script, pod = t.script, t.primary.pod
	}
	if headerTimeout(err) {
		// The Worker took the request but sent no response in time.
		var after time.Duration
		if t != nil {
			after = time.Since(t.start).Round(time.Second)
		}
		g.log.Warn("worker answer timed out", "script", script, "pod", pod, "after", after)
		text(w, http.StatusGatewayTimeout, "error code: 524\nA timeout occurred: worker "+script+
			" sent no response within "+after.String()+".")
		return
	}
	killed := t != nil && t.primary.load != nil && t.primary.load.killed.Load()
	if t != nil && (killed || time.Since(t.start) >= ResourceLimitAfter) && upstreamDied(err) {
		// The process died under the request: the gateway ended it for a
		// request past its CPU limit (WatchStalls), its liveness probe found
		// it wedged, or it ran out of memory.
		g.log.Warn("worker exceeded resource limits", "script", script, "pod", pod, "after", time.Since(t.start).Round(time.Millisecond), "err", err)
		text(w, http.StatusServiceUnavailable, "error code: 1102\nWorker exceeded resource limits: worker "+script+
			" stopped answering while it handled this request, and its process was restarted.")
		return
	}
	g.log.Warn("worker did not answer", "script", script, "pod", pod, "err", err)
	text(w, http.StatusBadGateway, "worker "+script+" did not answer: "+err.Error())
}

// ResourceLimitAfter is how long a request must have run before the death
// of its process is blamed on it (Cloudflare's error 1102) when the gateway
// did not end the process itself: its liveness probe restarts a wedged
// workerd at the pod's largest CPU limit, and the shortest is 1 ms; an OOM
// kill can come at any time.
const ResourceLimitAfter = 2 * time.Second

// headerTimeout reports whether err is the transport giving up waiting for
// the response headers (http.Transport.ResponseHeaderTimeout).
func headerTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && strings.Contains(err.Error(), "awaiting response headers")
}

// upstreamDied reports whether err is the connection to workerd ending
// mid-request (the process was killed), or a retry finding it gone.
func upstreamDied(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "server closed") ||
		strings.Contains(err.Error(), "connection reset")
}

// bufferPool recycles the proxy's copy buffers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// notFound answers the 404 page: what is not there and what is deployed.
func (g *Gateway) notFound(w http.ResponseWriter, r *http.Request, a *store.Account, reason string) {
	ctx := r.Context()
	port := hostPort(r.Host, g.edgePort)
	var urls []string
	if a != nil {
		urls = g.deployed(ctx, *a, port)
	} else if s := g.snap.Load(); s != nil {
		for _, acct := range s.all {
			urls = append(urls, g.deployed(ctx, acct, port)...)
		}
	}
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		var b strings.Builder
		b.WriteString(`<!doctype html><html><head><meta charset="utf-8"><title>No Worker here · octo</title>`)
		b.WriteString(`<style>body{font-family:system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem}code{background:#eee;padding:0 .2em}</style></head><body>`)
		b.WriteString("<h1>No Worker is deployed at " + html.EscapeString(r.Host) + "</h1>")
		if reason != "" {
			b.WriteString("<p>" + html.EscapeString(reason) + "</p>")
		}
		if len(urls) == 0 {
			b.WriteString("<p>Deployed: none yet. Deploy one with <code>wrangler deploy</code>.</p>")
		} else {
			b.WriteString("<p>Deployed:</p><ul>")
			for _, u := range urls {
				e := html.EscapeString(u)
				b.WriteString(`<li><a href="` + e + `">` + e + "</a></li>")
			}
			b.WriteString("</ul>")
		}
		b.WriteString("<p>See <code>octo url &lt;script&gt;</code> for a Worker's address.</p></body></html>\n")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(b.String()))
		return
	}
	msg := "No Worker is deployed at " + r.Host + "."
	if reason != "" {
		msg += " " + reason
	}
	if len(urls) == 0 {
		msg += "\nDeployed: none yet — deploy one with `wrangler deploy`, then see `octo url <script>`."
	} else {
		msg += "\nDeployed: " + strings.Join(urls, " ") + " — see `octo url <script>`."
	}
	text(w, http.StatusNotFound, msg)
}
