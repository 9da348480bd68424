package platform

import (
	"context"
	"sync"
	"time"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerlogs"
)

// logSettingTTL is how long workerLogs trusts a script's logs setting: a
// change (wrangler deploy, PATCH script-settings) applies within it.
const logSettingTTL = 5 * time.Second

// maxLogSettings bounds the remembered settings; past it they start over.
const maxLogSettings = 10_000

// workerLogs is the tail hub's tail.Sink: the Workers Logs store, for the
// scripts whose release has observability enabled.
type workerLogs struct {
	*workerlogs.Store
	st *store.Store

	mu   sync.Mutex
	seen map[string]logSetting
}

type logSetting struct {
	on bool
	at time.Time
}

func newWorkerLogs(dir string, retention time.Duration, st *store.Store) *workerLogs {
	return &workerLogs{Store: workerlogs.New(dir, retention, nil, nil), st: st, seen: map[string]logSetting{}}
}

// Logged implements tail.Sink.
func (w *workerLogs) Logged(account, script string) bool {
	k := account + "/" + script
	w.mu.Lock()
	s, ok := w.seen[k]
	w.mu.Unlock()
	if ok && time.Since(s.at) < logSettingTTL {
		return s.on
	}
	on := false
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if a, err := w.st.Account(ctx, account); err == nil {
		if rel, err := w.st.Release(ctx, a, script); err == nil {
			on = rel.Spec.Observability.SamplingRate() > 0
		}
	}
	w.mu.Lock()
	if len(w.seen) >= maxLogSettings {
		clear(w.seen)
	}
	w.seen[k] = logSetting{on: on, at: time.Now()}
	w.mu.Unlock()
	return on
}

// search is the dashboard's search of the kept logs; nil without a store.
func (w *workerLogs) search() func(ctx context.Context, account, script string, q workerlogs.Query) ([]workerlogs.Entry, error) {
	if w == nil {
		return nil
	}
	return func(_ context.Context, account, script string, q workerlogs.Query) ([]workerlogs.Entry, error) {
		return w.Search(account, script, q)
	}
}
