package store

import (
	"errors"
	"fmt"
)

// Kind classifies the errors the store returns for bad input and missing or
// conflicting records, so that every front answers them its own way: the
// Cloudflare API with an HTTP status and envelope, the pod-facing KV protocol
// with a status line, the dashboard with a JSON message. Errors without a Kind
// (S3 or cluster failures) are internal.
type Kind int

// The kinds of store errors.
const (
	// Invalid is malformed or refused input.
	Invalid Kind = iota + 1
	// NotFound is a missing record (account, script, version, secret, KV
	// namespace or key).
	NotFound
	// Conflict is a request that clashes with the current state (a script
	// still being deleted).
	Conflict
	// TooLarge is input over a size limit.
	TooLarge
	// Unsupported is a valid request for something octo does not do.
	Unsupported
	// Unauthorized is a request whose credential (an assets upload token)
	// is not valid.
	Unauthorized
)

// HTTPStatus is the status code an HTTP front answers a refusal of kind k
// with (as Cloudflare does); 500 for an unknown kind. The store itself
// speaks no HTTP: this is the one mapping its fronts share.
func (k Kind) HTTPStatus() int {
	switch k {
	case Invalid, Unsupported:
		return 400
	case NotFound:
		return 404
	case Conflict:
		return 409
	case TooLarge:
		return 413
	case Unauthorized:
		return 401
	}
	return 500
}

// Cloudflare error codes of the conditions the store reports. They name
// conditions of the Workers platform (wrangler prints them), not HTTP.
const (
	CodeAuthentication   = 10000 // missing or invalid credentials
	CodeUnauthorized     = 9109  // /user and /memberships without access
	CodeBadRequest       = 10001 // malformed request
	CodeInternal         = 10002 // unexpected server failure
	CodeNoRoute          = 7003  // unknown account or route
	CodeNotFound         = 10007 // worker not found
	CodeKVKeyNotFound    = 10009 // KV key not found
	CodeKVNotFound       = 10013 // KV namespace not found
	CodeKVTitleExists    = 10014 // KV namespace title taken
	CodeKVNamespaceLimit = 10018 // too many KV namespaces in the account
	CodeScriptValidation = 10021 // the script failed validation
	CodeTooLarge         = 10027 // upload over the size limit
	CodeKVBadExpiration  = 10033 // KV expiration too soon
	CodeKVBadNamespaceID = 10041 // a kv_namespace binding's namespace_id is not an ID
	CodeKVStorageLimit   = 10048 // the account's KV storage limit is reached
	CodeSecretNotFound   = 10056 // secret not found
	CodeInheritBinding   = 10057 // unresolvable inherit binding
	CodeVersionNotFound  = 10217 // version not found
	// Durable Objects: a binding to a class no migration created, a hosted
	// class the code does not export, a migration that does not apply, a
	// stale old_tag, a migration in a version upload.
	CodeObjectBinding      = 10061
	CodeObjectNotExported  = 10070
	CodeObjectMigration    = 10074
	CodeMigrationTag       = 10079
	CodeVersionedMigration = 10211
	CodeBadDeployment      = 10218 // invalid deployment request
	// A secret or settings change while the latest version is not the one
	// fully deployed (after `versions upload`, a split or a rollback).
	CodeSettingsEditNotDeployed = 10214
	CodeSecretEditNotDeployed   = 10215
)

// Error is a refusal by the store: its Kind, the Cloudflare code that names
// the condition, and a message for the user.
type Error struct {
	Kind Kind
	Code int
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Errorf builds an *Error.
func Errorf(kind Kind, code int, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// AsError returns the *Error in err's chain, or nil when err is not a
// refusal of the store (an internal failure).
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// IsNotFound reports whether err is a NotFound refusal with code (any code
// when code is 0).
func IsNotFound(err error, code int) bool {
	e := AsError(err)
	return e != nil && e.Kind == NotFound && (code == 0 || e.Code == code)
}

// invalid is an Invalid refusal with CodeBadRequest.
func invalid(format string, args ...any) *Error {
	return Errorf(Invalid, CodeBadRequest, format, args...)
}

// badUpload is an Invalid refusal with the script-validation code wrangler prints.
func badUpload(format string, args ...any) *Error {
	return Errorf(Invalid, CodeScriptValidation, format, args...)
}

// workerNotFound is the refusal for a script that does not exist.
func workerNotFound(script string) *Error {
	return Errorf(NotFound, CodeNotFound, "This Worker does not exist on your account. (script %q)", script)
}
