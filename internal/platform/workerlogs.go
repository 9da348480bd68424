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
	seen map[string]*logSetting
}

type logSetting struct {
	on         bool
	at         time.Time // zero until the first lookup ends
	refreshing bool
	done       chan struct{} // closed when the first lookup ends
}

func newWorkerLogs(dir string, retention time.Duration, st *store.Store) *workerLogs {
	return &workerLogs{Store: workerlogs.New(dir, retention, nil, nil), st: st, seen: map[string]*logSetting{}}
}

// Logged implements tail.Sink. The trace collector calls it for every
// batch of events while a pod waits for the answer, so it waits on the
// cluster only for a script's first lookup (once, whoever asks meanwhile):
// later, a stale setting is refreshed in the background and the last one
// holds until then.
func (w *workerLogs) Logged(account, script string) bool {
	k := account + "/" + script
	w.mu.Lock()
	s, ok := w.seen[k]
	switch {
	case !ok:
		if len(w.seen) >= maxLogSettings {
			clear(w.seen)
		}
		s = &logSetting{refreshing: true, done: make(chan struct{})}
		w.seen[k] = s
		w.mu.Unlock()
		w.refresh(s, account, script)
		w.mu.Lock()
	case s.at.IsZero(): // the first lookup runs: wait for it
		done := s.done
		w.mu.Unlock()
		<-done
		w.mu.Lock()
	case time.Since(s.at) >= logSettingTTL && !s.refreshing:
		s.refreshing = true
		go w.refresh(s, account, script)
	}
	on := s.on
	w.mu.Unlock()
	return on
}

// refresh reads a script's logs setting from its release into s.
func (w *workerLogs) refresh(s *logSetting, account, script string) {
	on := false
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if a, err := w.st.Account(ctx, account); err == nil {
		if rel, err := w.st.Release(ctx, a, script); err == nil {
			on = rel.Spec.Observability.SamplingRate() > 0
		}
	}
	w.mu.Lock()
	s.on, s.at, s.refreshing = on, time.Now(), false
	if s.done != nil {
		close(s.done)
		s.done = nil
	}
	w.mu.Unlock()
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
