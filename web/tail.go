package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/octohq/octo/internal/store"
)

// heartbeat is how often an idle tail stream sends a comment, so that the
// browser and any proxy keep it open and a dead client is noticed.
var heartbeat = 15 * time.Second

// tail streams a script's tail events as Server-Sent Events: one
// "event: tail" per invocation, its data the event as `wrangler tail
// --format json` prints it. The stream starts with "event: ready".
func (d *Dashboard) tail(c echo.Context) error {
	if d.opts.Tail == nil {
		return fail(http.StatusNotImplemented, "live tail is not available")
	}
	ctx := c.Request().Context()
	a, err := d.findAccount(ctx, c.Param("account"))
	if err != nil {
		return err
	}
	script := c.Param("script")
	if store.ValidScriptName(script) != nil {
		return fail(http.StatusBadRequest, "invalid script name %q", script)
	}
	events, cancel := d.opts.Tail.Subscribe(a.ID, script)
	defer cancel()

	w := c.Response()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event string, data []byte) error {
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return err
		}
		w.Flush()
		return nil
	}
	ready, _ := json.Marshal(map[string]string{"account": a.ID, "script": script})
	if err := send("ready", ready); err != nil {
		return nil
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				_ = send("end", []byte(`{"reason":"tail stopped"}`))
				return nil
			}
			b, err := json.Marshal(ev)
			if err != nil {
				d.log.Warn("tail event", "err", err)
				continue
			}
			if err := send("tail", b); err != nil {
				return nil
			}
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return nil
			}
			w.Flush()
		}
	}
}
