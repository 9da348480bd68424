package workerd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ValidateTimeout bounds one Validate run. workerd has no startup time limit
// of its own: a Worker looping at the top level never listens (and ignores
// SIGTERM), so Validate kills it and reports a StartupError.
const ValidateTimeout = 10 * time.Second

// validateTimeout is ValidateTimeout; tests shorten it.
var validateTimeout = ValidateTimeout

// StartupError is a Worker that workerd refused to start: a syntax error, an
// exception thrown at the top level, a missing import, an unknown
// compatibility flag... Message is workerd's own report, cleaned, e.g.
// "Uncaught SyntaxError: missing ) after argument list at index.js:3:24".
type StartupError struct {
	Message string
}

func (e *StartupError) Error() string { return e.Message }

// validationKVAddress is where KV services point during validation: nothing
// listens there, and KV is never called at startup.
const validationKVAddress = "127.0.0.1:9"

// Validate starts w once in workerd (the binary at bin) on 127.0.0.1:<any
// port> and stops it as soon as it listens. files holds the content of every
// module of w, keyed by Module.Path. It returns the startup time (from exec
// to workerd's "listen" event on its control fd) or, when workerd refuses
// the Worker, a *StartupError. KV bindings point at a dummy address,
// FromEnv bindings are unset (null), tails are off. A run is bounded by
// ValidateTimeout; runs are independent and may be concurrent. No root needed.
func Validate(ctx context.Context, bin string, w Worker, files map[string][]byte) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if w.Name == "" {
		w.Name = "worker"
	}
	w.Address = "127.0.0.1:0"
	w.Tail = false
	cfg := Config{Workers: []Worker{w}}
	kv := map[string]bool{}
	for _, b := range w.Bindings {
		if b.Kind == KV && !kv[b.Service] {
			kv[b.Service] = true
			cfg.KV = append(cfg.KV, KVService{Name: b.Service, Address: validationKVAddress})
		}
	}
	text, err := cfg.Render()
	if err != nil {
		return 0, err
	}

	dir, err := os.MkdirTemp("", "octo-workerd-validate-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	for _, m := range w.Modules {
		data, ok := files[m.Path]
		if !ok {
			return 0, fmt.Errorf("validate %s: no content for module %q (%s)", w.Name, m.Name, m.Path)
		}
		p := filepath.Join(dir, filepath.FromSlash(m.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return 0, err
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return 0, err
		}
	}
	configPath := filepath.Join(dir, "config.capnp")
	if err := os.WriteFile(configPath, []byte(text), 0o600); err != nil {
		return 0, err
	}
	return run(ctx, bin, configPath, w.Name)
}

// run serves configPath until workerd reports that socket listens, exits,
// or the timeout passes.
func run(ctx context.Context, bin, configPath, socket string) (time.Duration, error) {
	timeout := time.NewTimer(validateTimeout)
	defer timeout.Stop()

	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer ctlR.Close()
	stderr := &limitedBuffer{max: 64 << 10}
	cmd := exec.Command(bin, "serve", configPath, "--control-fd=3", "--socket-addr", socket+"=127.0.0.1:0")
	cmd.Dir = filepath.Dir(configPath)
	cmd.Env = []string{} // fromEnvironment bindings read null; nothing of octo's environment leaks
	cmd.Stdout = nil     // console.log at the top level is not interesting here
	cmd.Stderr = stderr
	cmd.ExtraFiles = []*os.File{ctlW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		ctlW.Close()
		return 0, fmt.Errorf("start workerd: %w", err)
	}
	ctlW.Close()

	listening := make(chan time.Duration, 1)
	go func() {
		sc := bufio.NewScanner(ctlR)
		for sc.Scan() {
			var ev struct {
				Event  string `json:"event"`
				Socket string `json:"socket"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event == "listen" && ev.Socket == socket {
				listening <- time.Since(start)
				return
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	select {
	case d := <-listening:
		_ = cmd.Process.Kill()
		<-exited
		return d, nil
	case err := <-exited:
		// Wait has copied all of stderr by now.
		msg := cleanStderr(stderr.String())
		if hostProblem(msg) {
			return 0, fmt.Errorf("workerd cannot run on this host: %s", msg)
		}
		if msg == "" {
			msg = fmt.Sprintf("workerd exited at startup (%v) without a message", err)
		}
		return 0, &StartupError{Message: msg}
	case <-timeout.C:
		_ = cmd.Process.Kill()
		<-exited
		msg := fmt.Sprintf("Script startup exceeded the time limit: the Worker did not start within %s", validateTimeout)
		if m := cleanStderr(stderr.String()); m != "" {
			msg += ": " + m
		}
		return 0, &StartupError{Message: msg}
	case <-ctx.Done():
		_ = cmd.Process.Kill()
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
