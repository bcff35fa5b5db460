package pgerr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// TestAsErrorKeepsCause: the mapped error keeps what it was mapped from, for
// the log; a protocol error passes as it is.
func TestAsErrorKeepsCause(t *testing.T) {
	pe := &pgconn.PgError{Code: "XX000", Message: "could not read block"}
	for _, tc := range []struct {
		err  error
		code messages.Code
	}{
		{fmt.Errorf("run: %w", pe), messages.CodeInternal},
		{fmt.Errorf("acquire: %w", pgerr.ErrPoolExhausted), messages.CodeUnavailable},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), messages.CodeTimeout},
		{errors.New("unexpected"), messages.CodeInternal},
	} {
		me := pgerr.AsError(tc.err)
		require.Equal(t, tc.code, me.Code, "%v", tc.err)
		require.Equal(t, tc.err, errors.Unwrap(me), "%v", tc.err)
	}
	require.Equal(t, "XX000", pgerr.AsError(pe).SQLState)
	bad := messages.BadRequest("sql", "sql is required")
	require.Same(t, bad, pgerr.AsError(fmt.Errorf("validate: %w", bad)))
	require.Nil(t, pgerr.AsError(nil))
}

// TestConnectionFailuresAreUnavailable: whatever refused or dropped the
// connection (the server, a pooler), the answer is UNAVAILABLE (503), never
// an SQL error that blames the caller; a statement's own error keeps its code.
func TestConnectionFailuresAreUnavailable(t *testing.T) {
	ctx := context.Background()
	// A pooler that refuses a startup parameter, as PgBouncer does.
	cfg, err := pgconn.ParseConfig("postgres://u@127.0.0.1:1/db?connect_timeout=1")
	require.NoError(t, err)
	_, err = pgconn.ConnectConfig(ctx, cfg)
	require.Error(t, err)
	me := pgerr.AsError(err)
	require.Equal(t, messages.CodeUnavailable, me.Code, "%v", err)
	require.Equal(t, 503, me.Status)

	for _, pe := range []*pgconn.PgError{
		{Severity: "FATAL", Code: "08P01", Message: "unsupported startup parameter: statement_timeout"},
		{Severity: "FATAL", Code: "25P03", Message: "terminating connection due to idle-in-transaction timeout"},
		{Severity: "FATAL", Code: "28000", Message: "no such user"},
		{Severity: "ERROR", Code: "08P01", Message: "query_wait_timeout"},
	} {
		me := pgerr.AsError(fmt.Errorf("run: %w", pe))
		require.Equal(t, messages.CodeUnavailable, me.Code, pe.Message)
		require.Equal(t, 503, me.Status, pe.Message)
		require.Equal(t, pe.Code, me.SQLState)
	}
	me = pgerr.AsError(&pgconn.PgError{Severity: "ERROR", Code: "42601", Message: "syntax error"})
	require.Equal(t, messages.CodeSQL, me.Code)
	require.Equal(t, 400, me.Status)
}
