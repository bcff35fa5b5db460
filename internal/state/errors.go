package state

import (
	"context"
	"errors"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// ErrUnavailable wraps errors of a backend that cannot be reached.
var ErrUnavailable = errors.New("state backend unavailable")

// ErrNotInteger is returned by KVIncr when the stored value is not an integer.
var ErrNotInteger = errors.New("value is not an integer or out of range")

// AsError maps an error of a Backend or a Service to the protocol's error
// model: unreachable backends are UNAVAILABLE, a non-integer incr is
// BAD_REQUEST, deadlines are TIMEOUT, anything else is INTERNAL. The answer's
// message stays generic (it says nothing of the backend's internals); err is
// its cause, for the log. A *messages.Error within err is returned as it is.
func AsError(err error) *messages.Error {
	var me *messages.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &me):
		return me
	case errors.Is(err, ErrNotInteger):
		return messages.BadRequest("key", "incr: the stored value is not an integer").WithCause(err)
	case errors.Is(err, context.DeadlineExceeded):
		return messages.Wrap(messages.CodeTimeout, err, "state backend did not answer in time")
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.Canceled):
		return messages.Wrap(messages.CodeUnavailable, err, "state backend unavailable")
	}
	return messages.Wrap(messages.CodeInternal, err, "state backend error")
}
