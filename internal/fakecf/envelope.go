package fakecf

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
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

// Cloudflare error codes octo answers with.
const (
	CodeAuthentication   = 10000 // missing or invalid credentials
	CodeUnauthorized     = 9109  // /user and /memberships without access
	CodeBadRequest       = 10001 // malformed request
	CodeNotFound         = 10007 // worker (or route) not found
	CodeScriptValidation = 10021 // the script failed validation
	CodeInheritBinding   = 10057 // unresolvable inherit binding
	CodeTooLarge         = 10027 // upload over the size limit
	CodeKVNotFound       = 10013 // KV namespace not found
	CodeKVKeyNotFound    = 10009 // KV key not found
	CodeInternal         = 10002 // unexpected server failure
	CodeVersionNotFound  = 10217 // version not found
	CodeBadDeployment    = 10218 // invalid deployment request
	CodeSecretNotFound   = 10056 // secret not found
	// A secret or settings change while the latest version is not the one
	// fully deployed (after `versions upload`, a split or a rollback).
	CodeSettingsEditNotDeployed = 10214
	CodeSecretEditNotDeployed   = 10215
)

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
	status, code, msg := http.StatusInternalServerError, CodeInternal, "internal error"
	var ae *APIError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
		status, code, msg = ae.Status, ae.Code, ae.Msg
	case errors.As(err, &he):
		status = he.Code
		msg = fmt.Sprint(he.Message)
		switch he.Code {
		case http.StatusNotFound:
			code, msg = 7003, "No route for that URI"
		case http.StatusMethodNotAllowed:
			code, msg = 10405, "Method not allowed for this route"
		default:
			code = CodeBadRequest
		}
	default:
		c.Logger().Error(err)
	}
	_ = c.JSON(status, Envelope{Success: false, Errors: []Message{{Code: code, Message: msg}}, Messages: []Message{}, Result: nil})
}
