package tail

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestFeedCarriesWatchedSetBeforeCreateReturns(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := New(ctx, Options{})
	srv := httptest.NewServer(h.FeedHandler())
	defer func() { cancel(); srv.Close() }()

	f := Follow(ctx, srv.Client(), srv.URL, nil)
	waitFor(t, func() bool { return h.followed() })

	s, err := h.Create("acct", "hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Create returned: the follower must already hold the new set.
	if !f.Watched("acct", "hello") {
		t.Fatal("follower does not hold the session's script when Create returns")
	}
	if f.Watched("acct", "other") || f.Watched("other", "hello") {
		t.Fatal("follower watches scripts nobody tails")
	}

	events, stop := h.Subscribe("acct", "dash")
	_ = events
	if !f.Watched("acct", "dash") {
		t.Fatal("follower does not hold the dashboard listener's script when Subscribe returns")
	}
	stop()

	h.Delete(s.ID)
	waitFor(t, func() bool { return !f.Watched("acct", "hello") && !f.Watched("acct", "dash") })
}

func TestCreateDoesNotWaitWithoutFollowers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := New(ctx, Options{})
	start := time.Now()
	if _, err := h.Create("acct", "hello", nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > FollowerWait/2 {
		t.Fatalf("Create waited %v with nobody following", d)
	}
	if !h.Watched("acct", "hello") {
		t.Fatal("hub does not watch the script")
	}
}

func TestFeedRefusesBadVersionAndMethod(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := New(ctx, Options{})
	srv := httptest.NewServer(h.FeedHandler())
	defer func() { cancel(); srv.Close() }()
	resp, err := http.Get(srv.URL + "?after=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("after=x: %s, want 400", resp.Status)
	}
	resp, err = http.Post(srv.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %s, want 405", resp.Status)
	}
	// A follower ahead of the hub (the hub restarted) gets the set at once.
	st, err := poll(ctx, srv.Client(), srv.URL, 1000)
	if err != nil || st.Version != 1 || len(st.Watched) != 0 {
		t.Fatalf("poll after=1000: %+v, %v; want version 1, empty", st, err)
	}
}

// followed reports whether a follower has polled the feed.
func (h *Hub) followed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.feed.lastPoll.IsZero()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
