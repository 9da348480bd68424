// Package embed defines the lifecycle every embedded part of octo implements.
//
// The daemon is a list of components started in order and stopped in reverse,
// in the spirit of Caddy's module lifecycle: Start begins the work and returns
// quickly, Ready blocks until the component serves, Stop releases everything the
// component holds. A component that fails names itself in the error.
package embed

import (
	"context"
	"fmt"
)

// Component is one embedded part of octo (kine, kube-apiserver, S3, ...).
type Component interface {
	// Name is the short, stable name used in status output, logs and errors.
	Name() string
	// Start launches the component. It must not block until the component is
	// ready; long-running work continues in goroutines or child processes bound
	// to ctx.
	Start(ctx context.Context) error
	// Ready blocks until the component serves requests or ctx is done.
	Ready(ctx context.Context) error
	// Stop shuts the component down and waits for it to release its resources.
	Stop(ctx context.Context) error
}

// Endpointer is implemented by components that expose an address to users.
type Endpointer interface {
	// Endpoint is the address users connect to, for example "http://127.0.0.1:9000".
	Endpoint() string
}

// Error wraps a failure of one component with the component's name.
type Error struct {
	Component string
	Op        string
	Err       error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s: %v", e.Component, e.Op, e.Err) }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }
