package client

import (
	"fmt"
	"time"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Options of one call come in families, one a kind of request, as
// jetstream's do: a QueryOption tunes a db.execute call, a VectorOption a
// db.vector one, and so on. An option that fits several families (such as
// WithReadOnly) has a type of its own that is an option of each.

// QueryOption tunes one db.execute call: Query, QueryRow, Exec, Many,
// Script, Tx, Insert, Update or Execute.
type QueryOption interface {
	applyQuery(*messages.ExecuteRequest) error
}

type queryOption func(*messages.ExecuteRequest) error

func (f queryOption) applyQuery(r *messages.ExecuteRequest) error { return f(r) }

// WithMaxRows caps the rows a Query answers (max_rows); the worker's
// DB_MAX_ROWS is the default and the cap. 0 sends no row back, as Exec
// does; a negative n is refused.
func WithMaxRows(n int) QueryOption {
	return queryOption(func(r *messages.ExecuteRequest) error {
		if n < 0 {
			return fmt.Errorf("WithMaxRows: must not be negative, got %d", n)
		}
		r.MaxRows = &n
		return nil
	})
}

// WithArrayRows sends each row as an array in column order (row_format
// "array") instead of an object.
func WithArrayRows() QueryOption {
	return queryOption(func(r *messages.ExecuteRequest) error {
		r.RowFormat = messages.RowFormatArray
		return nil
	})
}

// WithSafeNumbers sets the call's safe_numbers (docs/protocol.md, "Safe
// numbers"). The client sends no safe_numbers unless asked, so a worker's
// default (DB_SAFE_NUMBERS) applies: when a worker runs with
// DB_SAFE_NUMBERS=true, numeric values and int8 values past ±(2^53−1) come
// back as JSON strings, which a Go int64 or float64 destination refuses
// (an int8 only once its value passes 2^53). WithSafeNumbers(false) asks for
// numbers whatever the worker's default; a worker older than safe_numbers
// refuses the field (BAD_REQUEST).
func WithSafeNumbers(on bool) QueryOption {
	return queryOption(func(r *messages.ExecuteRequest) error {
		r.SafeNumbers = &on
		return nil
	})
}

// WithReturning names the columns an Insert returns; every column by
// default.
func WithReturning(columns ...string) QueryOption {
	return queryOption(func(r *messages.ExecuteRequest) error {
		r.Returning = columns
		return nil
	})
}

// WithAllRows lets an Update with an empty where change every row of the
// table (all_rows).
func WithAllRows() QueryOption {
	return queryOption(func(r *messages.ExecuteRequest) error {
		r.AllRows = true
		return nil
	})
}

// WithIsolation opens a Tx batch at an isolation level: ReadCommitted,
// RepeatableRead or Serializable (interactive transactions take theirs in
// TxOptions).
func WithIsolation(level string) QueryOption {
	return queryOption(func(r *messages.ExecuteRequest) error {
		switch level {
		case ReadCommitted, RepeatableRead, Serializable:
			r.Isolation = level
			return nil
		}
		return fmt.Errorf("WithIsolation: unknown level %q", level)
	})
}

// WithDeferrable opens a Tx batch DEFERRABLE (with WithReadOnly and
// Serializable, it waits for a snapshot that cannot fail).
func WithDeferrable() QueryOption {
	return queryOption(func(r *messages.ExecuteRequest) error {
		r.Deferrable = true
		return nil
	})
}

// ReadOnlyOption is WithReadOnly's option: a QueryOption, a VectorOption
// and a GraphOption.
type ReadOnlyOption struct{}

// WithReadOnly runs the request read-only (read_only): SQL in a READ ONLY
// transaction that is rolled back, and writes on db.vector and db.graph
// refused with FORBIDDEN.
func WithReadOnly() ReadOnlyOption { return ReadOnlyOption{} }

func (ReadOnlyOption) applyQuery(r *messages.ExecuteRequest) error {
	r.ReadOnly = true
	return nil
}

func (ReadOnlyOption) applyVector(r *messages.VectorRequest) error {
	r.ReadOnly = true
	return nil
}

func (ReadOnlyOption) applyGraph(r *messages.GraphRequest) error {
	r.ReadOnly = true
	return nil
}

// StatementTimeoutOption is WithStatementTimeout's option: a QueryOption and
// a VectorOption.
type StatementTimeoutOption struct{ ms int }

// WithStatementTimeout sets how long the worker lets the request's SQL run
// (timeout_ms); the worker's DB_STATEMENT_TIMEOUT is the default, and
// DB_MAX_STATEMENT_TIMEOUT the cap. It counts in whole milliseconds, of
// which there must be at least one. It is not the request's timeout, which
// the context's deadline sets.
func WithStatementTimeout(d time.Duration) StatementTimeoutOption {
	return StatementTimeoutOption{ms: int(min(d.Milliseconds(), 1<<31-1))}
}

func (o StatementTimeoutOption) check() error {
	if o.ms < 1 {
		return fmt.Errorf("WithStatementTimeout: must be at least 1ms, got %dms", o.ms)
	}
	return nil
}

func (o StatementTimeoutOption) applyQuery(r *messages.ExecuteRequest) error {
	if err := o.check(); err != nil {
		return err
	}
	r.TimeoutMS = &o.ms
	return nil
}

func (o StatementTimeoutOption) applyVector(r *messages.VectorRequest) error {
	if err := o.check(); err != nil {
		return err
	}
	r.TimeoutMS = &o.ms
	return nil
}

// ms returns d in whole milliseconds, for a *_ms field.
func ms(d time.Duration) *int64 {
	v := d.Milliseconds()
	return &v
}

// checkDuration refuses a negative d, or one between 0 and a millisecond
// that the wire's whole milliseconds would make 0.
func checkDuration(name string, d time.Duration) error {
	if d < 0 || d > 0 && d < time.Millisecond {
		return fmt.Errorf("%s: must be 0 or at least 1ms, got %s", name, d)
	}
	return nil
}
