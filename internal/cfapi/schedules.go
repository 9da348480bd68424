package cfapi

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
)

// maxSchedulesBody bounds the body of PUT …/schedules.
const maxSchedulesBody = 64 << 10

// scheduleJSON is one cron trigger as Cloudflare lists it.
type scheduleJSON struct {
	Cron       string `json:"cron"`
	CreatedOn  string `json:"created_on"`
	ModifiedOn string `json:"modified_on"`
}

func schedulesResult(triggers []apiv1.CronTrigger) map[string]any {
	out := make([]scheduleJSON, 0, len(triggers))
	for _, t := range triggers {
		out = append(out, scheduleJSON{Cron: t.Cron, CreatedOn: ts(t.CreatedOn.Time), ModifiedOn: ts(t.CreatedOn.Time)})
	}
	return map[string]any{"schedules": out}
}

// getSchedules lists a script's cron triggers (wrangler reads them when it
// downloads a Worker's configuration).
func (s *Server) getSchedules(c echo.Context) error {
	got, err := s.store.Schedules(c.Request().Context(), account(c), c.Param("script"))
	if err != nil {
		return err
	}
	return ok(c, schedulesResult(got))
}

// putSchedules replaces a script's cron triggers: `wrangler deploy` with
// triggers.crons and `wrangler triggers deploy` send [{"cron": "..."}].
func (s *Server) putSchedules(c echo.Context) error {
	b, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, maxSchedulesBody))
	if err != nil {
		return Errorf(http.StatusRequestEntityTooLarge, store.CodeBadRequest, "the schedules are too large (at most %d bytes)", maxSchedulesBody)
	}
	var body []struct {
		Cron *string `json:"cron"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "the body must be a JSON array of {\"cron\": \"<expression>\"}: %v", err)
	}
	crons := make([]string, 0, len(body))
	for _, e := range body {
		if e.Cron == nil {
			return Errorf(http.StatusBadRequest, store.CodeBadRequest, "every schedule needs a \"cron\" expression")
		}
		crons = append(crons, *e.Cron)
	}
	got, err := s.store.PutSchedules(c.Request().Context(), account(c), c.Param("script"), crons)
	if err != nil {
		return err
	}
	return ok(c, schedulesResult(got))
}
