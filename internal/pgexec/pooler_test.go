package pgexec_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pooler"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// pooled is an executor that reaches a database of the test's own through a
// pgbouncer of its own, in transaction mode with PgBouncer's defaults; its
// run and ok are boundary's.
type pooled struct {
	*boundary
	db *testenv.Postgres // the database, directly
	c  *pgexec.Client
	ex *pgexec.Executor
}

func newPooled(t *testing.T, maxConns int32, mode pgexec.Mode) *pooled {
	t.Helper()
	db := testenv.NewDatabase(t)
	bouncer := testenv.NewPgBouncer(t)
	c, err := pgexec.Connect(context.Background(), pgexec.Config{DSN: bouncer.URL(t, db.Database(t)), Pooler: pooler.Transaction, MaxConns: maxConns})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	ex, err := pgexec.NewExecutor(c, pgexec.ExecutorConfig{Mode: mode, MaxRows: 50})
	require.NoError(t, err)
	db.Exec(t, "CREATE TABLE items (id int PRIMARY KEY, note text, at timestamptz DEFAULT now(), span tstzrange, gap interval)")
	return &pooled{boundary: &boundary{t: t, pg: db, exec: ex}, db: db, c: c, ex: ex}
}

// TestPoolerRefusesStartupParameters: PgBouncer's defaults refuse the
// startup parameters of a direct connection; the refusal is UNAVAILABLE,
// not an SQL error, and POSTGRES_POOLER=transaction connects.
func TestPoolerRefusesStartupParameters(t *testing.T) {
	t.Parallel()
	db := testenv.NewDatabase(t)
	bouncer := testenv.NewPgBouncer(t)
	_, err := pgexec.Connect(context.Background(), pgexec.Config{DSN: bouncer.URL(t, db.Database(t))})
	require.Error(t, err)
	me := pgerr.AsError(err)
	require.Equal(t, messages.CodeUnavailable, me.Code, "%v", err)
	require.Equal(t, 503, me.Status)
	require.Contains(t, me.Message, "unsupported startup parameter")

	c, err := pgexec.Connect(context.Background(), pgexec.Config{DSN: bouncer.URL(t, db.Database(t)), Pooler: pooler.Transaction})
	require.NoError(t, err)
	_, err = c.SessionConnConfig()
	require.ErrorIs(t, err, pooler.ErrNoSession, "a VACUUM's session needs POSTGRES_SESSION_URL")
	require.False(t, c.WritesRefused())
	c.Close()

	c, err = pgexec.Connect(context.Background(), pgexec.Config{DSN: bouncer.URL(t, db.Database(t)), Pooler: pooler.Transaction, SessionDSN: db.URL})
	require.NoError(t, err)
	defer c.Close()
	cc, err := c.SessionConnConfig()
	require.NoError(t, err)
	require.Equal(t, "300000", cc.RuntimeParams["statement_timeout"], "a direct session has every startup parameter")
}

// TestPoolerEveryShape: through PgBouncer in transaction mode every op
// works, and every request runs under its own statement timeout and the
// settings the encoder reads text forms in, even the shapes that autocommit
// on a direct connection.
func TestPoolerEveryShape(t *testing.T) {
	t.Parallel()
	p := newPooled(t, 4, pgexec.ModeReadWrite)
	p.ok(`{"op":"insert","table":"items","data":{"id":1,"note":"a","span":"[2024-01-01 00:00+00,2024-01-02 00:00+00)","gap":"1 day 02:00:00"}}`)
	p.ok(`{"op":"many","sql":"INSERT INTO items (id, note) VALUES (:id, :note)","params_list":[{"id":2,"note":"b"},{"id":3,"note":"c"}]}`)
	p.ok(`{"op":"tx","statements":[{"sql":"UPDATE items SET note = 'aa' WHERE id = 1"},{"sql":"SELECT note FROM items WHERE id = 1","op":"one"}]}`)
	p.ok(`{"op":"update","table":"items","data":{"note":"bb"},"where":"id = :id","where_params":{"id":2}}`)
	p.ok(`{"op":"script","sql":"UPDATE items SET note = 'cc' WHERE id = 3; SELECT 1"}`)
	p.ok(`{"sql":"DELETE FROM items WHERE id = 99"}`)
	p.ok(`{"sql":"VACUUM items"}`) // refused in a transaction block: runs alone

	a := p.ok(`{"sql":"SELECT string_agg(note, ',' ORDER BY id) AS notes FROM items","op":"one"}`)
	require.Equal(t, "aa,bb,cc", a["row"].(map[string]any)["notes"])
	// The text forms the encoder passes on are the worker's, whatever the
	// server's defaults and whichever server connection ran it.
	p.db.Exec(t, "ALTER DATABASE "+p.db.Database(t)+" SET IntervalStyle = 'iso_8601'")
	p.db.Exec(t, "ALTER DATABASE "+p.db.Database(t)+" SET TimeZone = 'Asia/Tokyo'")
	for range 3 {
		a = p.ok(`{"sql":"SELECT span, gap FROM items WHERE id = 1","op":"one"}`)
		require.Equal(t, `["2024-01-01 00:00:00+00","2024-01-02 00:00:00+00")`, a["row"].(map[string]any)["span"])
		require.Equal(t, "1 day 02:00:00", a["row"].(map[string]any)["gap"])
	}
	// The statement timeout is the request's, on the server, in every shape.
	for _, body := range []string{
		`{"sql":"SELECT current_setting('statement_timeout') AS t","op":"one","timeout_ms":1234}`,
		`{"sql":"UPDATE items SET note = note WHERE id = 1 RETURNING current_setting('statement_timeout') AS t","op":"one","timeout_ms":1234}`,
		`{"sql":"SELECT current_setting('statement_timeout') AS t","op":"one","timeout_ms":1234,"read_only":true}`,
		`{"op":"tx","statements":[{"sql":"SELECT current_setting('statement_timeout') AS t","op":"one"}],"timeout_ms":1234}`,
	} {
		raw, _ := json.Marshal(p.ok(body))
		require.Regexp(t, `"t":"1[12][0-9][0-9]ms"`, string(raw), body) // what is left of 1234ms

	}
}

// TestPoolerCapsHold: max_rows, timeouts and read-only hold through the
// pooler.
func TestPoolerCapsHold(t *testing.T) {
	t.Parallel()
	p := newPooled(t, 4, pgexec.ModeReadWrite)
	p.db.Exec(t, "INSERT INTO items (id, note) SELECT g, 'n' FROM generate_series(1, 200) g")

	a := p.ok(`{"sql":"SELECT id FROM items ORDER BY id","max_rows":10}`)
	require.Len(t, a["rows"], 10)
	require.Equal(t, true, a["truncated"])
	a = p.ok(`{"sql":"SELECT id FROM items ORDER BY id"}`)
	require.Len(t, a["rows"], 50, "the executor's MaxRows caps a request without max_rows")

	for _, body := range []string{
		`{"sql":"SELECT pg_sleep(5)","timeout_ms":300}`,
		`{"sql":"UPDATE items SET note = 'x' WHERE pg_sleep(5) IS NOT NULL","timeout_ms":300}`,
		`{"sql":"SELECT pg_sleep(5)","timeout_ms":300,"read_only":true}`,
		`{"op":"tx","statements":[{"sql":"SELECT pg_sleep(5)"}],"timeout_ms":300}`,
	} {
		start := time.Now()
		_, me := p.run(body)
		require.NotNil(t, me, body)
		require.Equal(t, messages.CodeTimeout, me.Code, "%s: %v", body, me)
		require.Less(t, time.Since(start), 4*time.Second, body)
	}
	_, me := p.run(`{"sql":"INSERT INTO items (id) VALUES (1000)","read_only":true}`)
	require.NotNil(t, me)
	require.Equal(t, messages.CodeForbidden, me.Code, "%v", me)
	_, me = p.run(`{"sql":"SELECT set_config('transaction_read_only', 'off', false)","read_only":true}`)
	require.NotNil(t, me)
	require.EqualValues(t, 0, scalar[int64](t, p.db, "SELECT count(*) FROM items WHERE id = 1000"))

	ro := newPooled(t, 2, pgexec.ModeReadOnly)
	_, me = ro.run(`{"sql":"INSERT INTO items (id) VALUES (1)"}`)
	require.NotNil(t, me)
	require.Equal(t, messages.CodeForbidden, me.Code, "%v", me)
	tx, err := ro.ex.BeginTx(context.Background(), pgexec.TxOptions{})
	require.NoError(t, err)
	_, err = tx.Execute(context.Background(), &messages.ExecuteRequest{SQL: "DELETE FROM items"}, pgjson.Output{})
	require.Equal(t, messages.CodeForbidden, pgerr.AsError(err).Code, "%v", err)
	require.NoError(t, tx.Rollback(context.Background()))
}

// TestPoolerLeavesNoSessionState: what a request sets for the session is
// reset before its server connection goes back to PgBouncer: the next
// requests, whichever server connection they get, find none of it.
func TestPoolerLeavesNoSessionState(t *testing.T) {
	t.Parallel()
	p := newPooled(t, 1, pgexec.ModeReadWrite)
	p.db.Exec(t, "CREATE SCHEMA evil; CREATE TABLE evil.items (id int)")
	defaultPath := scalar[string](t, p.db, "SHOW search_path")
	for i, poison := range []string{
		`{"sql":"SELECT set_config('search_path', 'evil', false)"}`,
		`{"sql":"SET ROLE pg_read_all_data"}`,
		`{"sql":"SELECT set_config('default_transaction_read_only', 'on', false)"}`,
		`{"sql":"SELECT pg_advisory_lock(42)"}`,
		`{"sql":"CREATE TEMP TABLE tt (x int)"}`,
		`{"sql":"PREPARE p1 AS SELECT 1"}`,
		`{"op":"tx","statements":[{"sql":"SELECT set_config('search_path', 'evil', false)"},{"sql":"SELECT pg_advisory_lock(44)"}]}`,
		`{"op":"script","sql":"SET search_path = evil; SELECT pg_advisory_lock(43)"}`,
	} {
		p.ok(poison)
		for range 5 {
			a := p.ok(`{"sql":"SELECT current_setting('search_path') AS p, current_user::text AS u, current_setting('default_transaction_read_only') AS r, (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS l, (SELECT count(*) FROM pg_prepared_statements WHERE from_sql) AS s, to_regclass('pg_temp.tt') IS NULL AS t","op":"one"}`)
			require.Equal(t, map[string]any{"p": defaultPath, "u": "postgres", "r": "off", "l": float64(0), "s": float64(0), "t": true}, a["row"], "after %s", poison)
		}
		p.ok(fmt.Sprintf(`{"op":"insert","table":"items","data":{"id":%d}}`, i))
	}
	require.EqualValues(t, 0, scalar[int64](t, p.db, "SELECT count(*) FROM evil.items"))
	require.True(t, scalar[bool](t, p.db, "SELECT pg_try_advisory_lock(42) AND pg_try_advisory_lock(43) AND pg_try_advisory_lock(44)"))
}

// TestPoolerInteractiveTx: an interactive transaction holds one server
// connection through the pooler, and its statements see its own writes.
func TestPoolerInteractiveTx(t *testing.T) {
	t.Parallel()
	p := newPooled(t, 4, pgexec.ModeReadWrite)
	ctx := context.Background()
	tx, err := p.ex.BeginTx(ctx, pgexec.TxOptions{Isolation: messages.IsolationRepeatableRead})
	require.NoError(t, err)
	_, err = tx.Execute(ctx, &messages.ExecuteRequest{SQL: "INSERT INTO items (id, note) VALUES (7, 'tx')"}, pgjson.Output{})
	require.NoError(t, err)
	for range 3 {
		out, err := tx.Execute(ctx, &messages.ExecuteRequest{SQL: "SELECT count(*) AS n FROM items", Op: messages.OpOne}, pgjson.Output{})
		require.NoError(t, err)
		require.Contains(t, string(out), `"n":1`)
		a := p.ok(`{"sql":"SELECT count(*) AS n FROM items","op":"one"}`)
		require.EqualValues(t, 0, a["row"].(map[string]any)["n"], "not committed yet")
	}
	require.NoError(t, tx.Commit(ctx))
	require.EqualValues(t, 1, scalar[int64](t, p.db, "SELECT count(*) FROM items"))
}
