// Package pgerr maps errors of PostgreSQL, pgx and the executor to the
// protocol's error model: the one place SQLSTATEs become codes and
// statuses. The worker's answer path calls AsError; the mapped error keeps
// what it was mapped from as its cause, for the log.
package pgerr

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// ErrStale is a cached statement description that no longer matches the
// statement's result (its table changed): the result was not read.
var ErrStale = errors.New("pgexec: the statement's result columns changed")

// ErrPoolExhausted is returned when no connection could be had within
// POSTGRES_POOL_TIMEOUT.
var ErrPoolExhausted = errors.New("no database connection free within the pool timeout")

// AsError maps any error of this package, of pgx or of the context to the
// protocol's error model. It is the one place SQLSTATEs become codes. The
// answer keeps err as its cause, for the log: a *messages.Error within err is
// returned as it is.
func AsError(err error) *messages.Error {
	if err == nil {
		return nil
	}
	var me *messages.Error
	if errors.As(err, &me) {
		return me
	}
	var pe *pgconn.PgError
	if refused(err) {
		// Whatever refused the connection, the server, a pooler or the
		// network, the request is not at fault: another try, or another
		// worker, may well get one.
		me := messages.Wrap(messages.CodeUnavailable, err, "database unavailable: could not connect")
		if errors.As(err, &pe) {
			me.SQLState, me.Message = pe.Code, "database unavailable: "+pe.Message
		}
		return me
	}
	if errors.As(err, &pe) {
		me := fromPgError(pe)
		if pe.Severity == "FATAL" || pe.Severity == "PANIC" {
			// The session ended (terminated, timed out idle in a
			// transaction, dropped by a pooler), not the statement.
			me.Code, me.Status = messages.CodeUnavailable, 503
		}
		return me.WithCause(err)
	}
	var big *pgproto3.ExceededMaxBodyLenErr
	switch {
	case errors.Is(err, ErrStale):
		return messages.Wrap(messages.CodeUnavailable, err, "the statement's result columns changed since it was last described (its table changed); it may have run: send it again to read its result")
	case errors.As(err, &big):
		return messages.Wrap(messages.CodeTooLarge, err, "a message from the database (one row) is %d bytes, over the worker's bound of %d", big.ActualBodyLen, big.MaxExpectedBodyLen)
	case errors.Is(err, ErrPoolExhausted):
		return messages.Wrap(messages.CodeUnavailable, err, "database pool exhausted: %v", ErrPoolExhausted)
	case errors.Is(err, context.DeadlineExceeded):
		return messages.Wrap(messages.CodeTimeout, err, "request deadline passed")
	case errors.Is(err, context.Canceled):
		return messages.Wrap(messages.CodeUnavailable, err, "request cancelled: the worker is shutting down")
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err) || connectionLost(err) {
		return messages.Wrap(messages.CodeUnavailable, err, "database unavailable")
	}
	return messages.Wrap(messages.CodeInternal, err, "internal error")
}

// refused reports a connection that could not be opened, for a reason other
// than the request's own deadline or cancel.
func refused(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}

// connectionLost reports errors of a connection that broke mid-request.
func connectionLost(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// fromPgError maps a PostgreSQL error by its SQLSTATE, keeping the server's
// message, detail, hint and position.
func fromPgError(pe *pgconn.PgError) *messages.Error {
	code, status := classify(pe.Code)
	e := &messages.Error{
		Code:     code,
		Status:   status,
		Message:  pe.Message,
		SQLState: pe.Code,
		Detail:   pe.Detail,
		Hint:     pe.Hint,
		Position: int(pe.Position),
	}
	return e
}

// classify maps a SQLSTATE to a code and status; PROTOCOL.md has the table.
func classify(state string) (messages.Code, int) {
	switch state {
	case "42501", "25006":
		return messages.CodeForbidden, 403
	case "42P01", "42883":
		return messages.CodeNotFound, 404
	case "57014":
		return messages.CodeTimeout, 408
	case "23505", "23503":
		// PROTOCOL.md's example and the foundation issue give integrity
		// violations SQL_ERROR with status 409; docs/protocol.md explains.
		return messages.CodeSQL, 409
	case "40001", "40P01":
		return messages.CodeConflict, 409
	}
	switch {
	case strings.HasPrefix(state, "08"), strings.HasPrefix(state, "53"), strings.HasPrefix(state, "57P0"):
		return messages.CodeUnavailable, 503
	case strings.HasPrefix(state, "XX"):
		return messages.CodeInternal, 500
	}
	return messages.CodeSQL, 400
}

// SQLState is the SQLSTATE of a PostgreSQL error within err, or "".
func SQLState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
