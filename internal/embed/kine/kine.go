// Package kine runs kine, the etcd API on top of SQLite, inside the octo
// daemon. The API server talks to it over a unix socket in the run dir.
package kine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/k3s-io/kine/pkg/endpoint"
	// The SQLite driver registers itself with kine's driver registry.
	_ "github.com/k3s-io/kine/pkg/drivers/sqlite"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/octohq/octo/internal/config"
)

// Kine is the datastore component.
type Kine struct {
	dbPath string
	socket string
	log    *slog.Logger
	cancel context.CancelFunc
	etcd   endpoint.ETCDConfig

	runCtx context.Context // Start's, until Stop

	mu      sync.Mutex
	clock   *leaseClock // nil until Ready, or when it cannot open
	stopped bool        // Stop ran: no clock starts after it
}

// New returns the kine component for cfg: database in <data-dir>/db/state.db,
// socket at cfg.KineSocket(), its lease clock (see expireLeases) beside the
// database.
func New(cfg config.Config, log *slog.Logger) *Kine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Kine{dbPath: cfg.Path("db", "state.db"), socket: cfg.KineSocket(), log: log}
}

// clockPath is the file of the database's lease clock.
func (k *Kine) clockPath() string { return filepath.Join(filepath.Dir(k.dbPath), "revisions.json") }

// Name implements embed.Component.
func (k *Kine) Name() string { return "kine" }

// Endpoint is the etcd URL the API server uses.
func (k *Kine) Endpoint() string { return "unix://" + k.socket }

// Start opens the database and serves the etcd API on the socket.
func (k *Kine) Start(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Dir(k.dbPath), 0o700); err != nil {
		return fmt.Errorf("create db dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(k.socket), 0o700); err != nil {
		return fmt.Errorf("create run dir: %w", err)
	}
	_ = os.Remove(k.socket) // a stale socket from a killed daemon blocks the listener
	dsn := "sqlite://" + k.dbPath + "?_journal_mode=WAL&_busy_timeout=30000&_synchronous=NORMAL&_txlock=immediate&cache=shared"
	// A database this cannot read, kine reports as it opens it.
	if vacuum, err := worthVacuum(ctx, k.dbPath, vacuumMinFree); err != nil || !vacuum {
		dsn += "&" + noVacuumParam
	}
	ctx, k.cancel = context.WithCancel(ctx)
	k.runCtx = ctx
	// kine's library defaults are zero; these are the defaults of kine's
	// CLI, but for the compaction: the first one comes an interval after
	// the start and drops the history from before it, and most `octo up`
	// sessions on a laptop last less than kine's 5 minutes, which left the
	// history of every start in the database (68,000 rows, 410 MB, after
	// a day of warm starts with 1,000 Workers), each list of the API
	// server slower for it.
	etcd, err := endpoint.Listen(ctx, endpoint.Config{
		Listener:            "unix://" + k.socket,
		Endpoint:            dsn,
		NotifyInterval:      5 * time.Second,
		EmulatedETCDVersion: "3.6.11",
		CompactInterval:     time.Minute,
		CompactTimeout:      5 * time.Second,
		CompactMinRetain:    1000,
		CompactBatchSize:    1000,
		PollBatchSize:       500,
	})
	if err != nil {
		k.cancel()
		return fmt.Errorf("listen: %w", err)
	}
	k.etcd = etcd
	return nil
}

// Ready waits until the etcd API answers a health check.
func (k *Kine) Ready(ctx context.Context) error {
	conn, err := grpc.NewClient("unix://"+k.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial kine: %w", err)
	}
	defer conn.Close()
	for {
		_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			k.startClock()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kine not healthy: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startClock starts the lease clock once kine serves (its table exists).
func (k *Kine) startClock() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped || k.clock != nil {
		return
	}
	c, err := openClock(k.dbPath, k.clockPath())
	if err != nil {
		k.log.Warn("kine: no lease clock; Events outlive their TTL across restarts", "err", err)
		return
	}
	k.clock = c
	var warned atomic.Bool
	go c.run(k.runCtx, func(err error) {
		if !warned.Swap(true) {
			k.log.Warn("kine: lease clock not recorded", "err", err)
		}
	})
}

// Stop closes the gRPC server and the database, records the lease clock's
// last checkpoint and removes the keys whose lease ran out (expireLeases).
func (k *Kine) Stop(ctx context.Context) error {
	if k.cancel != nil {
		k.cancel()
	}
	k.mu.Lock()
	k.stopped = true
	clock := k.clock
	k.mu.Unlock()
	if clock != nil {
		if err := clock.close(ctx); err != nil {
			k.log.Warn("kine: lease clock not recorded", "err", err)
		}
	}
	// At the stop, off the next start's path: the query reads the newest
	// row of every key (~0.2 s with 15,000 keys). Best effort: kine's own
	// timers expire what is left, an hour into a session.
	if n, err := expireLeases(ctx, k.dbPath, k.clockPath(), time.Now()); err != nil {
		k.log.Warn("kine: keys whose lease ran out are kept", "err", err)
	} else if n > 0 {
		k.log.Info("kine: removed keys whose lease ran out (Events older than their TTL)", "keys", n)
	}
	return nil
}
