package cfapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/octohq/octo/internal/store"
)

// TestMetricsNeedTheToken: /metrics answers Prometheus' text to the holder
// of the API token only.
func TestMetricsNeedTheToken(t *testing.T) {
	s := New(Options{Identity: store.Identity{Token: "the-token"}, Store: store.New(store.Options{D1Dir: t.TempDir()}),
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "octo_worker_requests_total 1\n")
		})})
	e := echo.New() // echo's own error handler, as the edge's outside the API's prefix
	s.Register(e)
	for auth, want := range map[string]int{"": http.StatusUnauthorized, "Bearer wrong": http.StatusUnauthorized, "Bearer the-token": http.StatusOK} {
		req := httptest.NewRequest(http.MethodGet, MetricsPath, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if rec.Code != want || (want == http.StatusOK) != strings.Contains(rec.Body.String(), "octo_worker_requests_total 1") {
			t.Errorf("%q: %d %q, want %d", auth, rec.Code, rec.Body, want)
		}
	}
}
