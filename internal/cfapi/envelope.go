package cfapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/octohq/octo/internal/store"
)

// Message is one entry of the envelope's errors or messages.
type Message struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// Envelope is Cloudflare's answer format for every JSON response.
type Envelope struct {
	Success    bool      `json:"success"`
	Errors     []Message `json:"errors"`
	Messages   []Message `json:"messages"`
	Result     any       `json:"result"`
	ResultInfo *PageInfo `json:"result_info,omitempty"`
}

// PageInfo is the envelope's result_info for paged lists.
type PageInfo struct {
	Page       int    `json:"page,omitempty"`
	PerPage    int    `json:"per_page,omitempty"`
	Count      int    `json:"count"`
	TotalCount int    `json:"total_count,omitempty"`
	Cursor     string `json:"cursor,omitempty"`
}

// APIError is an error with the HTTP status and Cloudflare code to answer.
type APIError struct {
	Status int
	Code   int
	Msg    string
}

func (e *APIError) Error() string { return fmt.Sprintf("%d: %s", e.Code, e.Msg) }

// Errorf builds an APIError.
func Errorf(status, code int, format string, args ...any) *APIError {
	return &APIError{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// ok answers 200 with result in the envelope.
func ok(c echo.Context, result any) error {
	return c.JSON(http.StatusOK, Envelope{Success: true, Errors: []Message{}, Messages: []Message{}, Result: result})
}

// okPaged answers 200 with result and result_info.
func okPaged(c echo.Context, result any, info PageInfo) error {
	return c.JSON(http.StatusOK, Envelope{Success: true, Errors: []Message{}, Messages: []Message{}, Result: result, ResultInfo: &info})
}

// ErrorHandler renders every error as Cloudflare's envelope: APIError as is,
// echo's own errors (unknown route, bad method) with their status.
func ErrorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, code, msg := http.StatusInternalServerError, store.CodeInternal, "internal error"
	var ae *APIError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
		status, code, msg = ae.Status, ae.Code, ae.Msg
	case store.AsError(err) != nil:
		se := store.AsError(err)
		status, code, msg = se.Kind.HTTPStatus(), se.Code, se.Msg
	case errors.As(err, &he):
		status = he.Code
		msg = fmt.Sprint(he.Message)
		switch he.Code {
		case http.StatusNotFound:
			code, msg = store.CodeNoRoute, "No route for that URI"
		case http.StatusMethodNotAllowed:
			code, msg = 10405, "Method not allowed for this route"
		default:
			code = store.CodeBadRequest
		}
	default:
		c.Logger().Error(err)
	}
	_ = c.JSON(status, Envelope{Success: false, Errors: []Message{{Code: code, Message: msg}}, Messages: []Message{}, Result: nil})
}
