package tail

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestSessionCaps(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	hub := New(ctx, Options{Now: c.now, MaxPerAccount: 15})

	var first Session
	for i := range DefaultMaxPerScript {
		s, err := hub.Create("acct1", "hello", nil)
		if err != nil {
			t.Fatalf("session %d: %v", i+1, err)
		}
		if i == 0 {
			first = s
		}
	}
	// The 11th tail of a script is refused.
	_, err := hub.Create("acct1", "hello", nil)
	var le *LimitError
	if !errors.As(err, &le) || le.Script != "hello" || le.Limit != DefaultMaxPerScript {
		t.Fatalf("11th session = %v, want a LimitError for hello", err)
	}
	if n := len(hub.List("acct1", "hello")); n != DefaultMaxPerScript {
		t.Fatalf("%d sessions after the refusal", n)
	}
	// Another account is not affected; a deleted session frees its place.
	if _, err := hub.Create("acct2", "hello", nil); err != nil {
		t.Fatal(err)
	}
	hub.Delete(first.ID)
	if _, err := hub.Create("acct1", "hello", nil); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
	// The account's cap counts every script.
	for i := range 5 {
		if _, err := hub.Create("acct1", fmt.Sprintf("s%d", i), nil); err != nil {
			t.Fatalf("account session %d: %v", DefaultMaxPerScript+i+1, err)
		}
	}
	if _, err := hub.Create("acct1", "other", nil); !errors.As(err, &le) || le.Script != "" || le.Limit != 15 {
		t.Fatalf("16th session of the account = %v, want the account's LimitError", err)
	}
	// Expired sessions do not count, swept or not.
	c.advance(DefaultTTL)
	if _, err := hub.Create("acct1", "hello", nil); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

func TestListenersPerSessionCap(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hub := New(ctx, Options{})
	s, err := hub.Create("acct1", "hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxListenersPerSession {
		if _, _, err := hub.attach(s.ID); err != nil {
			t.Fatalf("listener %d: %v", i+1, err)
		}
	}
	if _, _, err := hub.attach(s.ID); err == nil {
		t.Fatal("one listener too many attached")
	}
	hub.mu.Lock()
	n := len(hub.subs["acct1/hello"])
	hub.mu.Unlock()
	if n != maxListenersPerSession {
		t.Fatalf("%d subscribers, want %d", n, maxListenersPerSession)
	}
}
