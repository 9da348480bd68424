package daemon

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// fakeComponent counts its lifecycle calls.
type fakeComponent struct{ started, stopped atomic.Int32 }

func (f *fakeComponent) Name() string                { return "fake" }
func (f *fakeComponent) Start(context.Context) error { f.started.Add(1); return nil }
func (f *fakeComponent) Ready(context.Context) error { return nil }
func (f *fakeComponent) Stop(context.Context) error  { f.stopped.Add(1); return nil }

func TestGateStartsAfterItOpens(t *testing.T) {
	open := make(chan struct{})
	f := &fakeComponent{}
	g := gate(f, func(ctx context.Context) error {
		select {
		case <-open:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if f.started.Load() != 0 {
		t.Fatal("started before the gate opened")
	}
	close(open)
	if err := g.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if f.started.Load() != 1 {
		t.Fatalf("started %d times, want 1", f.started.Load())
	}
	if err := g.Stop(context.Background()); err != nil || f.stopped.Load() != 1 {
		t.Fatalf("Stop: %v, stopped %d times", err, f.stopped.Load())
	}
}

func TestGateStoppedWhileClosedNeverStarts(t *testing.T) {
	f := &fakeComponent{}
	g := gate(f, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := g.Ready(ctx); err == nil {
		t.Fatal("Ready succeeded behind a closed gate")
	}
	if err := g.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.started.Load() != 0 || f.stopped.Load() != 0 {
		t.Fatalf("started %d, stopped %d times; want neither", f.started.Load(), f.stopped.Load())
	}
}

func TestEarlyWaitReportsTheOutcome(t *testing.T) {
	e := startEarly(&fakeComponent{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := e.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait before finish = %v, want the context's deadline", err)
	}
	boom := errors.New("boom")
	e.finish(boom)
	if err := e.Wait(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Wait = %v, want %v", err, boom)
	}
}

func TestAllOpensAfterEveryGate(t *testing.T) {
	var order []string
	open := func(name string, err error) func(context.Context) error {
		return func(context.Context) error { order = append(order, name); return err }
	}
	if err := all(open("a", nil), open("b", nil))(context.Background()); err != nil || len(order) != 2 {
		t.Fatalf("all = %v after %v, want nil after both", err, order)
	}
	boom := errors.New("boom")
	order = nil
	if err := all(open("a", boom), open("b", nil))(context.Background()); !errors.Is(err, boom) || len(order) != 1 {
		t.Fatalf("all = %v after %v, want the first gate's error, the second not waited for", err, order)
	}
}

// failingStart fails its Start after starting parts that Stop must end.
type failingStart struct{ fakeComponent }

func (f *failingStart) Start(context.Context) error {
	f.started.Add(1)
	return errors.New("half started")
}
func (f *failingStart) Endpoint() string { return "unix:///run/fake.sock" }

func TestGateStopsAComponentWhoseStartFailed(t *testing.T) {
	f := &failingStart{}
	g := gate(f, func(context.Context) error { return nil })
	if got := g.Endpoint(); got != "unix:///run/fake.sock" {
		t.Errorf("Endpoint = %q, want the component's", got)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g.Ready(context.Background()); err == nil {
		t.Fatal("Ready succeeded though Start failed")
	}
	if err := g.Stop(context.Background()); err != nil || f.stopped.Load() != 1 {
		t.Fatalf("Stop: %v, stopped %d times, want once", err, f.stopped.Load())
	}
}
