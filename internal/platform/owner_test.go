package platform

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/octohq/octo/internal/store"
)

// The D1 owner is asked with the token; a database it lacks is the store's
// not-found (so an upload binding it is refused with 7404), and only the D1
// API's paths are passed through.
func TestOwnerD1(t *testing.T) {
	var asked []string
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.Method+" "+r.URL.Path)
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[],"result":null}`)
			return
		}
		switch r.URL.Path {
		case "/client/v4/accounts/acct/d1/database/e2e-db":
			io.WriteString(w, `{"success":true,"errors":[],"messages":[],"result":{"uuid":"0b7e1f1c-2f57-4f0e-9d56-4b1b0f6a2d11","name":"e2e-db","created_at":"2026-12-05T07:00:00Z","num_tables":1}}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"success":false,"errors":[{"code":7404,"message":"The database missing could not be found"}],"messages":[],"result":null}`)
		}
	}))
	defer owner.Close()
	u, _ := url.Parse(owner.URL)
	o := &Owner{URL: u, Token: "tok"}

	db, err := o.Lookup(t.Context(), "acct", "e2e-db")
	if err != nil || db.UUID != "0b7e1f1c-2f57-4f0e-9d56-4b1b0f6a2d11" || db.Name != "e2e-db" || db.CreatedAt.IsZero() {
		t.Fatalf("Lookup = %+v, %v", db, err)
	}
	if _, err := o.Lookup(t.Context(), "acct", "missing"); !store.IsNotFound(err, store.CodeD1NotFound) {
		t.Errorf("Lookup of a missing database: %v, want the store's 7404", err)
	}
	for _, sneaky := range []string{"../../../other/d1/database/x", "..", "a/b", "x?y"} {
		if _, err := o.Lookup(t.Context(), "acct", sneaky); !store.IsNotFound(err, store.CodeD1NotFound) {
			t.Errorf("Lookup(%q): %v, want not found without asking", sneaky, err)
		}
	}
	if _, err := (&Owner{URL: u, Token: "wrong"}).Lookup(t.Context(), "acct", "e2e-db"); err == nil || store.IsNotFound(err, store.CodeD1NotFound) {
		t.Errorf("Lookup with a wrong token: %v, want an error that is not not-found", err)
	}

	local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "local") })
	front := httptest.NewServer(o.Proxy(local))
	defer front.Close()
	asked = nil
	for path, want := range map[string]string{
		"/client/v4/accounts/acct/d1/database/e2e-db": "e2e-db",
		"/client/v4/accounts/acct/d1/database":        "7404",
		"/client/v4/d1-transfers/s3cr3t":              "7404",
		"/client/v4/accounts/acct/workers/scripts":    "local",
		"/client/v4/accounts/acct/d1x":                "local",
	} {
		req, _ := http.NewRequest(http.MethodGet, front.URL+path, nil)
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), want) {
			t.Errorf("GET %s = %s, want %q", path, b, want)
		}
	}
	if len(asked) != 3 {
		t.Errorf("the owner was asked %v, want only the three D1 paths", asked)
	}
}

// The tails API and the tail WebSockets go to the owner too, with the
// client's Host; the watched feed answers the token's bearers only.
func TestOwnerTails(t *testing.T) {
	var hosts []string
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts = append(hosts, r.Host+" "+r.URL.Path)
		io.WriteString(w, "owner")
	}))
	defer owner.Close()
	u, _ := url.Parse(owner.URL)
	front := httptest.NewServer((&Owner{URL: u, Token: "tok"}).Proxy(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "local")
	})))
	defer front.Close()
	for path, want := range map[string]string{
		"/client/v4/accounts/acct/workers/scripts/hello/tails":     "owner",
		"/client/v4/accounts/acct/workers/scripts/hello/tails/abc": "owner",
		"/tail/0123abcd": "owner",
		"/client/v4/accounts/acct/workers/scripts/hello":        "local",
		"/client/v4/accounts/acct/workers/scripts/hello/tailsx": "local",
	} {
		req, _ := http.NewRequest(http.MethodGet, front.URL+path, nil)
		req.Host = "api.workers.example.com"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Errorf("GET %s = %q, want %q", path, b, want)
		}
	}
	for _, h := range hosts {
		if !strings.HasPrefix(h, "api.workers.example.com ") {
			t.Errorf("the owner saw Host %q, want the client's", h)
		}
	}

	feed := httptest.NewServer(FeedHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") }), "tok"))
	defer feed.Close()
	if resp, err := http.Get(feed.URL); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the feed without the token: %v %v, want 401", resp, err)
	}
	c := &http.Client{Transport: bearer{token: "tok", next: http.DefaultTransport}}
	if resp, err := c.Get(feed.URL); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("the feed with the token: %v %v, want 200", resp, err)
	}
}
