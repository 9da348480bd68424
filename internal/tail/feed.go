package tail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"sync/atomic"
	"time"
)

// The watched feed carries the Hub's watched set (Watched) to gateways in
// other processes. A follower long-polls GET <feed>?after=<version>; the
// answer is the set once its version is past after. Asking for the next
// version acknowledges the previous one, so the Hub knows which sets every
// follower holds: Create and Subscribe return only once the followers hold
// the set that includes the new listener (or FollowerWait passed), so the
// first request after `wrangler tail` connects is traced wherever it is
// served.

// FeedPoll is how long the feed holds a poll open when nothing changes.
const FeedPoll = 25 * time.Second

// FollowerWait bounds how long Create and Subscribe wait for the followers
// to acknowledge a new watched set.
const FollowerWait = 2 * time.Second

// followerTTL is how long a follower counts as present after its last
// poll: longer than FeedPoll.
const followerTTL = FeedPoll + 10*time.Second

// WatchedState is one answer of the feed.
type WatchedState struct {
	// Version increases with every change of the set.
	Version uint64 `json:"version"`
	// Watched lists the tailed scripts as "<account>/<script>".
	Watched []string `json:"watched"`
}

// feedState versions the watched set; guarded by the Hub's mu.
type feedState struct {
	version uint64
	// next is closed and replaced when the version changes.
	next chan struct{}
	// acked is the highest version a follower acknowledged (octo runs one
	// gateway process); ack is closed when it grows.
	acked uint64
	ack   chan struct{}
	// lastPoll is when a follower last polled (zero: never).
	lastPoll time.Time
}

// changed bumps the version and wakes the polls; it returns the version.
func (f *feedState) changed() uint64 {
	f.version++
	if f.next != nil {
		close(f.next)
	}
	f.next = make(chan struct{})
	return f.version
}

// awaitFollowers waits, up to FollowerWait, until the followers polling
// the feed acknowledged version v. Without followers it returns at once.
func (h *Hub) awaitFollowers(v uint64) {
	deadline := time.NewTimer(FollowerWait)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		f := &h.feed
		if f.lastPoll.IsZero() || h.now().Sub(f.lastPoll) > followerTTL || f.acked >= v {
			h.mu.Unlock()
			return
		}
		if f.ack == nil {
			f.ack = make(chan struct{})
		}
		ack := f.ack
		h.mu.Unlock()
		select {
		case <-ack:
		case <-deadline.C:
			h.log.Warn("the gateway did not take a new tail in time; its first requests may not be traced", "version", v)
			return
		case <-h.ctx.Done():
			return
		}
	}
}

// watchedSince acknowledges after and returns the watched set once its
// version is past after, or the current one when ctx ends first.
func (h *Hub) watchedSince(ctx context.Context, after uint64) WatchedState {
	h.mu.Lock()
	f := &h.feed
	f.lastPoll = h.now()
	if after > f.acked && after <= f.version {
		f.acked = after
		if f.ack != nil {
			close(f.ack)
			f.ack = nil
		}
	}
	if f.next == nil {
		f.next = make(chan struct{})
	}
	next := f.next
	stale := f.version == after // nothing new yet
	h.mu.Unlock()
	if stale {
		select {
		case <-next:
		case <-ctx.Done():
		case <-h.ctx.Done():
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	st := WatchedState{Version: h.feed.version}
	if w := h.watched.Load(); w != nil {
		for k := range *w {
			st.Watched = append(st.Watched, k)
		}
	}
	sort.Strings(st.Watched)
	return st
}

// FeedHandler serves the watched feed: GET ?after=<version>. Serve it only
// where the gateways alone can reach it (a unix socket of the daemon).
func (h *Hub) FeedHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		var after uint64
		if s := r.URL.Query().Get("after"); s != "" {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				http.Error(w, "after: not a version", http.StatusBadRequest)
				return
			}
			after = v
		}
		ctx, cancel := context.WithTimeout(r.Context(), FeedPoll)
		defer cancel()
		st := h.watchedSince(ctx, after)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
}

// Follower holds the watched set a Hub's feed last sent.
type Follower struct {
	set atomic.Pointer[map[string]struct{}]
}

// Follow polls the feed at url with client until ctx ends and returns the
// Follower that holds its latest set. Until the first answer, and while the
// feed cannot be reached, nothing counts as watched.
func Follow(ctx context.Context, client *http.Client, url string, log *slog.Logger) *Follower {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Follower{}
	go f.run(ctx, client, url, log)
	return f
}

func (f *Follower) run(ctx context.Context, client *http.Client, url string, log *slog.Logger) {
	var after uint64
	failing := false
	for ctx.Err() == nil {
		st, err := poll(ctx, client, url, after)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !failing {
				log.Warn("tail feed unreachable; retrying", "err", err)
			}
			failing = true
			// A restarted hub starts again from version 1.
			after = 0
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		if failing {
			log.Info("tail feed reachable again")
			failing = false
		}
		set := make(map[string]struct{}, len(st.Watched))
		for _, k := range st.Watched {
			set[k] = struct{}{}
		}
		f.set.Store(&set)
		after = st.Version
	}
}

func poll(ctx context.Context, client *http.Client, url string, after uint64) (WatchedState, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"?after="+strconv.FormatUint(after, 10), nil)
	if err != nil {
		return WatchedState{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return WatchedState{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return WatchedState{}, fmt.Errorf("tail feed: %s", resp.Status)
	}
	var st WatchedState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return WatchedState{}, fmt.Errorf("tail feed: %w", err)
	}
	if st.Version == 0 {
		return WatchedState{}, errors.New("tail feed: no version")
	}
	return st, nil
}

// Watched reports whether the feed's latest set holds account's script
// (see Hub.Watched).
func (f *Follower) Watched(account, script string) bool {
	return watchedIn(f.set.Load(), account, script)
}
