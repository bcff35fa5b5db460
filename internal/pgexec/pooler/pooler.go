// Package pooler adapts the worker's connections to what sits between it and
// PostgreSQL: the server itself, or a connection pooler in transaction mode
// (PgBouncer's pool_mode=transaction), which hands each transaction whatever
// server connection is free.
//
// Through such a pooler nothing of a session can be relied on. PgBouncer, by
// default, refuses every startup parameter but a few (client_encoding,
// DateStyle, TimeZone, standard_conforming_strings, application_name; 1.20
// adds IntervalStyle), so the worker sends application_name alone and sets
// what its encoder and its caps rely on in every transaction of its own, with
// set_config(..., true): gone at the transaction's end, whichever server
// connection ran it.
//
//	direct:      startup statement_timeout, TimeZone, DateStyle, IntervalStyle, application_name;
//	             each transaction sets statement_timeout
//	transaction: startup application_name;
//	             each transaction sets statement_timeout, TimeZone, DateStyle, IntervalStyle
package pooler

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Mode says what the worker connects to.
type Mode string

// Modes.
const (
	// None is PostgreSQL itself, or a pooler in session mode: a connection
	// is one server session for its whole life.
	None Mode = "none"
	// Transaction is a pooler in transaction mode: a server session lasts
	// one transaction.
	Transaction Mode = "transaction"
)

// ParseMode returns the mode s names: "none" (or "") and "transaction".
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", None:
		return None, nil
	case Transaction:
		return Transaction, nil
	}
	return "", fmt.Errorf("pooler must be none or transaction, got %q", s)
}

// The session settings the worker's encoder reads values in: text forms of
// timestamps, dates and intervals (in ranges, for one) depend on them.
const (
	TimeZone      = "UTC"
	DateStyle     = "ISO, YMD"
	IntervalStyle = "postgres"
)

// StartupParams returns the runtime parameters to connect with: every
// setting at once on a direct connection, with statementTimeout as the
// session's cap; application_name alone through a transaction pooler.
func StartupParams(m Mode, appName string, statementTimeout time.Duration) map[string]string {
	if m == Transaction {
		return map[string]string{"application_name": appName}
	}
	return map[string]string{
		"application_name":  appName,
		"statement_timeout": strconv.FormatInt(statementTimeout.Milliseconds(), 10),
		"TimeZone":          TimeZone,
		"DateStyle":         DateStyle,
		"IntervalStyle":     IntervalStyle,
	}
}

// LocalSettingsSQL is the statement that opens each of the worker's
// transactions, taking the statement timeout in milliseconds as $1: on a
// direct connection only the timeout is set (the rest came with the
// session); through a transaction pooler every setting is. It is a SELECT,
// so it takes the transaction's snapshot: after it, PostgreSQL refuses SET
// TRANSACTION READ WRITE in a READ ONLY transaction.
func LocalSettingsSQL(m Mode) string {
	if m == Transaction {
		return localSettingsPooled
	}
	return localSettingsDirect
}

// LocalSettings is the statement that sets a transaction's statement
// timeout, and its parameters. For a transaction that runs one statement of
// a caller's on a direct connection it is SET LOCAL, a utility statement
// with nothing to plan and no snapshot: that statement is the only one that
// could change the transaction's read-only mode before a snapshot is taken,
// and the statements that can (SET, RESET, SET TRANSACTION) write nothing.
// Any other transaction opens with LocalSettingsSQL.
func LocalSettings(m Mode, timeout time.Duration, oneStatement bool) (string, [][]byte) {
	ms := strconv.FormatInt(max(timeout.Milliseconds(), 1), 10)
	if oneStatement && m != Transaction {
		return "SET LOCAL statement_timeout = " + ms, nil
	}
	return LocalSettingsSQL(m), [][]byte{[]byte(ms)}
}

const (
	localSettingsDirect = "SELECT pg_catalog.set_config('statement_timeout', $1, true)"
	localSettingsPooled = "SELECT pg_catalog.set_config('statement_timeout', $1, true), " +
		"pg_catalog.set_config('TimeZone', '" + TimeZone + "', true), " +
		"pg_catalog.set_config('DateStyle', '" + DateStyle + "', true), " +
		"pg_catalog.set_config('IntervalStyle', '" + IntervalStyle + "', true)"
)

// ErrNoSession is asked of a worker behind a transaction pooler for a
// connection that needs a session of its own (a VACUUM run holds an advisory
// lock and session settings), without a URL that gives one.
var ErrNoSession = errors.New("behind a transaction pooler (POSTGRES_POOLER=transaction) this needs a session of its own: " +
	"set POSTGRES_SESSION_URL to PostgreSQL itself, or to a session-mode pooler database")

// SessionConfig returns the settings of connections that need a session of
// their own: pool's own (the pool's settings) on a direct connection; those
// of sessionDSN when it is set, with the pool's protocol settings and every
// startup parameter of a direct connection; nil behind a transaction pooler
// without one.
func SessionConfig(pool *pgx.ConnConfig, sessionDSN string, m Mode, appName string, statementTimeout time.Duration) (*pgx.ConnConfig, error) {
	if sessionDSN == "" {
		if m == Transaction {
			return nil, nil
		}
		return pool.Copy(), nil
	}
	cc, err := pgx.ParseConfig(sessionDSN)
	if err != nil {
		return nil, fmt.Errorf("parse the session connection string: %w", errors.Unwrap(err))
	}
	cc.DefaultQueryExecMode = pool.DefaultQueryExecMode
	cc.MaxProtocolMessageBodyLen = pool.MaxProtocolMessageBodyLen
	cc.BuildContextWatcherHandler = pool.BuildContextWatcherHandler
	cc.Tracer = pool.Tracer
	maps.Copy(cc.RuntimeParams, StartupParams(None, appName, statementTimeout))
	return cc, nil
}
