package warmstart

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/workerd"
)

const (
	accountA = "0123456789abcdef0123456789abcdef"
	accountB = "fedcba9876543210fedcba9876543210"
)

// entry is a hello-world version of script in account that answers body,
// and its code.
func entry(t testing.TB, account, script, version, body string) (Entry, workerd.LoaderCode) {
	t.Helper()
	v := &apiv1.WorkerVersion{Spec: apiv1.WorkerVersionSpec{AccountID: account, ScriptName: script, VersionID: version, Number: 1,
		MainModule: "index.js", CompatibilityDate: "2026-01-01", Modules: []apiv1.WorkerModule{{Name: "index.js", Type: apiv1.ModuleESModule}},
		Bindings: []apiv1.WorkerBinding{{Name: "TOKEN", Type: apiv1.BindingSecretText}}}}
	code, err := workerd.NewLoaderCode(v, map[string][]byte{"index.js": []byte(
		`globalThis.evaluated = (globalThis.evaluated || 0) + 1;
export default { fetch(req, env) { return new Response("` + body + ` " + env.TOKEN + " " + globalThis.evaluated + " " + req.headers.has("` + workerd.LoaderAccountHeader + `")); } };`)},
		map[string]string{"TOKEN": "s3cr3t"})
	if err != nil {
		t.Fatal(err)
	}
	return Entry{Account: account, Script: script, Version: version}, code
}

// codeOf is a CodeFunc over codes, by version.
func codeOf(codes map[string]workerd.LoaderCode) CodeFunc {
	return func(_ context.Context, e Entry) (workerd.LoaderCode, error) {
		c, ok := codes[e.Version]
		if !ok {
			return c, fmt.Errorf("no version %s", e.Version)
		}
		return c, nil
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	s := Snapshot{Dir: filepath.Join(t.TempDir(), "warm")}
	if got, err := s.Entries(); err != nil || got != nil {
		t.Fatalf("no snapshot: %v %v, want none", got, err)
	}
	e1, c1 := entry(t, accountA, "hello", "11111111-0000-4000-8000-000000000001", "hi")
	e2, c2 := entry(t, accountB, "other", "22222222-0000-4000-8000-000000000002", "yo")
	var calls atomic.Int32
	codes := codeOf(map[string]workerd.LoaderCode{e1.Version: c1, e2.Version: c2})
	counted := func(ctx context.Context, e Entry) (workerd.LoaderCode, error) {
		calls.Add(1)
		return codes(ctx, e)
	}
	ctx := t.Context()
	saved, skipped, err := s.Update(ctx, []Entry{e1, {Account: accountA, Script: "gone", Version: "33333333-0000-4000-8000-000000000003"},
		{Account: accountA, Script: "x", Version: "../escape"}}, counted)
	if err != nil || len(saved) != 1 || len(skipped) != 2 {
		t.Fatalf("update: saved %+v skipped %v err %v, want e1 saved, the unknown version and the path skipped", saved, skipped, err)
	}
	if got, err := s.Entries(); err != nil || len(got) != 1 || got[0] != e1 {
		t.Fatalf("entries %+v %v, want e1", got, err)
	}
	for _, p := range []string{s.Dir, filepath.Join(s.Dir, "index.json"), filepath.Join(s.Dir, "code", e1.Version+".json")} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm()&0o077 != 0 {
			t.Fatalf("%s: %v %v, want root only (secrets' values)", p, st.Mode(), err)
		}
	}
	// The next update reads only the new version's code and drops e1's.
	calls.Store(0)
	if saved, _, err := s.Update(ctx, []Entry{e2}, counted); err != nil || len(saved) != 1 || calls.Load() != 1 {
		t.Fatalf("second update: %+v %v, %d code reads, want e2 saved with 1 read", saved, err, calls.Load())
	}
	if _, err := s.Code(e1.Version); err == nil {
		t.Fatal("the code of a version no longer served stayed")
	}
	if b, err := s.Code(e2.Version); err != nil || !strings.Contains(string(b), "yo") {
		t.Fatalf("code of e2: %s %v", b, err)
	}
	calls.Store(0)
	if _, _, err := s.Update(ctx, []Entry{e2}, counted); err != nil || calls.Load() != 0 {
		t.Fatalf("an unchanged update read code %d times (%v)", calls.Load(), err)
	}
	if _, err := s.Code("../index"); err == nil {
		t.Fatal("Code read outside the code directory")
	}
}

// TestHostsServeTheSnapshot runs the hosts on real workerd: every entry is
// preloaded in the host HostIndex names (its modules evaluated once), answers
// with its secret, and only under its own account.
func TestHostsServeTheSnapshot(t *testing.T) {
	if !workerd.Embedded() {
		t.Skip("built without workerd: run `make workerd` first")
	}
	bin, err := workerd.Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := Snapshot{Dir: filepath.Join(t.TempDir(), "warm")}
	var entries []Entry
	codes := map[string]workerd.LoaderCode{}
	for i := range 8 {
		account := accountA
		if i%2 == 1 {
			account = accountB
		}
		e, c := entry(t, account, fmt.Sprintf("w%d", i), fmt.Sprintf("00000000-0000-4000-8000-%012d", i), fmt.Sprintf("w%d", i))
		entries, codes[e.Version] = append(entries, e), c
	}
	if _, _, err := s.Update(t.Context(), entries, codeOf(codes)); err != nil {
		t.Fatal(err)
	}
	h := NewHosts(Options{Snapshot: s, Bin: func(context.Context) (string, error) { return bin, nil },
		Sandbox: workerd.Sandbox{AllowNoCgroup: true, Memory: 512 << 20}, Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	ctx := t.Context()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if err := h.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	// The code socket serves secrets' values: the hosts' user only.
	if st, err := os.Stat(codeSocket(h.dir)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("code socket: %v %v, want mode 0600", st.Mode(), err)
	}
	select {
	case <-h.Preloaded():
	case <-time.After(30 * time.Second):
		t.Fatal("not preloaded after 30 s")
	}
	// Loading the Workers took the hosts' CPU, and the log says how much.
	if cpu := h.cpuTime(); cpu <= 0 || cpu > time.Minute {
		t.Errorf("hosts' CPU time after the preload: %s, want some", cpu)
	}
	var d net.Dialer
	c := &http.Client{Transport: &http.Transport{DialContext: Dialer(h.Sockets(), d.DialContext)}}
	get := func(host int, account, script, version string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+HostAddr(host)+"/", nil)
		req.Header.Set(workerd.LoaderVersionHeader, version)
		req.Header.Set(workerd.LoaderScriptHeader, script)
		req.Header.Set(workerd.LoaderAccountHeader, account)
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode, string(b)
	}
	for _, e := range entries {
		// "1": evaluated once, by the preload; the header stays the host's.
		if code, body := get(HostIndex(e.Version, len(h.Sockets())), e.Account, e.Script, e.Version); code != 200 || body != e.Script+" s3cr3t 1 false" {
			t.Errorf("%s: %d %q, want 200 %q", e.Script, code, body, e.Script+" s3cr3t 1 false")
		}
	}
	e := entries[0]
	if code, _ := get(0, accountB, e.Script, "00000000-0000-4000-8000-999999999999"); code != http.StatusServiceUnavailable {
		t.Errorf("a version the snapshot does not hold: %d, want the host's 503", code)
	}
	if code, _ := get(0, accountB, e.Script, e.Version); code != http.StatusServiceUnavailable {
		t.Errorf("a version under another account: %d, want the host's 503", code)
	}
}
