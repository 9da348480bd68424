package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/edge"
	"github.com/octohq/octo/internal/embed/childproc"
	"github.com/octohq/octo/internal/embed/healthz"
	"github.com/octohq/octo/internal/embed/httpserve"
	"github.com/octohq/octo/internal/embed/s3"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/warmstart"
)

// gatewayProcess runs the gateway role (`octo gateway`) as a child of the
// daemon: it owns the edge port, serves the Workers and passes everything
// else to the daemon's edge on a unix socket (EdgeSocket). The daemon serves
// the tail hub's watched feed to it on another socket (TailFeedSocket). A
// child that exits while octo runs is started again.
type gatewayProcess struct {
	cfg  config.Config
	log  *slog.Logger
	feed http.Handler
	// nodeStarted goes to the child as --node-started.
	nodeStarted time.Time
	// warm are the warm-start hosts the child may send requests to (nil:
	// none).
	warm *warmstart.Hosts

	feedSrv httpserve.Server

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan error // the current child's exit
	stopping bool
	stopped  chan struct{} // closed when the supervisor returns
}

// EdgeSocket is the unix socket of the daemon's edge (API, dashboard, tail).
func EdgeSocket(cfg config.Config) string { return cfg.RunPath("edge.sock") }

// TailFeedSocket is the unix socket of the tail hub's watched feed.
func TailFeedSocket(cfg config.Config) string { return cfg.RunPath("tail-feed.sock") }

// GatewayMetricsSocket is the unix socket of the gateway's request metrics
// (platform.GatewayMetrics).
func GatewayMetricsSocket(cfg config.Config) string { return cfg.RunPath("gateway-metrics.sock") }

// GatewayGOGC is the gateway process's GOGC.
const GatewayGOGC = 400

// restartDelay is how long the daemon waits before starting a gateway that
// exited.
const restartDelay = time.Second

// nodeStarted is when the daemon, and so its kubelet, started.
func newGatewayProcess(cfg config.Config, log *slog.Logger, feed http.Handler, nodeStarted time.Time, warm *warmstart.Hosts) *gatewayProcess {
	return &gatewayProcess{cfg: cfg, log: log.With("component", "gateway"), feed: feed, nodeStarted: nodeStarted, warm: warm}
}

// Name implements embed.Component.
func (g *gatewayProcess) Name() string { return "gateway" }

// Endpoint implements embed.Endpointer.
func (g *gatewayProcess) Endpoint() string {
	return "http://*.workers.localhost:" + strconv.Itoa(g.cfg.EdgePort)
}

// Start serves the feed and starts the child.
func (g *gatewayProcess) Start(ctx context.Context) error {
	ln, err := edge.ListenUnix(TailFeedSocket(g.cfg))
	if err != nil {
		return fmt.Errorf("tail feed: %w", err)
	}
	// The feed holds polls open (tail.FeedPoll): no write timeout.
	g.feedSrv.ServeWith(ln, &http.Server{Handler: g.feed, ReadHeaderTimeout: 10 * time.Second})
	g.mu.Lock()
	err = g.spawnLocked()
	g.mu.Unlock()
	if err != nil {
		return err
	}
	g.stopped = make(chan struct{})
	go g.supervise()
	return nil
}

// spawnLocked starts one child; g.mu is held.
func (g *gatewayProcess) spawnLocked() error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	logf, err := os.OpenFile(g.cfg.ComponentLogPath("gateway"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	cmd := exec.Command(self, "gateway",
		"--kubeconfig", g.cfg.KubeconfigPath(),
		"--listen", config.Addr(g.cfg.EdgePort),
		"--upstream", EdgeSocket(g.cfg),
		"--tail-feed", TailFeedSocket(g.cfg),
		"--kubelet-root", g.cfg.KubeletDir(),
		"--node-name", g.cfg.NodeName,
		"--node-started", g.nodeStarted.Format(time.RFC3339Nano),
		"--metrics-file", g.cfg.Path("metrics", "requests.json"),
		"--metrics-socket", GatewayMetricsSocket(g.cfg),
	)
	if g.warm != nil {
		if sockets := g.warm.Sockets(); len(sockets) > 0 {
			cmd.Args = append(cmd.Args, "--warm-snapshot", warmSnapshot(g.cfg).Dir, "--warm-socket", strings.Join(sockets, ","))
		}
	}
	// The static assets come from the S3 store: its endpoint as flags, its
	// keys in the environment (as `octo api` takes them).
	creds, err := s3.LoadCredentials(g.cfg)
	if err != nil {
		logf.Close()
		return fmt.Errorf("gateway: S3 credentials: %w", err)
	}
	cmd.Args = append(cmd.Args, "--s3-endpoint", config.Addr(g.cfg.S3Port), "--s3-region", creds.Region, "--s3-bucket", store.Bucket)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The daemon's profiling port is its own. The gateway's live heap is a
	// few MB while it allocates per request: a collection at every 4x growth
	// instead of 2x halves its GC work for a few MB (unless GOGC is set).
	cmd.Env = append(os.Environ(), PprofEnv+"=", "AWS_ACCESS_KEY_ID="+creds.AccessKey, "AWS_SECRET_ACCESS_KEY="+creds.SecretKey)
	if os.Getenv("GOGC") == "" {
		cmd.Env = append(cmd.Env, "GOGC="+strconv.Itoa(GatewayGOGC))
	}
	// Its own process group keeps a terminal's Ctrl-C away from it: the
	// daemon stops it. Pdeathsig ends it if the daemon is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// From a thread of its own: Pdeathsig follows the forking thread.
	exited, err := childproc.Start(cmd)
	if err != nil {
		logf.Close()
		return fmt.Errorf("start gateway: %w", err)
	}
	done := make(chan error, 1)
	go func() {
		err := <-exited
		logf.Close()
		done <- err
	}()
	g.cmd, g.done = cmd, done
	return nil
}

// supervise starts the child again when it exits while octo runs.
func (g *gatewayProcess) supervise() {
	defer close(g.stopped)
	for {
		g.mu.Lock()
		done := g.done
		g.mu.Unlock()
		err := <-done
		done <- err // for Ready and Stop
		g.mu.Lock()
		stopping := g.stopping
		g.mu.Unlock()
		if stopping {
			return
		}
		g.log.Error("gateway exited; starting it again", "err", err, "log", g.cfg.ComponentLogPath("gateway"), "in", restartDelay)
		time.Sleep(restartDelay)
		g.mu.Lock()
		if g.stopping {
			g.mu.Unlock()
			return
		}
		err = g.spawnLocked()
		g.mu.Unlock()
		if err != nil {
			g.log.Error("start gateway", "err", err)
			return
		}
	}
}

// Ready waits until the child serves the edge port.
func (g *gatewayProcess) Ready(ctx context.Context) error {
	g.mu.Lock()
	done := g.done
	g.mu.Unlock()
	err := healthz.Poll(ctx, healthz.Client(nil), "http://"+config.Addr(g.cfg.EdgePort)+"/healthz", healthz.Exited(done))
	if err != nil {
		return fmt.Errorf("%w (see %s)", err, g.cfg.ComponentLogPath("gateway"))
	}
	return nil
}

// Stop sends the child SIGTERM and waits up to 5 s before killing it, then
// closes the feed.
func (g *gatewayProcess) Stop(ctx context.Context) error {
	g.mu.Lock()
	g.stopping = true
	cmd, done := g.cmd, g.done
	g.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
		case <-ctx.Done():
			_ = cmd.Process.Kill()
		}
		if g.stopped != nil {
			<-g.stopped
		}
	}
	return g.feedSrv.Stop(ctx)
}

// PID is the child's process id, 0 when not running.
func (g *gatewayProcess) PID() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd == nil || g.cmd.Process == nil {
		return 0
	}
	return g.cmd.Process.Pid
}
