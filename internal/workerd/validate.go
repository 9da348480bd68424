package workerd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	apiv1 "github.com/octohq/octo/api/v1"
)

// ValidateTimeout bounds one validation. workerd has no startup time limit
// of its own: a Worker looping at the top level never listens (and ignores
// SIGTERM), so the Validator kills it and reports a StartupError.
const ValidateTimeout = 10 * time.Second

// StartupError is a Worker that workerd refused to start: a syntax error, an
// exception thrown at the top level, a missing import, an unknown
// compatibility flag, too much time or memory at startup... Message is
// workerd's own report, cleaned, e.g. "Uncaught SyntaxError: missing ) after
// argument list at index.js:3:24".
type StartupError struct {
	Message string
}

func (e *StartupError) Error() string { return e.Message }

// UnexportedClassError is a Worker that hosts Durable Object classes its
// code does not export (Worker.DurableObjects).
type UnexportedClassError struct {
	Classes []string
}

func (e *UnexportedClassError) Error() string {
	return fmt.Sprintf("the Worker does not export its Durable Object class %s", strings.Join(e.Classes, ", "))
}

// unexportedClassRE is workerd's warning about a hosted class the code does
// not export.
var unexportedClassRE = regexp.MustCompile(`referenced the class "([^"]+)", but no such Durable Object class is exported`)

// validationKVAddress is where the KV, R2 and D1 services point during
// validation: nothing listens there, and bindings are not called at startup.
const validationKVAddress = "127.0.0.1:9"

// StubWorker stands in for the Worker that service bindings reach at
// entrypoints ("" is the default export) when it does not run beside them:
// an internal Worker exporting each of them, and its module's source. Its
// fetch answers 503 with message as the body (none when empty); its
// entrypoints have no methods, so an RPC call fails.
func StubWorker(name string, entrypoints []string, message string) (Worker, string) {
	var src strings.Builder
	src.WriteString("import { WorkerEntrypoint } from \"cloudflare:workers\";\n")
	body := "null"
	if message != "" {
		b, _ := json.Marshal(message) // a string always encodes
		body = string(b)
	}
	fmt.Fprintf(&src, "export default { fetch() { return new Response(%s, { status: 503 }); } };\n", body)
	seen := map[string]bool{}
	for _, e := range entrypoints {
		if e == "" || e == "default" || seen[e] || !bindingNameRE.MatchString(e) {
			continue
		}
		seen[e] = true
		fmt.Fprintf(&src, "export class %s extends WorkerEntrypoint {}\n", e)
	}
	return Worker{
		Name:              name,
		Modules:           []Module{{Name: "stub.js", Type: apiv1.ModuleESModule, Path: "octo-stub/" + name + ".js"}},
		CompatibilityDate: DefaultCompatibilityDate,
		Internal:          true,
	}, src.String()
}

// Validator starts Workers once in workerd to catch startup errors before a
// version is accepted. The uploaded code runs confined (see Sandbox), for at
// most Timeout, and at most Concurrency runs at once: further calls wait for
// a slot. Share one Validator for the bound to hold; do not copy it after
// first use.
type Validator struct {
	// Bin is the workerd binary (workerd.Extract gives it). It is opened by
	// octo and passed to the sandbox, so its directory may stay private.
	Bin     string
	Sandbox Sandbox
	// Timeout bounds one run; 0 means ValidateTimeout.
	Timeout time.Duration
	// Concurrency bounds the runs at once; 0 means
	// DefaultValidateConcurrency.
	Concurrency int
	// Log receives sandbox warnings; nil discards them.
	Log *slog.Logger

	once sync.Once
	sem  chan struct{}
	// started, when set (tests), is called with workerd's pid once it runs.
	started func(pid int)
}

// Validate runs w once with a Validator of default settings. Calls share no
// concurrency bound: share a Validator for that.
func Validate(ctx context.Context, bin string, w Worker, files map[string][]byte) (time.Duration, error) {
	return (&Validator{Bin: bin}).Validate(ctx, w, files)
}

// Validate starts w once in workerd on 127.0.0.1:<any port> and stops it as
// soon as it listens. files holds the content of every module of w, keyed
// by Module.Path. It returns the startup time (from exec to workerd's
// "listen" event on its control fd) or, when workerd refuses the Worker or
// it exceeds the time or memory limit, a *StartupError. KV bindings point at
// a dummy address, FromEnv bindings are unset (null), tails are off. Other
// errors (the sandbox cannot be set up, ctx is done) are the host's.
func (v *Validator) Validate(ctx context.Context, w Worker, files map[string][]byte) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	v.once.Do(func() {
		n := v.Concurrency
		if n <= 0 {
			n = DefaultValidateConcurrency
		}
		v.sem = make(chan struct{}, n)
	})
	if w.Name == "" {
		w.Name = "worker"
	}
	w.Address = "127.0.0.1:0"
	w.UnixSocket = "" // the pod's socket directory exists only in the pod
	w.Tail = false
	// Classes another Worker hosts do not run during this start; nothing
	// calls them before a request arrives.
	w.Bindings = slices.DeleteFunc(slices.Clone(w.Bindings), func(b Binding) bool { return b.Kind == DurableObject && b.Service != "" && b.Service != w.Name })
	w.ObjectStorage = "" // in memory: nothing is stored during this start
	cfg := Config{Workers: []Worker{w}}
	stubs := map[string][]string{} // bound Worker → its entrypoints
	external := map[string]bool{}
	for _, b := range w.Bindings {
		switch {
		case b.Kind == Service && b.Service != w.Name:
			stubs[b.Service] = append(stubs[b.Service], b.Entrypoint)
		case (b.Kind == KV || b.Kind == R2 || b.Kind == D1 || b.Kind == Fetcher) && !external[b.Service]:
			external[b.Service] = true
			cfg.External = append(cfg.External, ExternalService{Name: b.Service, Address: validationKVAddress})
		}
	}
	if len(stubs) > 0 {
		files = maps.Clone(files)
	}
	for _, name := range slices.Sorted(maps.Keys(stubs)) {
		// The bound Worker is not started with it; a stub with the same
		// entrypoints stands in (workerd resolves them at startup).
		sw, src := StubWorker(name, stubs[name], "")
		cfg.Workers = append(cfg.Workers, sw)
		files[sw.Modules[0].Path] = []byte(src)
	}
	text, err := cfg.Render()
	if err != nil {
		return 0, err
	}
	for _, m := range w.Modules {
		if _, ok := files[m.Path]; !ok {
			return 0, fmt.Errorf("validate %s: no content for module %q (%s)", w.Name, m.Name, m.Path)
		}
	}

	select {
	case v.sem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-v.sem }()

	sb := v.Sandbox.withDefaults()
	cred := sb.credential()
	if err := searchable(sb.TempDir, cred); err != nil {
		return 0, fmt.Errorf("validate %s: temp dir: %w", w.Name, err)
	}
	dir, err := os.MkdirTemp(sb.TempDir, "octo-workerd-validate-")
	if err != nil {
		return 0, fmt.Errorf("validate %s: %w", w.Name, err)
	}
	defer os.RemoveAll(dir)
	for _, cw := range cfg.Workers {
		for _, m := range cw.Modules {
			p := filepath.Join(dir, filepath.FromSlash(m.Path))
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return 0, fmt.Errorf("validate %s: %w", w.Name, err)
			}
			if err := os.WriteFile(p, files[m.Path], 0o600); err != nil {
				return 0, fmt.Errorf("validate %s: %w", w.Name, err)
			}
		}
	}
	configPath := filepath.Join(dir, "config.capnp")
	if err := os.WriteFile(configPath, []byte(text), 0o600); err != nil {
		return 0, fmt.Errorf("validate %s: %w", w.Name, err)
	}
	if err := chownTree(dir, cred); err != nil {
		return 0, fmt.Errorf("validate %s: %w", w.Name, err)
	}
	return v.run(ctx, sb, cred, configPath, w.Name)
}

// run serves configPath in the sandbox until workerd reports that socket
// listens, exits, or the timeout passes.
func (v *Validator) run(ctx context.Context, sb Sandbox, cred *syscall.Credential, configPath, socket string) (time.Duration, error) {
	log := v.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	limit := v.Timeout
	if limit <= 0 {
		limit = ValidateTimeout
	}

	bin, err := os.Open(v.Bin)
	if err != nil {
		return 0, fmt.Errorf("open workerd: %w", err)
	}
	defer bin.Close()
	cg, err := newCgroup(sb, cgroupName())
	if err != nil {
		if !sb.AllowNoCgroup {
			return 0, fmt.Errorf("cannot confine workerd in a cgroup, refusing to run uploaded code without memory and CPU limits: %w", err)
		}
		log.Warn("validating without a cgroup: no memory, CPU or pids limit", "err", err)
	}
	defer func() {
		if err := cg.remove(); err != nil {
			log.Warn("validation cgroup left behind", "err", err)
		}
	}()

	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer ctlR.Close()
	stderr := &limitedBuffer{max: 64 << 10}
	cmd := exec.Command(fmt.Sprintf("/proc/self/fd/%d", binFD), "serve", configPath, "--control-fd=3", "--socket-addr", socket+"=127.0.0.1:0")
	cmd.Args[0] = BinaryName
	cmd.Dir = filepath.Dir(configPath)
	cmd.Env = []string{} // fromEnvironment bindings read null; nothing of octo's environment leaks
	cmd.Stdout = nil     // console.log at the top level is not interesting here
	cmd.Stderr = stderr
	cmd.ExtraFiles = []*os.File{ctlW, bin} // fds 3 and binFD
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	if cg != nil && cg.v2 {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(cg.fd.Fd())
	}
	done := make(chan struct{})
	defer close(done) // after every path below has reaped workerd
	t0 := time.Now()
	if err := start(cmd, cg, done); err != nil {
		ctlW.Close()
		return 0, fmt.Errorf("start workerd: %w", err)
	}
	ctlW.Close()
	bin.Close()
	pid := cmd.Process.Pid
	timeout := time.NewTimer(limit)
	defer timeout.Stop()
	if v.started != nil {
		v.started(pid)
	}

	listening := make(chan time.Duration, 1)
	go func() {
		if awaitListen(ctlR, socket) {
			listening <- time.Since(t0)
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	select {
	case d := <-listening:
		killGroup(pid)
		<-exited
		// workerd only warns about a hosted class the code does not export
		// (its objects would fail at run time); an upload is refused.
		if m := unexportedClassRE.FindAllStringSubmatch(stderr.String(), -1); m != nil {
			e := &UnexportedClassError{}
			for _, c := range m {
				if !slices.Contains(e.Classes, c[1]) {
					e.Classes = append(e.Classes, c[1])
				}
			}
			return 0, e
		}
		return d, nil
	case err := <-exited:
		// Wait has copied all of stderr by now.
		if cg.oomKilled() {
			return 0, &StartupError{Message: fmt.Sprintf("Script startup exceeded the memory limit: the Worker used more than %s", sizeString(sb.Memory))}
		}
		msg := cleanStderr(stderr.String())
		if hostProblem(msg) {
			return 0, fmt.Errorf("workerd cannot run on this host: %s", msg)
		}
		if msg == "" {
			msg = fmt.Sprintf("workerd exited at startup (%v) without a message", err)
		}
		return 0, &StartupError{Message: msg}
	case <-timeout.C:
		killGroup(pid)
		<-exited
		msg := fmt.Sprintf("Script startup exceeded the time limit: the Worker did not start within %s", limit)
		if m := cleanStderr(stderr.String()); m != "" {
			msg += ": " + m
		}
		return 0, &StartupError{Message: msg}
	case <-ctx.Done():
		killGroup(pid)
		<-exited
		return 0, ctx.Err()
	}
}

// hostProblem recognises failures of the host rather than of the Worker.
func hostProblem(msg string) bool {
	for _, s := range []string{
		"No CA certificates were loaded", "Failed to reserve virtual memory",
		"error while loading shared libraries", "GLIBC_",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

var (
	// servicePrefix is how workerd prefixes errors about one service.
	servicePrefix = regexp.MustCompile(`^service [^:]+: `)
	// sourcePrefix is a workerd/kj source location: "workerd/server/server.c++:123: error: ".
	sourcePrefix = regexp.MustCompile(`^[\w./+-]+\.(c\+\+|h|rs):\d+: (error|failed|warning|info|exception): `)
)

// cleanStderr turns workerd's stderr into the lines worth showing a user:
// prefixes removed, stack lines ("  at index.js:3:5") joined to the message
// they belong to, duplicate lines dropped.
func cleanStderr(s string) string {
	var out []string
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		cont := line[0] == ' ' || line[0] == '\t'
		line = strings.TrimSpace(line)
		line = servicePrefix.ReplaceAllString(line, "")
		line = sourcePrefix.ReplaceAllString(line, "")
		if cont && len(out) > 0 {
			out[len(out)-1] += " " + line
			continue
		}
		out = append(out, line)
	}
	var uniq []string
	for _, l := range out {
		if !seen[l] {
			seen[l] = true
			uniq = append(uniq, l)
		}
	}
	return strings.Join(uniq, "\n")
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
		} else {
			b.buf.Write(p)
		}
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
