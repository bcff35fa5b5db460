package pgexec_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Red-team tests of interactive transactions (tx.go) that hold: each checks
// the rows, not only the answer.

// readOnlyEscapes try to make a READ ONLY transaction write: switch it to
// READ WRITE (by SET, set_config, RESET, in a DO block), change the session's
// default for a transaction that follows, or end it from inside and write in
// the next one (COMMIT/ROLLBACK AND CHAIN keep the server's status 'T').
var readOnlyEscapes = []string{
	"SET TRANSACTION READ WRITE",
	"SET TRANSACTION ISOLATION LEVEL READ COMMITTED READ WRITE",
	"SET LOCAL transaction_read_only = off",
	"SET transaction_read_only = off",
	"RESET transaction_read_only",
	"SELECT set_config('transaction_read_only', 'off', true)",
	"SELECT set_config('transaction_read_only', 'off', false)",
	"SELECT pg_catalog.set_config('transaction_read_only', 'false', true)",
	"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
	"SET default_transaction_read_only = off",
	"DO $$ BEGIN PERFORM set_config('transaction_read_only', 'off', true); DELETE FROM items WHERE id = 1; END $$",
	"DO $$ BEGIN SET TRANSACTION READ WRITE; DELETE FROM items WHERE id = 1; END $$",
	"DO $$ BEGIN COMMIT; DELETE FROM items WHERE id = 1; END $$",
	"DO $$ BEGIN ROLLBACK; SET TRANSACTION READ WRITE; DELETE FROM items WHERE id = 1; END $$",
	"DO $$ BEGIN DELETE FROM items WHERE id = 1; EXCEPTION WHEN OTHERS THEN PERFORM set_config('transaction_read_only', 'off', true); DELETE FROM items WHERE id = 1; END $$",
	"CALL purge()",
	"SELECT sneak()",
	"COMMIT AND CHAIN",
	"ROLLBACK AND CHAIN",
	"/* a */ commit /* b */ and chain",
	"--\rEND AND CHAIN",
	"ABORT AND CHAIN",
}

// TestRedTxReadOnlyCannotBeSwitchedOff: every escape, sent first in the
// transaction (before any snapshot of the caller's) or after a statement,
// followed by writes of every op, then a commit: no row changes, whether the
// transaction is READ ONLY because the worker is or because begin asked.
func TestRedTxReadOnlyCannotBeSwitchedOff(t *testing.T) {
	t.Parallel()
	pg := newItems(t)
	pg.Exec(t, `CREATE PROCEDURE purge() LANGUAGE plpgsql AS $$ BEGIN COMMIT; SET TRANSACTION READ WRITE; DELETE FROM items; COMMIT; END $$;
		CREATE FUNCTION sneak() RETURNS int LANGUAGE plpgsql AS $$
		BEGIN
			BEGIN
				PERFORM set_config('transaction_read_only', 'off', true);
			EXCEPTION WHEN OTHERS THEN NULL;
			END;
			DELETE FROM items WHERE id = 2;
			RETURN 1;
		END $$`)
	want := itemsChecksum(t, pg)
	ctx := context.Background()
	ro := txExecutor(t, pg, pgexec.ExecutorConfig{Mode: pgexec.ModeReadOnly})
	rw := txExecutor(t, pg, pgexec.ExecutorConfig{})
	for _, c := range []struct {
		name string
		ex   *pgexec.Executor
		opts pgexec.TxOptions
	}{
		{"read-only worker", ro, pgexec.TxOptions{}},
		{"read_only begin", rw, pgexec.TxOptions{ReadOnly: true}},
		{"read_only serializable deferrable begin", rw, pgexec.TxOptions{ReadOnly: true, Isolation: messages.IsolationSerializable, Deferrable: true}},
	} {
		for _, first := range []bool{true, false} {
			for _, sql := range readOnlyEscapes {
				tx, err := c.ex.BeginTx(ctx, c.opts)
				require.NoError(t, err)
				require.True(t, tx.ReadOnly())
				if !first {
					run(t, tx, "SELECT count(*) FROM items")
				}
				_, _ = tx.Execute(ctx, &messages.ExecuteRequest{SQL: sql}, pgjson.Output{})
				for _, w := range []*messages.ExecuteRequest{
					{SQL: "DELETE FROM items WHERE id = 3"},
					{Op: messages.OpMany, SQL: "DELETE FROM items WHERE id = $1", ParamsList: []raw{[]byte(`[3]`)}},
					{Op: messages.OpInsert, Table: "items", Data: map[string]raw{"id": []byte(`4`), "bal": []byte(`1`)}},
					{Op: messages.OpUpdate, Table: "items", Data: map[string]raw{"bal": []byte(`0`)}, AllRows: true},
				} {
					_, _ = tx.Execute(ctx, w, pgjson.Output{})
				}
				_ = tx.Commit(ctx)
				_ = tx.Rollback(ctx) // TX_GONE after a commit, nil after an abort
				require.True(t, tx.Ended())
				require.Equal(t, want, itemsChecksum(t, pg), "%s, first %v: %s", c.name, first, sql)
			}
		}
		// The connection those ran on is clean: the next one-shot request on
		// it (a pool of one) may write.
		if c.ex == rw {
			out := run(t, rw, "SELECT current_setting('default_transaction_read_only') AS d, current_setting('transaction_read_only') AS t")
			require.Contains(t, out, `"row":{"d":"off","t":"off"}`, c.name)
		}
	}
}

// TestRedTxAnErrorAnsweredCommitsNothing: a request answered with an error
// after its statement ran (TOO_LARGE, TIMEOUT, one item of a many failing,
// a deferred constraint at commit) leaves nothing to commit: the commit
// answers an error and the rows are as before. A request refused before it
// reached the server (a second statement in where) leaves the transaction
// usable, and the commit then commits the earlier write only.
func TestRedTxAnErrorAnsweredCommitsNothing(t *testing.T) {
	t.Parallel()
	pg := newItems(t)
	pg.Exec(t, `CREATE TABLE parent (id int PRIMARY KEY);
		CREATE TABLE child (id int PRIMARY KEY, parent int REFERENCES parent DEFERRABLE INITIALLY DEFERRED)`)
	want := itemsChecksum(t, pg)
	ex := txExecutor(t, pg, pgexec.ExecutorConfig{})
	ctx := context.Background()
	ms := func(n int) *int { return &n }

	for _, c := range []struct {
		name     string
		req      *messages.ExecuteRequest
		maxBytes int
		code     messages.Code
	}{
		{"too large", &messages.ExecuteRequest{SQL: "UPDATE items SET bal = 7 RETURNING repeat('x', 100000) AS pad"}, 1000, messages.CodeTooLarge},
		{"timeout", &messages.ExecuteRequest{SQL: "UPDATE items SET bal = 7 WHERE pg_sleep(5) IS NOT NULL", TimeoutMS: ms(200)}, 0, messages.CodeTimeout},
		{"many", &messages.ExecuteRequest{Op: messages.OpMany, SQL: "UPDATE items SET bal = 100 / $1", ParamsList: []raw{[]byte(`[1]`), []byte(`[0]`)}}, 0, messages.CodeSQL},
	} {
		tx, err := ex.BeginTx(ctx, pgexec.TxOptions{})
		require.NoError(t, err)
		run(t, tx, "UPDATE items SET bal = 0 WHERE id = 1")
		start := time.Now()
		_, err = tx.Execute(ctx, c.req, pgjson.Output{MaxBytes: c.maxBytes})
		require.Equal(t, c.code, pgerr.AsError(err).Code, "%s: %v", c.name, err)
		require.Less(t, time.Since(start), 3*time.Second, c.name)
		_, err = tx.Execute(ctx, &messages.ExecuteRequest{SQL: "SELECT 1"}, pgjson.Output{})
		require.Equal(t, messages.CodeTxAborted, pgerr.AsError(err).Code, c.name)
		require.Equal(t, messages.CodeTxAborted, pgerr.AsError(tx.Commit(ctx)).Code, c.name)
		require.Equal(t, want, itemsChecksum(t, pg), c.name)
	}

	// A deferred constraint fails the COMMIT itself: an error, nothing kept.
	tx, err := ex.BeginTx(ctx, pgexec.TxOptions{})
	require.NoError(t, err)
	run(t, tx, "UPDATE items SET bal = 0 WHERE id = 1")
	_, err = tx.Execute(ctx, &messages.ExecuteRequest{SQL: "INSERT INTO child VALUES (1, 42)"}, pgjson.Output{})
	require.NoError(t, err)
	err = tx.Commit(ctx)
	require.Error(t, err)
	require.Equal(t, "23503", pgerr.AsError(err).SQLState, "%v", err)
	require.Equal(t, want, itemsChecksum(t, pg))
	require.Zero(t, scalar[int64](t, pg, "SELECT count(*) FROM child"))

	// Refused before reaching the server: the transaction goes on.
	tx, err = ex.BeginTx(ctx, pgexec.TxOptions{})
	require.NoError(t, err)
	run(t, tx, "UPDATE items SET bal = 0 WHERE id = 1")
	for _, where := range []string{"id = 2; COMMIT", "id = 2; DELETE FROM items", "true; --\rCOMMIT"} {
		_, err = tx.Execute(ctx, &messages.ExecuteRequest{Op: messages.OpUpdate, Table: "items", Data: map[string]raw{"bal": []byte(`5`)}, Where: where}, pgjson.Output{})
		require.Error(t, err, where)
	}
	_, err = tx.Execute(ctx, &messages.ExecuteRequest{SQL: "COMMIT AND CHAIN"}, pgjson.Output{})
	require.Equal(t, messages.CodeBadRequest, pgerr.AsError(err).Code)
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, "1=0,2=100,3=100", itemsChecksum(t, pg))
}

// raw is a JSON value, as requests carry them.
type raw = json.RawMessage

// TestRedTxSerializationFailureAtCommitKeeps40001: write skew between two
// serializable transactions is caught at the second one's COMMIT: that
// commit answers CONFLICT with SQLSTATE 40001 (what InTx retries on), and
// its write is not kept.
func TestRedTxSerializationFailureAtCommitKeeps40001(t *testing.T) {
	t.Parallel()
	pg := newItems(t)
	ctx := context.Background()
	opts := pgexec.TxOptions{Isolation: messages.IsolationSerializable}
	t1, err := txExecutor(t, pg, pgexec.ExecutorConfig{}).BeginTx(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = t1.Rollback(ctx) })
	t2, err := txExecutor(t, pg, pgexec.ExecutorConfig{}).BeginTx(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = t2.Rollback(ctx) })
	run(t, t1, "SELECT sum(bal) FROM items")
	run(t, t2, "SELECT sum(bal) FROM items")
	run(t, t1, "UPDATE items SET bal = bal - 100 WHERE id = 1")
	run(t, t2, "UPDATE items SET bal = bal - 100 WHERE id = 2")
	require.NoError(t, t1.Commit(ctx))
	err = t2.Commit(ctx)
	me := pgerr.AsError(err)
	require.NotNil(t, me, "the second commit of a write skew succeeded")
	require.Equal(t, "40001", me.SQLState, "%v", err)
	require.Equal(t, messages.CodeConflict, me.Code)
	require.Equal(t, "1=0,2=100,3=100", itemsChecksum(t, pg))
}

// TestReadOnlyCannotBeSwitchedOffBeforeASnapshot: a one-statement read-only
// request opens with SET LOCAL, which takes no snapshot, so its statement
// may switch its own transaction to READ WRITE; nothing runs after it in
// that transaction but the ROLLBACK. Every transaction that runs more than
// one statement (a held one, op tx) takes its snapshot first, and the
// switch is refused. nextval() is not undone by a rollback: the
// sequence shows whether a write got through. (RESET transaction_read_only
// and set_config('transaction_read_only', NULL, true) skip PostgreSQL 15's
// check whatever the snapshot, in every shape: not tested here, reported.)
func TestReadOnlyCannotBeSwitchedOffBeforeASnapshot(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	pg.Exec(t, "CREATE SEQUENCE s")
	ctx := context.Background()
	ex := txExecutor(t, pg, pgexec.ExecutorConfig{})
	untouched := func(what string) {
		t.Helper()
		require.Equal(t, 0, pg.Count("SELECT CASE WHEN is_called THEN 1 ELSE 0 END FROM s"), "%s: nextval ran", what)
	}
	for _, escape := range []string{"SET TRANSACTION READ WRITE", "SET transaction_read_only = off", "SET LOCAL transaction_read_only = off"} {
		tx, err := ex.BeginTx(ctx, pgexec.TxOptions{ReadOnly: true})
		require.NoError(t, err)
		_, _ = tx.Execute(ctx, &messages.ExecuteRequest{SQL: escape}, pgjson.Output{})
		_, _ = tx.Execute(ctx, &messages.ExecuteRequest{SQL: "SELECT nextval('s')"}, pgjson.Output{})
		_ = tx.Rollback(ctx)
		untouched("held: " + escape)

		_, _ = ex.Execute(ctx, &messages.ExecuteRequest{SQL: escape, ReadOnly: true}, pgjson.Output{})
		_, err = ex.Execute(ctx, &messages.ExecuteRequest{SQL: "SELECT nextval('s')", ReadOnly: true}, pgjson.Output{})
		require.Equal(t, "25006", pgerr.AsError(err).SQLState, "%v", err)
		untouched("one-shot: " + escape)

		_, err = ex.Execute(ctx, &messages.ExecuteRequest{Op: messages.OpTx, ReadOnly: true, Statements: []messages.Statement{{SQL: escape}, {SQL: "SELECT nextval('s')"}}}, pgjson.Output{})
		require.Error(t, err)
		untouched("op tx: " + escape)
	}
}
