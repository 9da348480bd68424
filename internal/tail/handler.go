package tail

import (
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/octohq/octo/internal/workerd"
)

// Path is the prefix of both the WebSocket (GET /tail/<id>, edge port) and
// the collector (POST /tail/<service>, pod-facing listener), where the
// workerd tail Worker posts.
const Path = workerd.TailPath

// maxCollectBody bounds one POST of the tail worker: the traces of one
// invocation. workerd stops recording a trace's logs and exceptions at
// about 256 KiB (MAX_TRACE_BYTES), which JSON escaping can grow a few
// times; 4 MiB leaves room for several traces per batch.
const maxCollectBody = 4 << 20

// closeWait is how long a server-initiated close waits for the client's
// close frame before dropping the connection.
const closeWait = 2 * time.Second

// Register mounts the WebSocket endpoint, GET /tail/:id, on the edge.
func (h *Hub) Register(e *echo.Echo) {
	e.GET(Path+":id", echo.WrapHandler(h.Handler()))
}

// Handler serves GET /tail/<id>: it upgrades to a WebSocket (subprotocol
// trace-v1) and streams the session's events as JSON text messages until
// the client leaves or the session ends.
func (h *Hub) Handler() http.Handler { return http.HandlerFunc(h.serveWS) }

func (h *Hub) serveWS(w http.ResponseWriter, r *http.Request) {
	id := strings.Trim(strings.TrimPrefix(r.URL.Path, Path), "/")
	if _, ok := h.Get(id); !ok {
		http.Error(w, "tail "+id+" does not exist or has expired; start a new one with `wrangler tail`", http.StatusNotFound)
		return
	}
	proto, err := checkUpgrade(r)
	if err != nil {
		var he *handshakeError
		if errors.As(err, &he) {
			w.Header().Set("Sec-WebSocket-Version", "13")
			http.Error(w, he.msg, he.status)
			return
		}
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sub, sess, err := h.attach(id)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	defer h.detach(id, sub)
	conn, err := upgrade(w, r, proto)
	if err != nil {
		h.log.Warn("tail upgrade failed", "id", id, "err", err)
		return
	}
	defer conn.close()
	h.log.Debug("tail connected", "id", id, "script", sess.Script, "remote", r.RemoteAddr)

	readDone := make(chan error, 1)
	go func() {
		// wrangler's first message is {"debug":false}; nothing to act on.
		readDone <- conn.readLoop(func(byte, []byte) {})
	}()
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	for {
		select {
		case ev := <-sub.ch:
			b, err := json.Marshal(ev)
			if err != nil {
				h.log.Warn("tail event", "err", err)
				continue
			}
			if conn.write(opText, b) != nil {
				return
			}
		case <-ping.C:
			if conn.write(opPing, []byte("octo")) != nil {
				return
			}
		case <-readDone:
			return
		case <-sub.done:
			code := closeNormal
			if sub.reason == reasonShutdown {
				code = closeGoingAway
			}
			if conn.sendClose(code, sub.reason) == nil {
				select {
				case <-readDone:
				case <-time.After(closeWait):
				}
			}
			return
		}
	}
}

// Collect serves POST /tail/<service name>: the JSON array of trace items
// that the tail worker of account's pods posts for the workerd service it
// is attached to. account must be authenticated by the caller (the pod
// API). Events reach only account's listeners: a service that resolves to a
// script of another account is refused with 403 and nothing is published;
// one that does not resolve is taken as the script its name spells
// (ScriptOfService) in account.
func (h *Hub) Collect(w http.ResponseWriter, r *http.Request, account string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST the trace items", http.StatusMethodNotAllowed)
		return
	}
	if account == "" {
		http.Error(w, "trace items of no account", http.StatusForbidden)
		return
	}
	if r.ContentLength > maxCollectBody {
		http.Error(w, "trace batch too large", http.StatusRequestEntityTooLarge)
		return
	}
	// Past the limit the server closes the connection rather than drain it.
	body := http.MaxBytesReader(w, r.Body, maxCollectBody)
	service, _ := url.PathUnescape(strings.Trim(strings.TrimPrefix(r.URL.EscapedPath(), Path), "/"))
	if !h.listening() && h.logs == nil {
		// Only traced invocations post here: when nobody tails and no
		// logs are kept, answer at once.
		_, _ = io.Copy(io.Discard, body)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var script, version string
	resolved := false
	if h.resolve != nil && service != "" {
		var owner string
		owner, script, version, resolved = h.resolve(service)
		if resolved && owner != account {
			h.log.Warn("trace items refused: the service belongs to another account", "service", service, "account", account, "owner", owner)
			http.Error(w, "service "+strconv.Quote(service)+" does not belong to account "+strconv.Quote(account), http.StatusForbidden)
			return
		}
	}
	if !resolved {
		// Unresolved: the script named by the service ("<script>-<version
		// prefix>"), in the posting account.
		script, version = ScriptOfService(cmp.Or(service, r.Header.Get(workerd.TailHeader))), ""
	}
	keep := h.logs != nil && h.logs.Logged(account, script)
	if !h.listening() && !keep {
		// A script traced for a tail session nobody listens to any more:
		// answer at once, or its pod holds the events while the collector
		// reads them (its workerd's memory grows under load).
		_, _ = io.Copy(io.Discard, body)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	b, err := io.ReadAll(body)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, "trace batch too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	items, err := ParseTraceItems(b)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, it := range items {
		ev, err := FromTraceItem(it, account, script, version)
		if err != nil {
			h.log.Debug("tail item skipped", "service", service, "err", err)
			continue
		}
		if ev.ScriptName == "" {
			continue
		}
		h.Publish(ev)
		if keep {
			if err := h.logs.Keep(ev); err != nil {
				h.log.Warn("invocation log not kept", "script", ev.ScriptName, "err", err)
			}
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// ScriptOfService guesses the script of a workerd service name as the
// builder makes them, "<script>-<first 8 hex of the version id>" (or the
// whole id without hyphens): the name without its version suffix. Script
// names with '_' come back with '-'.
func ScriptOfService(service string) string {
	i := strings.LastIndexByte(service, '-')
	if i <= 0 {
		return service
	}
	if suffix := service[i+1:]; (len(suffix) == 8 || len(suffix) == 32) && isHex(suffix) {
		return service[:i]
	}
	return service
}

// VersionPrefixOfService returns the version suffix of a service name
// ("" when it has none): 8 hex digits, or 32 for the builder's
// disambiguated names.
func VersionPrefixOfService(service string) string {
	i := strings.LastIndexByte(service, '-')
	if i <= 0 {
		return ""
	}
	if suffix := service[i+1:]; (len(suffix) == 8 || len(suffix) == 32) && isHex(suffix) {
		return suffix
	}
	return ""
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
