package warmstart

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/octohq/octo/internal/workerd"
)

// Options configure Hosts.
type Options struct {
	// Snapshot is what the hosts serve.
	Snapshot Snapshot
	// Dir holds the hosts' configs and sockets; the sandbox's user must
	// reach it, so it is not in the root-only data dir. Start replaces
	// what an earlier run left there, Stop removes it. Empty: a new
	// directory in os.TempDir().
	Dir string
	// Bin returns the path of workerd, once it is extracted.
	Bin func(ctx context.Context) (string, error)
	// Count is how many hosts run (each serves on one thread): 0 means 1.
	Count int
	// Sandbox confines the hosts (workerd.Sandbox): its Memory is per host.
	Sandbox workerd.Sandbox
	// Concurrency is how many preloads each host has in flight: 0 means
	// 64. A host loads one Worker at a time; the queue keeps it busy while
	// the daemon, busy starting the cluster, is slow to send the next
	// request or the next code: one host loaded 1,000 Workers in 14–21 s
	// with 4 in flight, 7.6–9.2 s with 16, 6.3–6.7 s with 64.
	Concurrency int
	// Shares is the CPU weight of the hosts' group (Sandbox.Group,
	// workerd.Sandbox.SetGroupWeight), set before they start; 0: it is
	// left as is.
	Shares int
	Log    *slog.Logger
}

// Hosts is the warm-start hosts: an embed.Component that, when the
// snapshot has entries, serves their code on a unix socket, runs Count
// sandboxed workerd loader hosts and preloads every entry in the one
// HostIndex names. With an empty snapshot it does nothing.
type Hosts struct {
	opts    Options
	log     *slog.Logger
	entries []Entry

	dir     string // temp dir of the hosts' configs and sockets
	code    *http.Server
	started chan struct{} // closed when Start's hosts listen (or failed)
	failed  bool          // they could not: set before started closes

	mu        sync.Mutex
	hosts     []*workerd.Host
	retired   chan struct{} // closed by Retire
	preloaded chan struct{}
	cancel    context.CancelFunc
}

// HostSocket is the unix socket of host i in dir.
func HostSocket(dir string, i int) string { return filepath.Join(dir, strconv.Itoa(i), "host.sock") }

// NewHosts returns the hosts of opts.Snapshot; nothing runs until Start.
func NewHosts(opts Options) *Hosts {
	if opts.Count <= 0 {
		opts.Count = 1
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hosts{opts: opts, log: log, started: make(chan struct{}), preloaded: make(chan struct{}), retired: make(chan struct{})}
}

// Name implements embed.Component.
func (h *Hosts) Name() string { return "warm-start" }

// Entries are the snapshot's entries the hosts serve (read by Start).
func (h *Hosts) Entries() []Entry { return h.entries }

// Sockets are the hosts' unix sockets, in HostIndex order; none with an
// empty snapshot or when the hosts could not start. Valid after Ready.
func (h *Hosts) Sockets() []string {
	if len(h.entries) == 0 || h.failed {
		return nil
	}
	out := make([]string, h.opts.Count)
	for i := range out {
		out[i] = HostSocket(h.dir, i)
	}
	return out
}

// Preloaded is closed once every entry was loaded (or the hosts stopped).
func (h *Hosts) Preloaded() <-chan struct{} { return h.preloaded }

// Start reads the snapshot and, when it has entries, starts the hosts in
// the background (Ready waits for them).
func (h *Hosts) Start(ctx context.Context) error {
	entries, err := h.opts.Snapshot.Entries()
	if err != nil {
		h.log.Warn("warm start: no snapshot to serve from", "err", err)
	}
	h.entries = entries
	if len(entries) == 0 {
		close(h.started)
		close(h.preloaded)
		return nil
	}
	// The hosts run as the sandbox's user: their directory is theirs, out
	// of the root-only data dir.
	if h.dir = h.opts.Dir; h.dir == "" {
		if h.dir, err = os.MkdirTemp("", "octo-warm-"); err != nil {
			return fmt.Errorf("warm start: %w", err)
		}
	} else {
		if err := os.RemoveAll(h.dir); err != nil {
			return fmt.Errorf("warm start: %w", err)
		}
		if err := os.Mkdir(h.dir, 0o711); err != nil {
			return fmt.Errorf("warm start: %w", err)
		}
	}
	// Searchable, not listable: each host's own directory is its user's.
	if err := os.Chmod(h.dir, 0o711); err != nil {
		return fmt.Errorf("warm start: %w", err)
	}
	ctx, h.cancel = context.WithCancel(ctx)
	go func() {
		defer close(h.started)
		if err := h.start(ctx); err != nil {
			// Best effort: the pods serve the Workers once they run.
			h.log.Warn("warm start: the hosts cannot run; the Workers answer once their pods run", "err", err)
			h.failed = true
			close(h.preloaded)
			return
		}
		go h.preload(ctx)
	}()
	return nil
}

// codeSocket is the unix socket of the snapshot's code in dir.
func codeSocket(dir string) string { return filepath.Join(dir, "code.sock") }

func (h *Hosts) start(ctx context.Context) error {
	t0 := time.Now()
	ln, err := net.Listen("unix", codeSocket(h.dir))
	if err != nil {
		return fmt.Errorf("warm start: code socket: %w", err)
	}
	// The hosts run as the sandbox's user and must reach it; no other
	// user may (it serves secrets' values).
	if err := os.Chmod(codeSocket(h.dir), 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("warm start: %w", err)
	}
	if os.Geteuid() == 0 {
		uid, gid := h.opts.Sandbox.UID, h.opts.Sandbox.GID
		if uid == 0 {
			uid = workerd.NobodyID
		}
		if gid == 0 {
			gid = workerd.NobodyID
		}
		if err := os.Chown(codeSocket(h.dir), uid, gid); err != nil {
			ln.Close()
			return fmt.Errorf("warm start: %w", err)
		}
	}
	h.code = &http.Server{Handler: CodeHandler(h.opts.Snapshot, h.entries), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = h.code.Serve(ln) }()
	bin, err := h.opts.Bin(ctx)
	if err != nil {
		return fmt.Errorf("warm start: %w", err)
	}
	// The cgroups of hosts a daemon ended abruptly could not remove.
	if err := h.opts.Sandbox.RemoveGroupLeftovers(); err != nil {
		h.log.Warn("warm start: earlier hosts' cgroups are left", "err", err)
	}
	if h.opts.Shares > 0 {
		// Best effort: without it the hosts share the CPU as any process.
		if err := h.opts.Sandbox.SetGroupWeight(h.opts.Shares); err != nil {
			h.log.Warn("warm start: the hosts' CPU weight is not set", "shares", h.opts.Shares, "err", err)
		}
	}
	errs := make([]error, h.opts.Count)
	hosts := make([]*workerd.Host, h.opts.Count)
	var wg sync.WaitGroup
	for i := range h.opts.Count {
		wg.Go(func() { hosts[i], errs[i] = h.serve(ctx, bin, i) })
	}
	wg.Wait()
	h.mu.Lock()
	for _, host := range hosts {
		if host != nil {
			h.hosts = append(h.hosts, host)
		}
	}
	h.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	h.log.Info("warm start: hosts serve", "hosts", h.opts.Count, "workers", len(h.entries), "after", time.Since(t0).Round(time.Millisecond))
	return nil
}

// serve starts host i.
func (h *Hosts) serve(ctx context.Context, bin string, i int) (*workerd.Host, error) {
	dir := filepath.Dir(HostSocket(h.dir, i))
	if err := os.MkdirAll(filepath.Join(dir, workerd.LoaderWorkerName), 0o700); err != nil {
		return nil, fmt.Errorf("warm start: %w", err)
	}
	// No scheduled runs reach these hosts: the credential is random.
	lw, src := workerd.LoaderWorker("unix:"+HostSocket(h.dir, i), "", rand.Text())
	cfg := workerd.Config{Workers: []workerd.Worker{lw}, V8Flags: workerd.DefaultV8Flags,
		External: []workerd.ExternalService{{Name: workerd.LoaderCodeService, Address: "unix:" + codeSocket(h.dir)}}}
	text, err := cfg.Render()
	if err != nil {
		return nil, fmt.Errorf("warm start: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.capnp"), []byte(text), 0o600); err != nil {
		return nil, fmt.Errorf("warm start: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, lw.Modules[0].Path), []byte(src), 0o600); err != nil {
		return nil, fmt.Errorf("warm start: %w", err)
	}
	stderr := &logWriter{log: h.log.With("host", i)}
	host, err := h.opts.Sandbox.Serve(ctx, bin, dir, workerd.LoaderWorkerName, stderr, "--experimental")
	if err != nil {
		return nil, fmt.Errorf("warm start: host %d: %w", i, err)
	}
	return host, nil
}

// preload loads every entry in its host, Concurrency at a time per host.
func (h *Hosts) preload(ctx context.Context) {
	defer close(h.preloaded)
	t0 := time.Now()
	c := h.client()
	defer c.CloseIdleConnections()
	byHost := make([][]Entry, h.opts.Count)
	for _, e := range h.entries {
		i := HostIndex(e.Version, h.opts.Count)
		byHost[i] = append(byHost[i], e)
	}
	var failed sync.Map
	var wg sync.WaitGroup
	for i, entries := range byHost {
		work := make(chan Entry)
		for range h.opts.Concurrency {
			wg.Go(func() {
				for e := range work {
					if err := h.load(ctx, c, i, e); err != nil {
						failed.Store(e.Script+"/"+e.Version, err)
					}
				}
			})
		}
		wg.Go(func() {
			defer close(work)
			for _, e := range entries {
				select {
				case work <- e:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	wg.Wait()
	n := 0
	failed.Range(func(k, v any) bool {
		if n < 5 {
			h.log.Warn("warm start: a Worker did not preload; its first request loads it", "worker", k, "err", v)
		}
		n++
		return true
	})
	h.log.Info("warm start: Workers preloaded", "workers", len(h.entries)-n, "failed", n, "after", time.Since(t0).Round(time.Millisecond),
		"cpu", h.cpuTime().Round(time.Millisecond))
}

// cpuTime is the CPU time the hosts have used so far (0 for a host whose
// time cannot be read).
func (h *Hosts) cpuTime() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	var sum time.Duration
	for _, host := range h.hosts {
		if t, err := host.CPUTime(); err == nil {
			sum += t
		}
	}
	return sum
}

// load preloads e in host i.
func (h *Hosts) load(ctx context.Context, c *http.Client, i int, e Entry) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+HostAddr(i)+"/", nil)
	if err != nil {
		return err
	}
	req.Header.Set(workerd.LoaderVersionHeader, e.Version)
	req.Header.Set(workerd.LoaderScriptHeader, e.Script)
	req.Header.Set(workerd.LoaderAccountHeader, e.Account)
	req.Header.Set(workerd.LoaderPreloadHeader, "1")
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		return fmt.Errorf("%s: %s", res.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// HostAddrSuffix ends the host part of a warm-start host's address: host i
// is "<i>.warm.octo"; Dialer maps it to the host's socket.
const HostAddrSuffix = ".warm.octo"

// HostAddr is the address of host i for an HTTP client that dials with
// Dialer.
func HostAddr(i int) string { return strconv.Itoa(i) + HostAddrSuffix + ":80" }

// Dialer returns a dial function that reaches HostAddr(i) on sockets[i] and
// everything else with next.
func Dialer(sockets []string, next func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil || !strings.HasSuffix(host, HostAddrSuffix) {
			return next(ctx, network, addr)
		}
		i, err := strconv.Atoi(strings.TrimSuffix(host, HostAddrSuffix))
		if err != nil || i < 0 || i >= len(sockets) {
			return nil, &net.AddrError{Err: "no such warm-start host", Addr: addr}
		}
		return d.DialContext(ctx, "unix", sockets[i])
	}
}

func (h *Hosts) client() *http.Client {
	var d net.Dialer
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext:         Dialer(h.Sockets(), d.DialContext),
		MaxIdleConnsPerHost: h.opts.Concurrency,
	}}
}

// Ready waits until the hosts listen, or could not start (a warning: the
// warm start is best effort, and the hosts then have no Sockets).
func (h *Hosts) Ready(ctx context.Context) error {
	select {
	case <-h.started:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Retire stops the hosts once the pods serve every Worker: the gateway
// finds their sockets gone and asks them no more.
func (h *Hosts) Retire() {
	h.mu.Lock()
	select {
	case <-h.retired:
		h.mu.Unlock()
		return
	default:
		close(h.retired)
	}
	h.mu.Unlock()
	h.stop()
	h.log.Info("warm start: the pods serve; hosts stopped")
}

// Retired is closed once Retire stopped the hosts.
func (h *Hosts) Retired() <-chan struct{} { return h.retired }

// Stop implements embed.Component.
func (h *Hosts) Stop(context.Context) error { return h.stop() }

func (h *Hosts) stop() error {
	if h.cancel == nil {
		return nil
	}
	h.cancel()
	<-h.started
	h.mu.Lock()
	hosts := h.hosts
	h.hosts = nil
	h.mu.Unlock()
	var errs []error
	for _, host := range hosts {
		if err := host.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if h.code != nil {
		_ = h.code.Close()
	}
	if err := os.RemoveAll(h.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// logWriter logs a host's stderr, a line at a time.
type logWriter struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		w.log.Warn("warm start: workerd", "line", string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 {
		w.buf = w.buf[:0]
	}
	return len(p), nil
}
