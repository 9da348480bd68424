package teardown

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/octohq/octo/internal/config"
)

// Clean reads the host, plans the teardown for cfg and executes it. It is what
// `octo down`, the daemon's exit and `octo up`'s stale-state recovery run.
func Clean(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	host, err := ReadHostState(cfg)
	if err != nil {
		return fmt.Errorf("read host state: %w", err)
	}
	plan := NewPlan(cfg, host)
	if plan.Empty() {
		return nil
	}
	if err := plan.Execute(ctx, log); err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	return nil
}
