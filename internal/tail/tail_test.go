package tail

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/octohq/octo/internal/workerd"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type env struct {
	t     *testing.T
	hub   *Hub
	clock *clock
	edge  *httptest.Server // GET /tail/:id through echo, as on the edge
	pods  *httptest.Server // the collector
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	hub := New(ctx, Options{
		Now: c.now,
		Resolve: func(service string) (string, string, string, bool) {
			if service == "acct1-hello-v1" {
				return "acct1", "hello", "11111111-1111-4111-8111-111111111111", true
			}
			return "", "", "", false
		},
	})
	e := echo.New()
	hub.Register(e)
	edge := httptest.NewServer(e)
	mux := http.NewServeMux()
	// As the pod API calls it once it has authenticated the account.
	mux.HandleFunc("POST "+Path, func(w http.ResponseWriter, r *http.Request) {
		hub.Collect(w, r, r.Header.Get(workerd.AccountHeader))
	})
	pods := httptest.NewServer(mux)
	t.Cleanup(func() {
		cancel()
		edge.Close()
		pods.Close()
	})
	return &env{t: t, hub: hub, clock: c, edge: edge, pods: pods}
}

// client is a WebSocket client that behaves like wrangler's: its first
// frame is unmasked, its pings are masked.
type client struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	resp *http.Response
}

func (env *env) dial(id string, protocols ...string) *client {
	env.t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(env.edge.URL, "http://"))
	if err != nil {
		env.t.Fatal(err)
	}
	env.t.Cleanup(func() { conn.Close() })
	key := "dGhlIHNhbXBsZSBub25jZQ=="
	var req strings.Builder
	req.WriteString("GET /tail/" + id + " HTTP/1.1\r\nHost: " + strings.TrimPrefix(env.edge.URL, "http://") + "\r\n")
	req.WriteString("Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n")
	req.WriteString("Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")
	req.WriteString("User-Agent: wrangler/4.86.0\r\n")
	for _, p := range protocols {
		req.WriteString("Sec-WebSocket-Protocol: " + p + "\r\n")
	}
	req.WriteString("\r\n")
	if _, err := conn.Write([]byte(req.String())); err != nil {
		env.t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		env.t.Fatal(err)
	}
	return &client{t: env.t, conn: conn, br: br, resp: resp}
}

func clientFrame(opcode byte, payload []byte, mask bool) []byte {
	b := []byte{0x80 | opcode}
	m := byte(0)
	if mask {
		m = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, m|byte(n))
	case n <= 0xFFFF:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !mask {
		return append(b, payload...)
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

func (c *client) send(opcode byte, payload []byte, mask bool) {
	c.t.Helper()
	if _, err := c.conn.Write(clientFrame(opcode, payload, mask)); err != nil {
		c.t.Fatal(err)
	}
}

// next reads the next server frame, skipping server pings.
func (c *client) next() frame {
	c.t.Helper()
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		f, err := readFrame(c.br, 1<<24)
		if err != nil {
			c.t.Fatalf("read frame: %v", err)
		}
		if f.opcode != opPing {
			return f
		}
	}
}

// post sends trace items as the tail worker of account's pods does.
func (env *env) post(account, service, script string, items ...map[string]any) {
	env.t.Helper()
	if code := env.postStatus(account, service, script, items...); code != http.StatusNoContent {
		env.t.Fatalf("collector answered %d", code)
	}
}

// postStatus is post, returning the collector's status.
func (env *env) postStatus(account, service, script string, items ...map[string]any) int {
	env.t.Helper()
	b, _ := json.Marshal(items)
	req, _ := http.NewRequest(http.MethodPost, env.pods.URL+"/tail/"+service, bytes.NewReader(b))
	if script != "" {
		req.Header.Set(workerd.TailHeader, script)
	}
	req.Header.Set(workerd.AccountHeader, account)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		env.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func traceItem(outcome, method, msg string) map[string]any {
	return map[string]any{
		"scriptName": "workerd-service-name", "outcome": outcome, "eventTimestamp": 1795654114048,
		"cpuTime": 1, "wallTime": 3, "truncated": false, "executionModel": "stateless",
		"event": map[string]any{
			"request":  map[string]any{"url": "http://hello.octo.workers.localhost:8787/", "method": method, "headers": map[string]string{"user-agent": "curl", "x-foo": "barbaz"}},
			"response": map[string]any{"status": 200},
		},
		"logs":                     []any{map[string]any{"message": []any{msg, 42}, "level": "log", "timestamp": 1795654114049}},
		"exceptions":               []any{},
		"diagnosticsChannelEvents": []any{},
	}
}

func TestHandshakeAndKeepAlive(t *testing.T) {
	env := newEnv(t)
	s, err := env.hub.Create("acct1", "hello", json.RawMessage(`{"filters":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	c := env.dial(s.ID, "trace-v1")
	if c.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", c.resp.StatusCode)
	}
	if got := c.resp.Header.Get("Sec-WebSocket-Protocol"); got != "trace-v1" {
		t.Fatalf("subprotocol %q, want trace-v1", got)
	}
	// RFC 6455's example key and accept value.
	if got := c.resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("accept %q", got)
	}
	if c.resp.Header.Get("Sec-WebSocket-Extensions") != "" {
		t.Fatal("deflate must not be negotiated")
	}
	// wrangler's first frame is unmasked.
	c.send(opText, []byte(`{"debug":false}`), false)
	c.send(opPing, []byte("wrangler tail ping"), true)
	f := c.next()
	if f.opcode != opPong || string(f.payload) != "wrangler tail ping" {
		t.Fatalf("got opcode %#x payload %q, want a pong echoing the ping", f.opcode, f.payload)
	}
	// An unmasked ping too.
	c.send(opPing, []byte("x"), false)
	if f := c.next(); f.opcode != opPong || string(f.payload) != "x" {
		t.Fatalf("got %#x %q", f.opcode, f.payload)
	}
	// Client close → server close echo.
	c.send(opClose, closePayload(closeNormal, ""), true)
	if f := c.next(); f.opcode != opClose || binary.BigEndian.Uint16(f.payload) != closeNormal {
		t.Fatalf("got %#x %v, want close 1000", f.opcode, f.payload)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	env := newEnv(t)
	s, _ := env.hub.Create("acct1", "hello", nil)
	resp, err := http.Get(env.edge.URL + "/tail/" + s.ID)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET: %d", resp.StatusCode)
	}
	if c := env.dial("0123456789abcdef0123456789abcdef", "trace-v1"); c.resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown id: %d", c.resp.StatusCode)
	}
	// No subprotocol asked: none answered.
	if c := env.dial(s.ID); c.resp.StatusCode != 101 || c.resp.Header.Get("Sec-WebSocket-Protocol") != "" {
		t.Fatalf("no protocol: %d %q", c.resp.StatusCode, c.resp.Header.Get("Sec-WebSocket-Protocol"))
	}
}

func TestEventsFanOut(t *testing.T) {
	env := newEnv(t)
	s1, _ := env.hub.Create("acct1", "hello", json.RawMessage(`{"filters":[]}`))
	s2, _ := env.hub.Create("acct1", "hello", json.RawMessage(`{"filters":[{"outcome":["exception"]}]}`))
	other, _ := env.hub.Create("acct2", "hello", nil)
	c1, c2, c3 := env.dial(s1.ID, "trace-v1"), env.dial(s2.ID, "trace-v1"), env.dial(other.ID, "trace-v1")
	for _, c := range []*client{c1, c2, c3} {
		c.send(opText, []byte(`{"debug":false}`), false)
	}
	dashboard, cancel := env.hub.Subscribe("acct1", "hello")
	defer cancel()

	env.post("acct1", "acct1-hello-v1", "", traceItem("ok", "GET", "hello from tail"))
	env.post("acct1", "acct1-hello-v1", "", traceItem("exception", "POST", "boom"))

	f := c1.next()
	if f.opcode != opText {
		t.Fatalf("opcode %#x", f.opcode)
	}
	var ev map[string]any
	if err := json.Unmarshal(f.payload, &ev); err != nil {
		t.Fatal(err)
	}
	if ev["scriptName"] != "hello" || ev["outcome"] != "ok" || ev["executionModel"] != "stateless" || ev["truncated"] != false {
		t.Fatalf("event %s", f.payload)
	}
	if sv, _ := ev["scriptVersion"].(map[string]any); sv["id"] != "11111111-1111-4111-8111-111111111111" {
		t.Fatalf("scriptVersion %v", ev["scriptVersion"])
	}
	req := ev["event"].(map[string]any)["request"].(map[string]any)
	if req["method"] != "GET" || req["url"] == "" || req["cf"] == nil {
		t.Fatalf("request %v", req)
	}
	logs := ev["logs"].([]any)
	if msg := logs[0].(map[string]any)["message"].([]any); msg[0] != "hello from tail" {
		t.Fatalf("logs %v", logs)
	}
	for _, k := range []string{"wallTime", "cpuTime", "eventTimestamp", "exceptions", "diagnosticsChannelEvents"} {
		if _, ok := ev[k]; !ok {
			t.Fatalf("missing %s in %s", k, f.payload)
		}
	}
	if f := c1.next(); !strings.Contains(string(f.payload), `"outcome":"exception"`) {
		t.Fatalf("second event %s", f.payload)
	}
	// The filtered session only sees the exception.
	if f := c2.next(); !strings.Contains(string(f.payload), `"outcome":"exception"`) {
		t.Fatalf("filtered session got %s", f.payload)
	}
	for range 2 {
		select {
		case ev := <-dashboard:
			if ev.ScriptName != "hello" || ev.Account != "acct1" {
				t.Fatalf("dashboard %+v", ev)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("dashboard got nothing")
		}
	}
	// acct2's session of a script with the same name got nothing: a ping
	// still answers at once and no text frame precedes it.
	c3.send(opPing, []byte("p"), true)
	if f := c3.next(); f.opcode != opPong {
		t.Fatalf("other account received %#x %s", f.opcode, f.payload)
	}
}

func TestUnresolvedServiceName(t *testing.T) {
	env := newEnv(t)
	s, _ := env.hub.Create("acctX", "fall-back", nil)
	c := env.dial(s.ID, "trace-v1")
	c.send(opText, []byte(`{"debug":false}`), false)
	// As the octo-tail worker posts: the service name in the path and in
	// x-octo-script.
	env.post("acctX", "fall-back-0a1b2c3d", "fall-back-0a1b2c3d", traceItem("ok", "GET", "hi"))
	if f := c.next(); !strings.Contains(string(f.payload), `"scriptName":"fall-back"`) {
		t.Fatalf("got %s", f.payload)
	}
	for svc, want := range map[string]string{
		"hello-83a49508": "hello", "hello-world-83a49508": "hello-world", "hello": "hello",
		"a-0123456789abcdef0123456789abcdef": "a", "hello-8x3a4950": "hello-8x3a4950", "-83a49508": "-83a49508",
	} {
		if got := ScriptOfService(svc); got != want {
			t.Errorf("ScriptOfService(%q) = %q, want %q", svc, got, want)
		}
	}
	if p := VersionPrefixOfService("hello-83a49508"); p != "83a49508" {
		t.Errorf("prefix %q", p)
	}
}

func TestCollectorWithoutListeners(t *testing.T) {
	env := newEnv(t)
	// Nobody listens: even a malformed body is accepted and dropped.
	req, _ := http.NewRequest(http.MethodPost, env.pods.URL+"/tail/x-0a1b2c3d", strings.NewReader("not json"))
	req.Header.Set(workerd.AccountHeader, "acct1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestFilters(t *testing.T) {
	ev, err := FromTraceItem(mustJSON(traceItem("ok", "GET", "needle in log")), "a", "s", "v")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		filters string
		want    bool
	}{
		{`{"filters":[]}`, true},
		{``, true},
		{`not json`, true},
		{`{"filters":[{"outcome":["ok"]}]}`, true},
		{`{"filters":[{"outcome":["exception","exceededCpu"]}]}`, false},
		{`{"filters":[{"method":["get"]}]}`, true},
		{`{"filters":[{"method":["POST"]}]}`, false},
		{`{"filters":[{"query":"needle"}]}`, true},
		{`{"filters":[{"query":"haystack"}]}`, false},
		{`{"filters":[{"header":{"key":"X-Foo","query":"bar"}}]}`, true},
		{`{"filters":[{"header":{"key":"x-foo","query":"qux"}}]}`, false},
		{`{"filters":[{"header":{"key":"x-missing"}}]}`, false},
		{`{"filters":[{"client_ip":["self"]}]}`, true},
		{`{"filters":[{"scriptVersion":"v"}]}`, true},
		{`{"filters":[{"scriptVersion":"w"}]}`, false},
		{`[{"outcome":["ok"]},{"method":["GET"]}]`, true},
	}
	for _, tc := range cases {
		f := parseFilters(json.RawMessage(tc.filters))
		if got := f.match(&ev); got != tc.want {
			t.Errorf("%s: match=%v, want %v", tc.filters, got, tc.want)
		}
	}
	if f := parseFilters(json.RawMessage(`{"filters":[{"sampling_rate":0.25}]}`)); f.sampling != 0.25 {
		t.Errorf("sampling %v", f.sampling)
	}
}

func TestSampling(t *testing.T) {
	env := newEnv(t)
	env.hub.sample = func() float64 { return 0.9 }
	s, _ := env.hub.Create("acct1", "hello", json.RawMessage(`{"filters":[{"sampling_rate":0.5}]}`))
	sub, _, err := env.hub.attach(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	ev := Event{Account: "acct1", ScriptName: "hello", Outcome: "ok"}
	if n := env.hub.Publish(ev); n != 0 {
		t.Fatalf("sampled-out event delivered to %d", n)
	}
	env.hub.sample = func() float64 { return 0.1 }
	if n := env.hub.Publish(ev); n != 1 {
		t.Fatalf("sampled-in event delivered to %d", n)
	}
	env.hub.detach(s.ID, sub)
}

func TestExpiryAndDelete(t *testing.T) {
	env := newEnv(t)
	s, _ := env.hub.Create("acct1", "hello", nil)
	if !s.ExpiresAt.Equal(env.clock.now().Add(DefaultTTL)) {
		t.Fatalf("expires %v", s.ExpiresAt)
	}
	c := env.dial(s.ID, "trace-v1")
	c.send(opText, []byte(`{"debug":false}`), false)
	if got := env.hub.List("acct1", "hello"); len(got) != 1 || got[0].ID != s.ID {
		t.Fatalf("list %v", got)
	}
	env.clock.advance(DefaultTTL - time.Second)
	env.hub.Sweep()
	if _, ok := env.hub.Get(s.ID); !ok {
		t.Fatal("expired early")
	}
	env.clock.advance(time.Second)
	if _, ok := env.hub.Get(s.ID); ok {
		t.Fatal("expired session still visible")
	}
	env.hub.Sweep()
	f := c.next()
	if f.opcode != opClose || binary.BigEndian.Uint16(f.payload) != closeNormal || string(f.payload[2:]) != reasonExpired {
		t.Fatalf("got %#x %q, want close 1000 %q", f.opcode, f.payload, reasonExpired)
	}
	c.send(opClose, closePayload(closeNormal, ""), true)
	if len(env.hub.List("acct1", "hello")) != 0 {
		t.Fatal("expired session listed")
	}

	s2, _ := env.hub.Create("acct1", "hello", nil)
	c2 := env.dial(s2.ID, "trace-v1")
	c2.send(opText, []byte(`{"debug":false}`), false)
	// Give the server a moment to attach before deleting.
	c2.send(opPing, []byte("p"), true)
	c2.next()
	if !env.hub.Delete(s2.ID) {
		t.Fatal("delete")
	}
	if f := c2.next(); f.opcode != opClose || string(f.payload[2:]) != reasonDeleted {
		t.Fatalf("got %#x %q", f.opcode, f.payload)
	}
	if env.hub.Delete(s2.ID) {
		t.Fatal("second delete found the session")
	}
}

func TestSweeperRunsOnItsOwn(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &clock{t: time.Unix(0, 0)}
	hub := New(ctx, Options{Now: c.now, TTL: time.Minute, Sweep: 10 * time.Millisecond})
	s, _ := hub.Create("a", "s", nil)
	c.advance(2 * time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for {
		hub.mu.Lock()
		_, present := hub.sessions[s.ID]
		hub.mu.Unlock()
		if !present {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the sweeper did not remove the expired session")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFrameCodec(t *testing.T) {
	for _, n := range []int{0, 5, 125, 126, 1000, 65535, 65536, 70000} {
		payload := bytes.Repeat([]byte{'a'}, n)
		for _, mask := range []bool{false, true} {
			f, err := readFrame(bytes.NewReader(clientFrame(opText, payload, mask)), maxMessage)
			if err != nil || !bytes.Equal(f.payload, payload) || !f.fin || f.opcode != opText {
				t.Fatalf("n=%d mask=%v: %v", n, mask, err)
			}
		}
		// Server frames read back.
		f, err := readFrame(bytes.NewReader(appendFrame(nil, opBinary, payload)), maxMessage)
		if err != nil || len(f.payload) != n {
			t.Fatalf("server frame n=%d: %v", n, err)
		}
	}
	if _, err := readFrame(bytes.NewReader([]byte{0xC1, 0x00}), maxMessage); err == nil {
		t.Fatal("RSV1 accepted")
	}
	if _, err := readFrame(bytes.NewReader(clientFrame(opText, make([]byte, 100), false)), 10); err == nil {
		t.Fatal("oversized frame accepted")
	}
}

func TestFragmentedMessage(t *testing.T) {
	env := newEnv(t)
	s, _ := env.hub.Create("acct1", "hello", nil)
	c := env.dial(s.ID, "trace-v1")
	// Text "ab" in two frames with a ping in between.
	first := clientFrame(opText, []byte("a"), false)
	first[0] &^= 0x80
	if _, err := c.conn.Write(first); err != nil {
		t.Fatal(err)
	}
	c.send(opPing, []byte("mid"), true)
	c.send(opContinuation, []byte("b"), true)
	if f := c.next(); f.opcode != opPong || string(f.payload) != "mid" {
		t.Fatalf("got %#x %q", f.opcode, f.payload)
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestWatched: a script is watched from its tail session's creation (before
// any WebSocket) until the session ends, and while a dashboard listens.
func TestWatched(t *testing.T) {
	e := newEnv(t)
	if e.hub.Watched("acct1", "hello") {
		t.Fatal("watched before any session")
	}
	s, err := e.hub.Create("acct1", "hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !e.hub.Watched("acct1", "hello") || e.hub.Watched("acct1", "other") || e.hub.Watched("acct2", "hello") {
		t.Error("a session watches exactly its account's script")
	}
	e.hub.Delete(s.ID)
	if e.hub.Watched("acct1", "hello") {
		t.Error("still watched after the session was deleted")
	}
	_, stop := e.hub.Subscribe("acct1", "hello")
	if !e.hub.Watched("acct1", "hello") {
		t.Error("a dashboard listener does not watch the script")
	}
	stop()
	deadline := time.Now().Add(2 * time.Second)
	for e.hub.Watched("acct1", "hello") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e.hub.Watched("acct1", "hello") {
		t.Error("still watched after the listener left")
	}
}
