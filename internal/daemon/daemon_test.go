package daemon

import (
	"context"
	"sync/atomic"
	"testing"
)

// TestExitUnlessStopping: while the daemon runs, klog's exit ends the
// process; once it stops, only the calling goroutine ends.
func TestExitUnlessStopping(t *testing.T) {
	var code atomic.Int32
	ctx, stop := context.WithCancel(t.Context())
	exit := exitUnlessStopping(ctx, func(c int) { code.Store(int32(c)) })
	exit(3)
	if code.Load() != 3 {
		t.Fatalf("while running: exit code %d, want 3", code.Load())
	}
	stop()
	code.Store(0)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		exit(1)
		t.Error("the caller resumed after exit")
	}()
	<-ended
	if code.Load() != 0 {
		t.Errorf("while stopping: exit called with %d, want the goroutine ended instead", code.Load())
	}
}
