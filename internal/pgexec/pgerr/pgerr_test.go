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
