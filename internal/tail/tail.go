// Package tail streams a Worker's trace events to `wrangler tail` and the
// dashboard.
//
// A tail session is created through the API (POST …/scripts/:name/tails),
// then wrangler opens a WebSocket (subprotocol trace-v1) on GET /tail/<id>
// of the edge port. Each worker's workerd tail handler (the "octo-tail"
// worker) POSTs the JSON array of its trace items to the collector,
// POST /tail/<service name>, on the pod-facing listener; the Hub maps them to
// wrangler's event shape and fans them out to the live sessions of the
// script. Sessions expire on their own: wrangler does not delete its tail
// when interrupted.
package tail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	randv2 "math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultTTL is how long a session lives unless deleted.
const DefaultTTL = time.Hour

// Default caps of live sessions: Cloudflare lets 10 clients tail a Worker
// at once; the account cap bounds what one account holds in memory.
const (
	DefaultMaxPerScript  = 10
	DefaultMaxPerAccount = 100
)

// LimitError refuses a session over a cap of live sessions.
type LimitError struct {
	// Script is the script whose cap is reached; empty for the account's.
	Script string
	Limit  int
}

func (e *LimitError) Error() string {
	if e.Script != "" {
		return fmt.Sprintf("too many tails of Worker %s: at most %d may be open at once; stop another `wrangler tail` (or wait for it to expire)", e.Script, e.Limit)
	}
	return fmt.Sprintf("too many tails in this account: at most %d may be open at once", e.Limit)
}

// maxListenersPerSession bounds the WebSockets attached to one session
// (`wrangler tail` opens one, and another when it reconnects).
const maxListenersPerSession = 4

// subscriberBuffer is how many events may wait for a slow listener before
// newer ones are dropped (the collector never blocks on a listener).
const subscriberBuffer = 256

// Session is one tail, as the API returns it.
type Session struct {
	ID        string
	Account   string
	Script    string
	CreatedAt time.Time
	ExpiresAt time.Time
	// Filters is the filter JSON the session was created with.
	Filters json.RawMessage
}

// ResolveFunc maps the name of a workerd service (chosen by the builder) to
// the account, script and version it runs.
type ResolveFunc func(service string) (account, script, versionID string, ok bool)

// Options configure a Hub.
type Options struct {
	// Resolve maps the collector's service name to a script. When nil or
	// when it fails, the collector takes the script from the service name
	// (ScriptOfService) and delivers to sessions of that script name in
	// every account, without a version.
	Resolve ResolveFunc
	// TTL is the lifetime of a session; 0 means DefaultTTL.
	TTL time.Duration
	// Sweep is how often expired sessions are removed; 0 means a minute.
	// Expired sessions are invisible at once regardless.
	Sweep time.Duration
	// MaxPerScript and MaxPerAccount cap the live sessions of a script and
	// of an account; 0 or less means DefaultMaxPerScript and
	// DefaultMaxPerAccount.
	MaxPerScript  int
	MaxPerAccount int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Sample returns a number in [0,1) for sampling_rate; nil means
	// math/rand/v2.
	Sample func() float64
	// Logs keeps the invocations of the scripts whose logs are enabled
	// (Workers Logs), whether or not someone tails them; nil: none.
	Logs Sink
	Log  *slog.Logger
}

// Sink keeps the invocations of the scripts whose logs are enabled.
type Sink interface {
	// Logged reports whether account's script keeps its logs.
	Logged(account, script string) bool
	// Keep stores one invocation.
	Keep(ev Event) error
}

// Hub holds the tail sessions and their listeners.
type Hub struct {
	ctx        context.Context
	resolve    ResolveFunc
	ttl        time.Duration
	now        func() time.Time
	sample     func() float64
	logs       Sink
	log        *slog.Logger
	maxScript  int
	maxAccount int

	mu       sync.Mutex
	sessions map[string]*session
	// subs are the listeners by account/script key.
	subs map[string]map[*subscriber]struct{}
	// watched is the set of account/script keys with a session or a
	// listener, rebuilt under mu at every change and read without it: the
	// gateway asks for every request.
	watched atomic.Pointer[map[string]struct{}]
	// feed versions the watched set for gateways in other processes
	// (feed.go); guarded by mu.
	feed feedState
}

type session struct {
	Session
	filters filters
	// conns are the WebSocket listeners attached to the session.
	conns map[*subscriber]struct{}
}

// subscriber is one listener: a WebSocket of a session, or a Subscribe
// caller.
type subscriber struct {
	key     string
	filters *filters
	ch      chan Event
	done    chan struct{} // closed when the session ends
	reason  string        // why, for the close frame
	once    sync.Once
}

// Reasons a listener ends, sent in the close frame.
const (
	reasonDeleted  = "tail deleted"
	reasonExpired  = "tail expired"
	reasonShutdown = "server shutting down"
)

func (s *subscriber) end(reason string) {
	s.once.Do(func() {
		s.reason = reason
		close(s.done)
	})
}

// New returns a Hub whose sweeper and connections end with ctx.
func New(ctx context.Context, opts Options) *Hub {
	h := &Hub{
		ctx:        ctx,
		resolve:    opts.Resolve,
		ttl:        opts.TTL,
		now:        opts.Now,
		sample:     opts.Sample,
		logs:       opts.Logs,
		log:        opts.Log,
		maxScript:  opts.MaxPerScript,
		maxAccount: opts.MaxPerAccount,
		sessions:   map[string]*session{},
		subs:       map[string]map[*subscriber]struct{}{},
	}
	if h.ttl <= 0 {
		h.ttl = DefaultTTL
	}
	if h.maxScript <= 0 {
		h.maxScript = DefaultMaxPerScript
	}
	if h.maxAccount <= 0 {
		h.maxAccount = DefaultMaxPerAccount
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.sample == nil {
		h.sample = randv2.Float64
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	sweep := opts.Sweep
	if sweep <= 0 {
		sweep = time.Minute
	}
	h.rewatchLocked() // version 1: the empty set
	go h.sweepLoop(sweep)
	return h
}

func key(account, script string) string { return account + "/" + script }

// Create starts a session for a script; filters is the body wrangler sent
// ({"filters":[...]}) or the bare array, parsed leniently. Over a cap of
// live sessions it answers a *LimitError.
func (h *Hub) Create(account, script string, rawFilters json.RawMessage) (Session, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Session{}, err
	}
	now := h.now()
	s := &session{
		Session: Session{
			ID: hex.EncodeToString(b[:]), Account: account, Script: script,
			CreatedAt: now, ExpiresAt: now.Add(h.ttl), Filters: append(json.RawMessage(nil), rawFilters...),
		},
		filters: parseFilters(rawFilters),
		conns:   map[*subscriber]struct{}{},
	}
	h.mu.Lock()
	if err := h.checkCapsLocked(account, script); err != nil {
		h.mu.Unlock()
		return Session{}, err
	}
	h.sessions[s.ID] = s
	v := h.rewatchLocked()
	h.mu.Unlock()
	h.awaitFollowers(v)
	h.log.Debug("tail created", "id", s.ID, "script", script)
	return s.Session, nil
}

// checkCapsLocked refuses one more session of account's script over a cap;
// expired sessions not swept yet do not count. h.mu is held.
func (h *Hub) checkCapsLocked(account, script string) error {
	perScript, perAccount := 0, 0
	now := h.now()
	for _, s := range h.sessions {
		if s.Account != account || !now.Before(s.ExpiresAt) {
			continue
		}
		perAccount++
		if s.Script == script {
			perScript++
		}
	}
	if perScript >= h.maxScript {
		return &LimitError{Script: script, Limit: h.maxScript}
	}
	if perAccount >= h.maxAccount {
		return &LimitError{Limit: h.maxAccount}
	}
	return nil
}

// Get returns a live session.
func (h *Hub) Get(id string) (Session, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.live(id)
	if !ok {
		return Session{}, false
	}
	return s.Session, true
}

// live returns a session that has not expired; h.mu is held.
func (h *Hub) live(id string) (*session, bool) {
	s, ok := h.sessions[id]
	if !ok || !h.now().Before(s.ExpiresAt) {
		return nil, false
	}
	return s, true
}

// List returns the live sessions of a script, oldest first.
func (h *Hub) List(account, script string) []Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []Session{}
	for id, s := range h.sessions {
		if _, ok := h.live(id); ok && s.Account == account && s.Script == script {
			out = append(out, s.Session)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

// Delete ends a session and closes its WebSockets; false if it did not
// exist.
func (h *Hub) Delete(id string) bool {
	h.mu.Lock()
	s, ok := h.sessions[id]
	if ok {
		h.removeLocked(s, reasonDeleted)
	}
	h.mu.Unlock()
	return ok
}

// removeLocked drops a session and ends its listeners; h.mu is held.
func (h *Hub) removeLocked(s *session, reason string) {
	delete(h.sessions, s.ID)
	defer h.rewatchLocked()
	for sub := range s.conns {
		h.unsubscribeLocked(sub)
		sub.end(reason)
	}
}

func (h *Hub) sweepLoop(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			h.mu.Lock()
			for _, s := range h.sessions {
				h.removeLocked(s, reasonShutdown)
			}
			for k, set := range h.subs {
				for sub := range set {
					sub.end(reasonShutdown)
				}
				delete(h.subs, k)
			}
			h.mu.Unlock()
			return
		case <-t.C:
			h.Sweep()
		}
	}
}

// Sweep removes the expired sessions and closes their WebSockets.
func (h *Hub) Sweep() {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	for _, s := range h.sessions {
		if !now.Before(s.ExpiresAt) {
			h.log.Debug("tail expired", "id", s.ID, "script", s.Script)
			h.removeLocked(s, reasonExpired)
		}
	}
}

// Subscribe returns every event of a script (no filters) until cancel is
// called or the hub stops; the channel is closed then. Events are dropped
// when the reader falls behind.
func (h *Hub) Subscribe(account, script string) (<-chan Event, func()) {
	sub, v := h.addSubscriber(account, script, nil)
	h.awaitFollowers(v)
	out := make(chan Event)
	go func() {
		defer close(out)
		for {
			select {
			case ev := <-sub.ch:
				select {
				case out <- ev:
				case <-sub.done:
					return
				}
			case <-sub.done:
				return
			}
		}
	}()
	return out, func() {
		h.mu.Lock()
		h.unsubscribeLocked(sub)
		h.mu.Unlock()
		sub.end("unsubscribed")
	}
}

// addSubscriber adds a listener and returns it with the watched set's
// version that includes it (see awaitFollowers).
func (h *Hub) addSubscriber(account, script string, f *filters) (*subscriber, uint64) {
	sub := &subscriber{key: key(account, script), filters: f, ch: make(chan Event, subscriberBuffer), done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx.Err() != nil {
		sub.end(reasonShutdown)
		return sub, 0
	}
	set := h.subs[sub.key]
	if set == nil {
		set = map[*subscriber]struct{}{}
		h.subs[sub.key] = set
	}
	set[sub] = struct{}{}
	return sub, h.rewatchLocked()
}

func (h *Hub) unsubscribeLocked(sub *subscriber) {
	if set := h.subs[sub.key]; set != nil {
		delete(set, sub)
		if len(set) == 0 {
			delete(h.subs, sub.key)
		}
	}
	h.rewatchLocked()
}

// rewatchLocked rebuilds the watched set from the sessions and listeners
// and returns its version, which changes only when the set does.
func (h *Hub) rewatchLocked() uint64 {
	w := make(map[string]struct{}, len(h.sessions)+len(h.subs))
	for _, s := range h.sessions {
		w[key(s.Account, s.Script)] = struct{}{}
	}
	for k := range h.subs {
		w[k] = struct{}{}
	}
	if old := h.watched.Load(); old != nil && sameKeys(*old, w) {
		return h.feed.version
	}
	h.watched.Store(&w)
	return h.feed.changed()
}

func sameKeys(a, b map[string]struct{}) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// Watched reports whether anyone tails account's script: a `wrangler tail`
// session exists (from its creation, before its WebSocket connects) or the
// dashboard listens. The gateway asks for every request, so it takes no
// lock. Only then do the script's trace events leave its pod.
func (h *Hub) Watched(account, script string) bool {
	return watchedIn(h.watched.Load(), account, script)
}

// watchedIn reports whether the set w (nil: empty) holds account's script.
func watchedIn(w *map[string]struct{}, account, script string) bool {
	if w == nil {
		return false
	}
	_, ok := (*w)[key(account, script)]
	return ok
}

// attach adds a WebSocket listener to a live session.
func (h *Hub) attach(id string) (*subscriber, Session, error) {
	h.mu.Lock()
	s, ok := h.live(id)
	h.mu.Unlock()
	if !ok {
		return nil, Session{}, errNoSession
	}
	sub, _ := h.addSubscriber(s.Account, s.Script, &s.filters)
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.live(id); !ok {
		h.unsubscribeLocked(sub)
		return nil, Session{}, errNoSession
	}
	if len(s.conns) >= maxListenersPerSession {
		h.unsubscribeLocked(sub)
		return nil, Session{}, fmt.Errorf("tail session %s already has %d listeners", id, maxListenersPerSession)
	}
	s.conns[sub] = struct{}{}
	return sub, s.Session, nil
}

// detach removes a WebSocket listener.
func (h *Hub) detach(id string, sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.unsubscribeLocked(sub)
	if s, ok := h.sessions[id]; ok {
		delete(s.conns, sub)
	}
}

var errNoSession = errors.New("no such tail session (expired or deleted)")

// listening reports whether anyone listens to any script.
func (h *Hub) listening() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}

// Publish delivers an event of account's script to its listeners; an empty
// account reaches the script's listeners in every account. It returns how
// many listeners took it.
func (h *Hub) Publish(ev Event) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	var sets []map[*subscriber]struct{}
	if ev.Account != "" {
		sets = append(sets, h.subs[key(ev.Account, ev.ScriptName)])
	} else {
		// Account IDs hold no "/": the suffix names exactly the script.
		for k, set := range h.subs {
			if strings.HasSuffix(k, "/"+ev.ScriptName) {
				sets = append(sets, set)
			}
		}
	}
	n := 0
	for _, set := range sets {
		for sub := range set {
			if sub.filters != nil {
				if !sub.filters.match(&ev) {
					continue
				}
				if sub.filters.sampling < 1 && h.sample() >= sub.filters.sampling {
					continue
				}
			}
			select {
			case sub.ch <- ev:
				n++
			default:
				// the listener is behind: drop rather than block the worker
			}
		}
	}
	return n
}
