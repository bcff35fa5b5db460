package pgexec_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/named"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// txExecutor is an executor over a pool of one connection, so that the
// request after a transaction runs on the transaction's connection.
func txExecutor(t *testing.T, pg *testenv.Postgres, cfg pgexec.ExecutorConfig) *pgexec.Executor {
	t.Helper()
	c, err := pgexec.Connect(context.Background(), pgexec.Config{DSN: pg.URL, MaxConns: 1})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(c.Close)
	ex, err := pgexec.NewExecutor(c, cfg)
	require.NoError(t, err)
	return ex
}

func run(t *testing.T, ex interface {
	Execute(context.Context, *messages.ExecuteRequest, pgjson.Output) ([]byte, error)
}, sql string) string {
	t.Helper()
	out, err := ex.Execute(context.Background(), &messages.ExecuteRequest{Op: messages.OpOne, SQL: sql}, pgjson.Output{})
	require.NoError(t, err, sql)
	return string(out)
}

// TestTxLeavesNoSessionState: whatever a transaction sets on its
// connection (settings, temporary tables, advisory locks, prepared
// statements, the role), the next caller on that connection finds it clean,
// whether the transaction committed, rolled back or aborted.
func TestTxLeavesNoSessionState(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	ex := txExecutor(t, pg, pgexec.ExecutorConfig{})
	ctx := context.Background()
	for _, end := range []string{"commit", "rollback", "aborted"} {
		tx, err := ex.BeginTx(ctx, pgexec.TxOptions{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = tx.Rollback(ctx) })
		for _, sql := range []string{
			"SELECT set_config('app.leak', 'yes', false)",
			"CREATE TEMP TABLE leak (x int)",
			"SELECT pg_advisory_lock(4242)",
			"SELECT set_config('search_path', 'pg_temp', false)",
		} {
			run(t, tx, sql)
		}
		_, err = tx.Execute(ctx, &messages.ExecuteRequest{SQL: "PREPARE leak AS SELECT 1"}, pgjson.Output{})
		require.NoError(t, err)
		switch end {
		case "commit":
			require.NoError(t, tx.Commit(ctx))
		case "rollback":
			require.NoError(t, tx.Rollback(ctx))
		case "aborted":
			_, err := tx.Execute(ctx, &messages.ExecuteRequest{SQL: "SELECT 1/0"}, pgjson.Output{})
			require.Error(t, err)
			require.Equal(t, messages.CodeTxAborted, pgerr.AsError(tx.Commit(ctx)).Code)
		}
		got := run(t, ex, `SELECT current_setting('app.leak', true) AS setting, to_regclass('pg_temp.leak') AS temp,
			(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS locks,
			(SELECT count(*) FROM pg_prepared_statements) AS prepared, current_setting('search_path') NOT LIKE 'pg_temp%' AS path_ok`)
		require.Contains(t, got, `"row":{"setting":"","temp":null,"locks":0,"prepared":0,"path_ok":true}`, end)
	}
}

// TestTxPolicy: a read-only executor opens READ ONLY transactions whatever
// begin asks, and the allowlist holds inside a transaction.
func TestTxPolicy(t *testing.T) {
	t.Parallel()
	pg := newItems(t)
	want := itemsChecksum(t, pg)
	ctx := context.Background()

	ro := txExecutor(t, pg, pgexec.ExecutorConfig{Mode: pgexec.ModeReadOnly})
	tx, err := ro.BeginTx(ctx, pgexec.TxOptions{ReadOnly: false})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	require.True(t, tx.ReadOnly())
	_, err = tx.Execute(ctx, &messages.ExecuteRequest{SQL: "DELETE FROM items"}, pgjson.Output{})
	require.Equal(t, "25006", pgerr.AsError(err).SQLState, "%v", err)
	require.NoError(t, tx.Rollback(ctx))
	require.Equal(t, want, itemsChecksum(t, pg))

	allow := txExecutor(t, pg, pgexec.ExecutorConfig{NamedOnly: true,
		NamedQueries: map[string]named.Query{"bump": {SQL: "UPDATE items SET bal = bal + 1 WHERE id = :id", Op: messages.OpQuery}}})
	tx, err = allow.BeginTx(ctx, pgexec.TxOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	_, err = tx.Execute(ctx, &messages.ExecuteRequest{SQL: "DELETE FROM items"}, pgjson.Output{})
	require.Equal(t, messages.CodeForbidden, pgerr.AsError(err).Code)
	_, err = tx.Execute(ctx, &messages.ExecuteRequest{Query: "bump", Params: []byte(`{"id":1}`)}, pgjson.Output{})
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, "1=101,2=100,3=100", itemsChecksum(t, pg))

	disabled := txExecutor(t, pg, pgexec.ExecutorConfig{Mode: pgexec.ModeDisabled})
	_, err = disabled.BeginTx(ctx, pgexec.TxOptions{})
	require.Equal(t, messages.CodeForbidden, pgerr.AsError(err).Code)
}

// TestTxCannotBeEndedFromInside: a transaction's end is the worker's: COMMIT
// hidden in the statements, in a DO block, a procedure or behind a comment
// the lexer might misread, never commits it.
func TestTxCannotBeEndedFromInside(t *testing.T) {
	t.Parallel()
	pg := newItems(t, purgeProc)
	want := itemsChecksum(t, pg)
	ex := txExecutor(t, pg, pgexec.ExecutorConfig{})
	ctx := context.Background()
	for _, sql := range append([]string{
		"COMMIT", "END", "ROLLBACK", "PREPARE TRANSACTION 'x'",
		"DO $$ BEGIN DELETE FROM items; COMMIT; END $$",
		"CALL purge()",
	}, smuggled...) {
		tx, err := ex.BeginTx(ctx, pgexec.TxOptions{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = tx.Rollback(ctx) }) // before the pool closes
		_, err = tx.Execute(ctx, &messages.ExecuteRequest{SQL: "DELETE FROM items WHERE id = 3"}, pgjson.Output{})
		require.NoError(t, err)
		// Each text is refused, fails, or is (as the server reads it) one
		// harmless statement; none ends the transaction.
		_, _ = tx.Execute(ctx, &messages.ExecuteRequest{SQL: sql}, pgjson.Output{})
		require.NoError(t, tx.Rollback(ctx))
		require.Equal(t, want, itemsChecksum(t, pg), sql)
	}
}
