package tail

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// quiet fails when ch delivers an event within a short wait.
func quiet(t *testing.T, name string, ch <-chan Event) {
	t.Helper()
	select {
	case ev := <-ch:
		t.Fatalf("%s received an event: %+v", name, ev)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestCollectNeverCrossesAccounts: the trace items a pod posts reach only
// its own account's listeners, whatever service it names.
func TestCollectNeverCrossesAccounts(t *testing.T) {
	env := newEnv(t)
	acct1, cancel1 := env.hub.Subscribe("acct1", "hello")
	defer cancel1()
	acct2, cancel2 := env.hub.Subscribe("acct2", "hello")
	defer cancel2()

	// acct2's pods post for acct1's service: refused, nothing published.
	if code := env.postStatus("acct2", "acct1-hello-v1", "", traceItem("ok", "GET", "forged")); code != http.StatusForbidden {
		t.Fatalf("another account's service: %d, want 403", code)
	}
	quiet(t, "acct1", acct1)
	quiet(t, "acct2", acct2)

	// An unresolved service of a script both accounts have: only the
	// poster's listeners get it.
	env.post("acct2", "hello-0a1b2c3d", "", traceItem("ok", "GET", "mine"))
	select {
	case ev := <-acct2:
		if ev.Account != "acct2" || ev.ScriptName != "hello" {
			t.Fatalf("acct2 got %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("acct2 got nothing")
	}
	quiet(t, "acct1", acct1)

	// No account: refused.
	if code := env.postStatus("", "hello-0a1b2c3d", "", traceItem("ok", "GET", "anonymous")); code != http.StatusForbidden {
		t.Fatalf("no account: %d, want 403", code)
	}
	quiet(t, "acct1", acct1)
	quiet(t, "acct2", acct2)

	// The owner still posts its own.
	env.post("acct1", "acct1-hello-v1", "", traceItem("ok", "GET", "own"))
	select {
	case ev := <-acct1:
		if ev.Account != "acct1" {
			t.Fatalf("acct1 got %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("acct1 got nothing")
	}
	quiet(t, "acct2", acct2)
}

// countingReader yields n zero bytes and counts what was read.
type countingReader struct {
	n, read int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.read >= c.n {
		return 0, io.EOF
	}
	k := min(int64(len(p)), c.n-c.read)
	clear(p[:k])
	c.read += k
	return int(k), nil
}

// TestCollectBodyLimit: an oversized batch is refused with 413, without
// reading it when its length is declared and without reading past the
// limit when it is not.
func TestCollectBodyLimit(t *testing.T) {
	env := newEnv(t)
	_, cancel := env.hub.Subscribe("acct1", "hello")
	defer cancel()
	for _, declared := range []bool{true, false} {
		body := &countingReader{n: 3 * maxCollectBody}
		req := httptest.NewRequest(http.MethodPost, "/tail/acct1-hello-v1", body)
		req.ContentLength = -1
		if declared {
			req.ContentLength = body.n
		}
		rec := httptest.NewRecorder()
		env.hub.Collect(rec, req, "acct1")
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("declared=%v: status %d, want 413: %s", declared, rec.Code, rec.Body)
		}
		if declared && body.read != 0 {
			t.Fatalf("read %d bytes of a body declared too large", body.read)
		}
		if body.read > maxCollectBody+64<<10 {
			t.Fatalf("declared=%v: read %d bytes, limit %d", declared, body.read, maxCollectBody)
		}
	}
	// Within the limit, it is read and parsed.
	b, _ := json.Marshal([]any{traceItem("ok", "GET", "fits")})
	rec := httptest.NewRecorder()
	env.hub.Collect(rec, httptest.NewRequest(http.MethodPost, "/tail/acct1-hello-v1", bytes.NewReader(b)), "acct1")
	if rec.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
}
