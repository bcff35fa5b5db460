package messages

import "fmt"

// Code is a machine-readable error code of the protocol.
type Code string

// The error codes of the protocol, each with the HTTP-like status it travels with.
const (
	CodeBadRequest  Code = "BAD_REQUEST" // 400: malformed request, unknown field or op, wrong type
	CodeSQL         Code = "SQL_ERROR"   // 400 or 409: the database refused the statement
	CodeForbidden   Code = "FORBIDDEN"   // 403: privilege, read-only mode, disabled operation
	CodeNotFound    Code = "NOT_FOUND"   // 404: unknown table or function
	CodeTimeout     Code = "TIMEOUT"     // 408: statement timeout or request deadline
	CodeConflict    Code = "CONFLICT"    // 409: unique/foreign key violation, serialization failure, deadlock
	CodeLocked      Code = "LOCKED"      // 409: a maintenance target is already locked
	CodeTooLarge    Code = "TOO_LARGE"   // 413: request or answer over the size limit
	CodeUnavailable Code = "UNAVAILABLE" // 503: database or state backend unreachable, pool exhausted
	CodeInternal    Code = "INTERNAL"    // 500: anything unexpected
	CodeTxAborted   Code = "TX_ABORTED"  // 409: an interactive transaction failed earlier; roll it back
	CodeTxGone      Code = "TX_GONE"     // 410: the interactive transaction has ended
)

// Status returns the default HTTP-like status of a code. SQL_ERROR is 400 here;
// the mapping from SQLSTATE may give 409 for integrity errors.
func (c Code) Status() int {
	switch c {
	case CodeBadRequest, CodeSQL:
		return 400
	case CodeForbidden:
		return 403
	case CodeNotFound:
		return 404
	case CodeTimeout:
		return 408
	case CodeConflict, CodeLocked, CodeTxAborted:
		return 409
	case CodeTxGone:
		return 410
	case CodeTooLarge:
		return 413
	case CodeUnavailable:
		return 503
	default:
		return 500
	}
}

// Error is the error object of a failed request. It is also a Go error.
//
// On the worker's side an Error may carry the Go error it was made from (its
// cause, see [Wrap] and [Error.WithCause]): the worker logs it and
// [errors.Unwrap] returns it, but it is never sent, so a caller sees only the
// fields below. An Error decoded from an answer has no cause.
type Error struct {
	Code    Code   `json:"code"`
	Status  int    `json:"status"`
	Message string `json:"message"`
	// SQLState is the PostgreSQL error code when the database raised the error.
	SQLState string `json:"sqlstate,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Hint     string `json:"hint,omitempty"`
	// Position is the 1-based character position of the error in the statement.
	Position int `json:"position,omitempty"`
	// FailedIndex is the index of the statement (tx) or item (many) that failed.
	FailedIndex *int `json:"failed_index,omitempty"`
	// Param names the offending parameter or field of a BAD_REQUEST, when known.
	Param string `json:"param,omitempty"`

	cause error // logged, never marshalled
}

// Error implements error.
func (e *Error) Error() string {
	if e.SQLState != "" {
		return fmt.Sprintf("%s (%d, SQLSTATE %s): %s", e.Code, e.Status, e.SQLState, e.Message)
	}
	return fmt.Sprintf("%s (%d): %s", e.Code, e.Status, e.Message)
}

// Unwrap returns the error's cause, or nil.
func (e *Error) Unwrap() error { return e.cause }

// WithCause sets the error's cause and returns the error. The cause stays on
// this side of the wire: it is for logs and errors.Is/As.
func (e *Error) WithCause(cause error) *Error {
	e.cause = cause
	return e
}

// ErrorBody is the JSON body of a failed request.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// Errorf builds an Error with the code's default status.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Status: code.Status(), Message: fmt.Sprintf(format, args...)}
}

// Wrap builds an Error with the code's default status and cause as its
// cause: the message says what the caller may know, the cause what went wrong.
func Wrap(code Code, cause error, format string, args ...any) *Error {
	return Errorf(code, format, args...).WithCause(cause)
}

// BadRequest builds a BAD_REQUEST error that names the offending field or parameter.
func BadRequest(param, format string, args ...any) *Error {
	e := Errorf(CodeBadRequest, format, args...)
	e.Param = param
	return e
}
