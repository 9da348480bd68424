package daemon

import (
	"context"
	"fmt"

	"github.com/octohq/octo/internal/embed"
)

// gated is a component that starts only once its gate opens, such as the
// API server's default roles existing for a component that authorizes
// through them. Its Start returns at once; Ready waits for the gate, then
// for the component.
type gated struct {
	embed.Component
	gate    func(context.Context) error
	cancel  context.CancelFunc
	started chan error // the gate's and the component's Start outcome, once
	opened  bool       // the gate opened: Start ran (set before started)
}

// gate wraps c so that it starts after open returns nil.
func gate(c embed.Component, open func(context.Context) error) *gated {
	return &gated{Component: c, gate: open}
}

// Start waits for the gate in the background and then starts the component.
func (g *gated) Start(ctx context.Context) error {
	ctx, g.cancel = context.WithCancel(ctx)
	g.started = make(chan error, 1)
	go func() {
		if err := g.gate(ctx); err != nil {
			g.started <- fmt.Errorf("waiting to start: %w", err)
			return
		}
		g.opened = true
		g.started <- g.Component.Start(ctx)
	}()
	return nil
}

// Ready waits for the gate and the component's Start, then for the component.
func (g *gated) Ready(ctx context.Context) error {
	select {
	case err := <-g.started:
		g.started <- err
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return fmt.Errorf("waiting to start: %w", ctx.Err())
	}
	return g.Component.Ready(ctx)
}

// Stop gives up waiting for the gate, or stops the component once its
// Start ran, even a failed one: it may have started parts.
func (g *gated) Stop(ctx context.Context) error {
	if g.cancel == nil {
		return nil
	}
	g.cancel()
	select {
	case err := <-g.started:
		g.started <- err
	case <-ctx.Done():
		return ctx.Err()
	}
	if !g.opened {
		return nil
	}
	return g.Component.Stop(ctx)
}

// Endpoint is the component's, if it has one (embed.Endpointer).
func (g *gated) Endpoint() string { return endpointOf(g.Component) }

// all is the gate that opens once every one of gates has.
func all(gates ...func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		for _, g := range gates {
			if err := g(ctx); err != nil {
				return err
			}
		}
		return nil
	}
}

// early is a component that starts with its phase without holding it back:
// the next phase starts without waiting for it, and a component that needs
// it waits with Wait (see gate). The daemon still waits for it before it
// reports ready.
type early struct {
	embed.Component
	done chan struct{}
	err  error
}

// startEarly wraps c; the daemon starts it as described at early.
func startEarly(c embed.Component) *early {
	return &early{Component: c, done: make(chan struct{})}
}

// finish records the outcome of the component's start and readiness.
func (e *early) finish(err error) {
	e.err = err
	close(e.done)
}

// Endpoint is the component's, if it has one (embed.Endpointer).
func (e *early) Endpoint() string { return endpointOf(e.Component) }

// endpointOf is c's embed.Endpointer endpoint, or "".
func endpointOf(c embed.Component) string {
	if ep, ok := c.(embed.Endpointer); ok {
		return ep.Endpoint()
	}
	return ""
}

// Wait blocks until the component is ready (nil) or failed to be.
func (e *early) Wait(ctx context.Context) error {
	select {
	case <-e.done:
		if e.err != nil {
			return fmt.Errorf("%s: %w", e.Name(), e.err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
