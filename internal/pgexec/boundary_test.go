package pgexec_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// These tests attack the SQL boundary the way a hostile caller would, and
// check what actually happened in the database, not only the answer.

// boundary is an executor over a one-connection pool, so that the next
// request always runs on the connection the previous one used.
type boundary struct {
	t    *testing.T
	pg   *testenv.Postgres
	exec *pgexec.Executor
}

func newBoundary(t *testing.T, pg *testenv.Postgres, dsn string, mode pgexec.Mode) *boundary {
	t.Helper()
	c, err := pgexec.Connect(context.Background(), pgexec.Config{DSN: dsn, MaxConns: 1, MaxMessageBytes: 8 << 20})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(c.Close)
	ex, err := pgexec.NewExecutor(c, pgexec.ExecutorConfig{Mode: mode})
	require.NoError(t, err)
	return &boundary{t: t, pg: pg, exec: ex}
}

// run sends a db.execute body and returns the answer or the protocol error.
func (b *boundary) run(body string) (map[string]any, *messages.Error) {
	b.t.Helper()
	var req messages.ExecuteRequest
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	require.NoError(b.t, dec.Decode(&req), body)
	out, err := b.exec.Execute(context.Background(), &req, pgjson.Output{MaxBytes: 1 << 20})
	if err != nil {
		me := pgerr.AsError(err)
		require.NotEqual(b.t, messages.CodeInternal, me.Code, "%s: %v", body, err)
		return nil, me
	}
	var m map[string]any
	require.NoError(b.t, json.Unmarshal(out, &m), string(out))
	return m, nil
}

func (b *boundary) ok(body string) map[string]any {
	b.t.Helper()
	m, me := b.run(body)
	require.Nil(b.t, me, body)
	return m
}

func (b *boundary) refused(body string) *messages.Error {
	b.t.Helper()
	m, me := b.run(body)
	require.NotNil(b.t, me, "%s answered %v", body, m)
	return me
}

// scalar reads one value as the superuser, outside the worker.
func scalar[T any](t *testing.T, pg *testenv.Postgres, sql string, args ...any) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var v T
	require.NoError(t, conn.QueryRow(ctx, sql, args...).Scan(&v), sql)
	return v
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	out, err := json.Marshal(v)
	require.NoError(t, err)
	return string(out)
}

func body(v any) string {
	out, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(out)
}

const itemsSetup = `CREATE TABLE items (id int PRIMARY KEY, bal int NOT NULL);
	INSERT INTO items VALUES (1, 100), (2, 100), (3, 100)`

// newItems is a schema of the test's own holding items, then what extra
// creates in it.
func newItems(t *testing.T, extra ...string) *testenv.Postgres {
	t.Helper()
	pg := testenv.NewPostgres(t)
	pg.Exec(t, itemsSetup)
	for _, sql := range extra {
		pg.Exec(t, sql)
	}
	return pg
}

// purgeProc creates purge(), a procedure that deletes every item and commits.
const purgeProc = `CREATE PROCEDURE purge() LANGUAGE plpgsql AS $$ BEGIN DELETE FROM items; COMMIT; END $$`

func itemsChecksum(t *testing.T, pg *testenv.Postgres) string {
	return scalar[string](t, pg, "SELECT string_agg(id || '=' || bal, ',' ORDER BY id) FROM items")
}

// smuggled are texts that hide a COMMIT and a DELETE behind a quoting or
// comment rule the lexer and the server could read differently.
var smuggled = []string{
	"SELECT 1 --\r; COMMIT; DELETE FROM items WHERE id = 2; --\n",
	"SELECT 1 --\r\n; COMMIT; DELETE FROM items WHERE id = 2",
	"SELECT 1 /* outer /* inner */ ; COMMIT; DELETE FROM items WHERE id = 2; */",
	"SELECT 1 /* /* */ */; COMMIT; DELETE FROM items WHERE id = 2",
	`SELECT E'\''; COMMIT; DELETE FROM items WHERE id = 2; --'`,
	`SELECT e'a\\'; COMMIT; DELETE FROM items WHERE id = 2; --'`,
	`SELECT '\'; COMMIT; DELETE FROM items WHERE id = 2; --'`,
	`SELECT 'a'';COMMIT;DELETE FROM items WHERE id = 2;--'`,
	`SELECT U&'\0041'; COMMIT; DELETE FROM items WHERE id = 2`,
	`SELECT U&'d\0061t\+000061' UESCAPE '\'; COMMIT; DELETE FROM items WHERE id = 2`,
	`SELECT $a$ ; $a$; COMMIT; DELETE FROM items WHERE id = 2`,
	`SELECT 1 AS foo$$; COMMIT; DELETE FROM items WHERE id = 2; $$`,
	`SELECT $$ $a$ $$; COMMIT; DELETE FROM items WHERE id = 2`,
	`SELECT "a;b"; COMMIT; DELETE FROM items WHERE id = 2`,
	"SELECT 1;\fCOMMIT;\vDELETE FROM items WHERE id = 2",
	"COMMIT",
	"commit",
	"/* c */ END",
	"--\rCOMMIT",
	"ABORT",
	"ROLLBACK",
	"START TRANSACTION READ WRITE",
	"BEGIN",
	"SAVEPOINT s",
	"RELEASE SAVEPOINT s",
	"PREPARE /* x */ TRANSACTION 'x'",
	"DELETE FROM items WHERE id = 2",
	"WITH d AS (DELETE FROM items WHERE id = 2 RETURNING *) SELECT * FROM d",
	"UPDATE items SET bal = 0",
	"SELECT set_config('default_transaction_read_only', 'off', false); DELETE FROM items",
	"SET TRANSACTION READ WRITE",
	"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
	"DO $$ BEGIN DELETE FROM items WHERE id = 2; END $$",
	"DO $$ BEGIN COMMIT; DELETE FROM items WHERE id = 2; END $$",
	"CALL purge()",
	"COPY items FROM PROGRAM 'echo 9,9'",
}

// TestReadOnlyHoldsAgainstSmuggledSQL sends every smuggled text through every
// op that takes SQL, to a read-only worker and as read_only requests to a
// read-write one, and checks that no row changed.
func TestReadOnlyHoldsAgainstSmuggledSQL(t *testing.T) {
	t.Parallel()
	pg := newItems(t, purgeProc)
	want := itemsChecksum(t, pg)
	for _, mode := range []pgexec.Mode{pgexec.ModeReadOnly, pgexec.ModeReadWrite} {
		b := newBoundary(t, pg, pg.URL, mode)
		ro := mode == pgexec.ModeReadWrite // the request asks for read-only
		for _, sql := range smuggled {
			reqs := []map[string]any{
				{"sql": sql},
				{"op": "one", "sql": sql},
				{"op": "script", "sql": sql},
				{"op": "tx", "statements": []map[string]any{{"sql": "SELECT 1"}, {"sql": sql}, {"sql": "DELETE FROM items WHERE id = 3"}}},
				{"op": "many", "sql": sql, "params_list": []any{nil, nil}},
			}
			for _, r := range reqs {
				if ro {
					r["read_only"] = true
				}
				_, _ = b.run(body(r)) // refused or harmless: the rows say which
				require.Equal(t, want, itemsChecksum(t, pg), "%s: %s", mode, body(r))
			}
		}
		// And the connection the attacks ran on still serves, read-only.
		a := b.ok(`{"sql":"SELECT count(*) AS n FROM items","read_only":true}`)
		require.EqualValues(t, float64(3), a["rows"].([]any)[0].(map[string]any)["n"])
	}
}

// TestReadOnlyRefusesWriteOps: read-only refuses script, insert and update
// outright, and many/tx writes are stopped by the server.
func TestReadOnlyRefusesWriteOps(t *testing.T) {
	t.Parallel()
	pg := newItems(t)
	want := itemsChecksum(t, pg)
	b := newBoundary(t, pg, pg.URL, pgexec.ModeReadOnly)
	for _, r := range []string{
		`{"op":"script","sql":"SELECT 1"}`,
		`{"op":"insert","table":"items","data":{"id":9,"bal":1}}`,
		`{"op":"update","table":"items","data":{"bal":1},"all_rows":true}`,
	} {
		require.Equal(t, messages.CodeForbidden, b.refused(r).Code, r)
	}
	for _, r := range []string{
		`{"op":"many","sql":"INSERT INTO items VALUES (:id, 1)","params_list":[{"id":8},{"id":9}]}`,
		`{"op":"tx","statements":[{"sql":"SET TRANSACTION READ WRITE"},{"sql":"INSERT INTO items VALUES (9, 1)"}]}`,
		`{"sql":"INSERT INTO items VALUES (9, 1) RETURNING *"}`,
	} {
		b.refused(r)
	}
	require.Equal(t, want, itemsChecksum(t, pg))
}

// TestReadOnlyRollsBackWhatReadOnlyLetsThrough: large objects and NOTIFY are
// not stopped by READ ONLY; the read-only request's rollback undoes them.
func TestReadOnlyRollsBackWhatReadOnlyLetsThrough(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	b := newBoundary(t, pg, pg.URL, pgexec.ModeReadOnly)

	ctx := context.Background()
	listener, err := pgx.Connect(ctx, pg.URL)
	require.NoError(t, err)
	defer listener.Close(ctx)
	channel := "ro_" + strings.ToLower(pg.Schema)
	_, err = listener.Exec(ctx, "LISTEN "+channel)
	require.NoError(t, err)

	// The large objects' OIDs come back in the answers; none may exist after.
	for _, sql := range []string{"SELECT lo_from_bytea(0, 'x') AS lo", "SELECT lo_import('/etc/hostname') AS lo"} {
		a := b.ok(body(map[string]any{"sql": sql, "op": "one"}))
		oid := a["row"].(map[string]any)["lo"]
		require.NotNil(t, oid)
		require.Zero(t, scalar[int64](t, pg, "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = $1", int64(oid.(float64))), "no large object outlives a read-only request: %s", sql)
	}
	b.ok(body(map[string]any{"sql": "SELECT pg_notify('" + channel + "', 'from a read-only request')"}))

	// Notifications arrive in commit order: the marker sent after the read-only
	// requests is the first one, so theirs never happened.
	pg.Exec(t, "SELECT pg_notify('"+channel+"', 'marker')")
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := listener.WaitForNotification(wctx)
	require.NoError(t, err)
	require.Equal(t, "marker", n.Payload)
}

// TestSessionStateDoesNotLeak poisons the one pooled connection in every way
// a request can, then checks what the next request on it sees.
func TestSessionStateDoesNotLeak(t *testing.T) {
	t.Parallel()
	pg := newItems(t)
	evil := pg.Schema + "_evil"
	pg.Exec(t, "CREATE SCHEMA "+evil+"; CREATE TABLE "+evil+".items (id int, bal int, extra text); CREATE SEQUENCE seq")
	t.Cleanup(func() { pg.Exec(t, "DROP SCHEMA "+evil+" CASCADE") })
	defaultPath := scalar[string](t, pg, "SHOW search_path")

	type probe struct {
		sql  string // a query whose one value must be want
		want string
	}
	clean := []probe{
		{"SELECT current_setting('search_path')", defaultPath},
		{"SELECT current_user::text || '/' || session_user::text", "postgres/postgres"},
		{"SELECT current_setting('default_transaction_read_only')", "off"},
		{"SELECT current_setting('statement_timeout')", "5min"},
		{"SELECT reset_val FROM pg_settings WHERE name = 'statement_timeout'", "300000"},
		{"SELECT current_setting('standard_conforming_strings')", "on"},
		{"SELECT current_setting('TimeZone')", "UTC"},
		{"SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()", "0"},
		{"SELECT count(*)::text FROM pg_prepared_statements WHERE from_sql", "0"},
		{"SELECT count(*)::text FROM pg_cursors WHERE is_holdable", "0"},
		{"SELECT count(*)::text FROM pg_listening_channels()", "0"},
		{"SELECT coalesce(to_regclass('pg_temp.tt')::text, 'none')", "none"},
		{"SELECT coalesce(to_regprocedure('pg_temp.tf()')::text, 'none')", "none"},
		{"SELECT count(*)::text FROM items", "3"},
	}
	poisons := []string{
		`{"sql":"SELECT set_config('search_path', '` + evil + `, public', false)"}`,
		`{"sql":"SET search_path = ` + evil + `"}`,
		`{"sql":"SELECT set_config('role', 'pg_read_all_data', false)"}`,
		`{"sql":"SET ROLE pg_read_all_data"}`,
		`{"sql":"SET SESSION AUTHORIZATION pg_read_all_data"}`,
		`{"sql":"SELECT set_config('default_transaction_read_only', 'on', false)"}`,
		`{"sql":"SELECT set_config('statement_timeout', '1', false)"}`,
		`{"sql":"SET standard_conforming_strings = off"}`,
		`{"sql":"SET TIME ZONE 'Asia/Tokyo'"}`,
		`{"sql":"SELECT pg_advisory_lock(42)"}`,
		`{"sql":"CREATE TEMP TABLE tt (x int)"}`,
		`{"sql":"CREATE FUNCTION pg_temp.tf() RETURNS int LANGUAGE sql AS 'SELECT 1'"}`,
		`{"sql":"PREPARE p1 AS SELECT 1"}`,
		`{"sql":"DO $$ BEGIN EXECUTE 'PREPARE p2 AS SELECT 2'; END $$"}`,
		`{"sql":"DECLARE c CURSOR WITH HOLD FOR SELECT 1"}`,
		`{"sql":"LISTEN chan"}`,
		`{"sql":"SELECT nextval('seq')"}`,
		`{"op":"script","sql":"SET search_path = ` + evil + `; CREATE TEMP TABLE tt (x int); SELECT pg_advisory_lock(43); PREPARE p3 AS SELECT 3"}`,
		`{"op":"tx","statements":[{"sql":"SELECT set_config('search_path', '` + evil + `', false)"},{"sql":"SELECT pg_advisory_lock(44)"}]}`,
		`{"op":"many","sql":"SELECT set_config('role', 'pg_read_all_data', false)","params_list":[null]}`,
		`{"sql":"DEALLOCATE ALL"}`,
		`{"sql":"DISCARD PLANS"}`,
		// Replacing the worker's own prepared statements by name.
		`{"sql":"DO $$ BEGIN EXECUTE 'DEALLOCATE dbw_rollback'; EXECUTE 'PREPARE dbw_rollback AS SELECT 1'; EXECUTE 'DEALLOCATE dbw_begin_ro'; EXECUTE 'PREPARE dbw_begin_ro AS SELECT 1'; END $$"}`,
		`{"sql":"DO $d$ DECLARE r record; BEGIN FOR r IN SELECT name FROM pg_prepared_statements WHERE name LIKE 'dbw%' LOOP EXECUTE format('DEALLOCATE %I', r.name); EXECUTE format('PREPARE %I AS DELETE FROM items', r.name); END LOOP; END $d$"}`,
		// Dropping them, which READ ONLY allows too.
		`{"sql":"DO $$BEGIN EXECUTE 'DEALLOCATE dbw_timeout'; END$$"}`,
		`{"sql":"DO $d$DECLARE r record; BEGIN FOR r IN SELECT name FROM pg_prepared_statements WHERE name ~ '^dbw_[0-9]+$' LOOP EXECUTE format('DEALLOCATE %I', r.name); END LOOP; END$d$"}`,
		// Caching a statement under another search_path, where it has another shape.
		`{"op":"tx","statements":[{"sql":"SELECT set_config('search_path', '` + evil + `', true)"},{"sql":"SELECT * FROM items"}]}`,
	}
	for _, mode := range []pgexec.Mode{pgexec.ModeReadWrite, pgexec.ModeReadOnly} {
		b := newBoundary(t, pg, pg.URL, mode)
		for _, poison := range poisons {
			// Warm the statement cache with the probes, so a poison can aim at them.
			for _, p := range clean {
				b.ok(body(map[string]any{"sql": p.sql}))
			}
			_, _ = b.run(poison)
			for _, p := range clean {
				a := b.ok(body(map[string]any{"sql": p.sql, "row_format": "array"}))
				got := fmt.Sprint(a["rows"].([]any)[0].([]any)[0])
				want := p.want
				if want == "5min" && mode == pgexec.ModeReadOnly {
					// A read-only request runs under what is left of its own
					// timeout (30 s), set local; the session's own is checked
					// above.
					d, err := time.ParseDuration(strings.Replace(got, "min", "m", 1))
					require.NoError(t, err, got)
					require.InDelta(t, 30*time.Second, d, float64(5*time.Second), "%s: after %s", mode, poison)
					continue
				}
				require.Equal(t, want, got, "%s: after %s, %s", mode, poison, p.sql)
			}
			for _, r := range []string{`{"sql":"SELECT * FROM items"}`, `{"op":"tx","statements":[{"sql":"SELECT * FROM items"}]}`, `{"op":"many","sql":"SELECT * FROM items","params_list":[null]}`} {
				require.Contains(t, mustJSON(t, b.ok(r)), `"columns":[{"name":"id","type":"int4"},{"name":"bal","type":"int4"}]`, "%s: after %s, %s", mode, poison, r)
			}
			_, me := b.run(`{"sql":"SELECT currval('seq')"}`)
			require.NotNil(t, me, "%s: after %s the sequence state leaked", mode, poison)
			require.Equal(t, "55000", me.SQLState)
			if mode == pgexec.ModeReadWrite {
				// Another caller's insert lands in the schema its search_path names.
				b.ok(`{"op":"insert","table":"items","data":{"id":9,"bal":9}}`)
				require.EqualValues(t, 0, scalar[int64](t, pg, "SELECT count(*) FROM "+evil+".items"), poison)
				b.ok(`{"sql":"DELETE FROM items WHERE id = 9"}`)
			}
			// The advisory lock is free for anyone else.
			require.True(t, scalar[bool](t, pg, "SELECT pg_try_advisory_lock(42) AND pg_try_advisory_lock(43) AND pg_try_advisory_lock(44)"), poison)
			require.Equal(t, "1=100,2=100,3=100", itemsChecksum(t, pg), "%s: after %s", mode, poison)
		}
	}
}

// TestSettingsFromTheConnectionSurviveTheReset: the reset goes back to what
// the worker connected with (startup parameters), not to server defaults.
func TestSettingsFromTheConnectionSurviveTheReset(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	b := newBoundary(t, pg, pg.URL+"&work_mem=7MB", pgexec.ModeReadWrite)
	for range 3 {
		b.ok(`{"sql":"SET work_mem = '1MB'"}`)
		a := b.ok(`{"sql":"SELECT current_setting('search_path') AS p, current_setting('work_mem') AS w, current_setting('application_name') AS a, (SELECT reset_val FROM pg_settings WHERE name = 'statement_timeout') AS s","op":"one"}`)
		require.Equal(t, map[string]any{"p": pg.Schema + ",public", "w": "7MB", "a": "dbworker", "s": "300000"}, a["row"])
	}
	// A request's own timeout still applies inside its transaction.
	a := b.ok(`{"sql":"SELECT current_setting('statement_timeout') AS s","op":"one","read_only":true,"timeout_ms":1500}`)
	d, err := time.ParseDuration(a["row"].(map[string]any)["s"].(string))
	require.NoError(t, err)
	require.InDelta(t, 1500*time.Millisecond, d, float64(500*time.Millisecond), "what is left of the request's timeout")
}

// TestTxKeepsItsWord: a tx applies every statement or none.
func TestTxKeepsItsWord(t *testing.T) {
	t.Parallel()
	pg := newItems(t, purgeProc)
	b := newBoundary(t, pg, pg.URL, pgexec.ModeReadWrite)
	tx := func(stmts ...string) string {
		list := make([]map[string]any, len(stmts))
		for i, s := range stmts {
			list[i] = map[string]any{"sql": s}
		}
		return body(map[string]any{"op": "tx", "statements": list})
	}
	for _, r := range []string{
		tx("UPDATE items SET bal = 50 WHERE id = 1", "COMMIT", "SELECT 1/0"),
		tx("UPDATE items SET bal = 60 WHERE id = 1", "ROLLBACK", "UPDATE items SET bal = 61 WHERE id = 1"),
		tx("UPDATE items SET bal = 60 WHERE id = 1", "end", "UPDATE items SET bal = 61 WHERE id = 2"),
		tx("UPDATE items SET bal = 60 WHERE id = 1", "/* x */ abort"),
		tx("UPDATE items SET bal = 60 WHERE id = 1", "--\rCOMMIT"),
		tx("UPDATE items SET bal = 60 WHERE id = 1", "PREPARE TRANSACTION 'p'"),
		tx("SAVEPOINT a", "UPDATE items SET bal = 60 WHERE id = 1", "ROLLBACK TO a"),
		tx("BEGIN", "UPDATE items SET bal = 60 WHERE id = 1"),
		tx("START TRANSACTION", "UPDATE items SET bal = 60 WHERE id = 1"),
	} {
		e := b.refused(r)
		require.Equal(t, messages.CodeBadRequest, e.Code, r)
		require.Equal(t, "1=100,2=100,3=100", itemsChecksum(t, pg), r)
	}
	// Transaction control the keyword check cannot see fails in the server.
	for _, r := range []string{
		tx("UPDATE items SET bal = 60 WHERE id = 1", "CALL purge()"),
		tx("UPDATE items SET bal = 60 WHERE id = 1", "DO $$ BEGIN COMMIT; END $$"),
		tx("UPDATE items SET bal = 60 WHERE id = 1", "SELECT 1/0", "UPDATE items SET bal = 61 WHERE id = 2"),
	} {
		e := b.refused(r)
		require.NotNil(t, e.FailedIndex, r)
		require.Equal(t, "1=100,2=100,3=100", itemsChecksum(t, pg), r)
	}
	// rows_affected counts rows written; each result keeps its own count.
	a := b.ok(tx("SELECT * FROM items FOR UPDATE", "UPDATE items SET bal = bal + 1 WHERE id = 1"))
	require.EqualValues(t, float64(1), a["rows_affected"])
	require.EqualValues(t, float64(3), a["results"].([]any)[0].(map[string]any)["rows_affected"])
	require.Equal(t, "1=101,2=100,3=100", itemsChecksum(t, pg))
}

// TestScriptKeepsItsWord: a script commits all it answered for, or answers an
// error and leaves nothing.
func TestScriptKeepsItsWord(t *testing.T) {
	t.Parallel()
	pg := newItems(t)
	b := newBoundary(t, pg, pg.URL, pgexec.ModeReadWrite)
	script := func(sql string) string { return body(map[string]any{"op": "script", "sql": sql}) }
	for _, s := range []string{
		"UPDATE items SET bal = 1 WHERE id = 1; BEGIN; UPDATE items SET bal = 2 WHERE id = 2",
		"UPDATE items SET bal = 1 WHERE id = 1; COMMIT; UPDATE items SET bal = 2 WHERE id = 2; SELECT 1/0",
		"UPDATE items SET bal = 1 WHERE id = 1; SELECT 1/0",
		"UPDATE items SET bal = 1 WHERE id = 1; DO $$ BEGIN COMMIT; END $$",
		"UPDATE items SET bal = 1 WHERE id = 1; VACUUM items",
		"UPDATE items SET bal = 1 WHERE id = 1; SELECT 1 --\r; COMMIT",
	} {
		b.refused(script(s))
		require.Equal(t, "1=100,2=100,3=100", itemsChecksum(t, pg), s)
	}
	a := b.ok(script("UPDATE items SET bal = 1 WHERE id = 1; SELECT * FROM items; UPDATE items SET bal = 2 WHERE id IN (2, 3)"))
	require.EqualValues(t, float64(3), a["rows_affected"], "rows read by the SELECT are not counted")
	require.Equal(t, []any{"UPDATE 1", "SELECT 3", "UPDATE 2"}, a["commands"])
	require.Equal(t, "1=1,2=2,3=2", itemsChecksum(t, pg))
	// What PostgreSQL refuses in a transaction block runs alone.
	b.ok(script("CREATE INDEX CONCURRENTLY items_bal ON items (bal)"))
	b.ok(script("VACUUM items"))
}

// TestSingleStatementKeepsItsWord: a statement sent alone runs in a
// transaction of the worker's too, so a procedure or DO block cannot commit
// part of its work and answer an error.
func TestSingleStatementKeepsItsWord(t *testing.T) {
	t.Parallel()
	pg := newItems(t)
	pg.Exec(t, `CREATE PROCEDURE purge() LANGUAGE plpgsql AS $$ BEGIN DELETE FROM items; COMMIT; RAISE EXCEPTION 'after the commit'; END $$`)
	b := newBoundary(t, pg, pg.URL, pgexec.ModeReadWrite)
	for _, r := range []string{
		`{"sql":"DO $$BEGIN UPDATE items SET bal = 2 WHERE id = 2; COMMIT; RAISE EXCEPTION 'boom'; END$$"}`,
		`{"op":"script","sql":"DO $$BEGIN UPDATE items SET bal = 1 WHERE id = 1; COMMIT; PERFORM 1/0; END$$"}`,
		`{"sql":"CALL purge()"}`,
		`{"op":"script","sql":"CALL purge()"}`,
		// Raising 25001 by hand only runs the block alone, where it fails whole.
		`{"sql":"DO $$BEGIN UPDATE items SET bal = 3 WHERE id = 3; RAISE EXCEPTION USING ERRCODE = '25001'; END$$"}`,
	} {
		b.refused(r)
		require.Equal(t, "1=100,2=100,3=100", itemsChecksum(t, pg), r)
	}
	b.ok(`{"sql":"VACUUM items"}`)
	a := b.ok(`{"sql":"UPDATE items SET bal = 5 WHERE id = 1"}`)
	require.EqualValues(t, float64(1), a["rows_affected"])
	require.Equal(t, "1=5,2=100,3=100", itemsChecksum(t, pg))
}

// TestUnsupportedInputIsTheCallersError: COPY to or from the client and NUL
// bytes are the caller's error (400), not an internal or retryable one, and
// the worker keeps serving.
func TestUnsupportedInputIsTheCallersError(t *testing.T) {
	t.Parallel()
	pg := newItems(t)
	for _, mode := range []pgexec.Mode{pgexec.ModeReadWrite, pgexec.ModeReadOnly} {
		b := newBoundary(t, pg, pg.URL, mode)
		for _, r := range []string{
			`{"sql":"COPY (SELECT 1) TO STDOUT"}`,
			`{"sql":"COPY items FROM STDIN"}`,
			`{"op":"tx","statements":[{"sql":"COPY items TO STDOUT"}]}`,
			`{"sql":"\u0000DELETE FROM items"}`,
			`{"sql":"SELECT 1 \u0000; DELETE FROM items"}`,
			`{"op":"tx","statements":[{"sql":"SELECT 1"},{"sql":"DELETE FROM items\u0000"}]}`,
		} {
			e := b.refused(r) // FORBIDDEN where PostgreSQL refuses a read-only write first
			require.Contains(t, []messages.Code{messages.CodeBadRequest, messages.CodeForbidden}, e.Code, "%s: %s: %s", mode, r, e.Message)
		}
		b.ok(`{"sql":"SELECT 1"}`)
	}
	require.Equal(t, "1=100,2=100,3=100", itemsChecksum(t, pg))
}

// TestParameterLimit: more parameters than the protocol carries is the
// caller's error, not an internal one.
func TestParameterLimit(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	b := newBoundary(t, pg, pg.URL, pgexec.ModeReadWrite)
	const n = 70000
	var sql strings.Builder
	params := make([]int, n)
	sql.WriteString("SELECT 1 WHERE 1 IN (")
	for i := range n {
		if i > 0 {
			sql.WriteByte(',')
		}
		fmt.Fprintf(&sql, "$%d", i+1)
		params[i] = i
	}
	sql.WriteString(")")
	e := b.refused(body(map[string]any{"sql": sql.String(), "params": params}))
	require.Equal(t, messages.CodeBadRequest, e.Code)
	require.Contains(t, e.Message, "65535")
	q := strings.Repeat("?,", n-1) + "?"
	e = b.refused(body(map[string]any{"sql": "SELECT 1 WHERE 1 IN (" + q + ")", "params": params}))
	require.Equal(t, messages.CodeBadRequest, e.Code)
	b.ok(`{"sql":"SELECT 1"}`)
}

// TestAnswerBoundWhileEncoding: a value larger than the answer bound is
// refused before it is encoded, and a row larger than the connection's
// message bound is refused before it is read.
func TestAnswerBoundWhileEncoding(t *testing.T) {
	pg := testenv.NewPostgres(t)
	b := newBoundary(t, pg, pg.URL, pgexec.ModeReadWrite)
	e := b.refused(`{"sql":"SELECT repeat(chr(10), 4000000) AS v"}`)
	require.Equal(t, messages.CodeTooLarge, e.Code)
	e = b.refused(`{"sql":"SELECT repeat('x', 2000) AS v FROM generate_series(1, 10000)"}`)
	require.Equal(t, messages.CodeTooLarge, e.Code)
	e = b.refused(`{"sql":"SELECT repeat(chr(10), 20000000) AS v"}`) // over MaxMessageBytes (8 MiB here)
	require.Equal(t, messages.CodeTooLarge, e.Code)
	require.Contains(t, e.Message, "database")
	b.ok(`{"sql":"SELECT 1"}`)
}

// TestLeastPrivilegeRoles runs the attacks that only a role can stop against
// the logins deploy/postgres/roles.sql makes.
func TestLeastPrivilegeRoles(t *testing.T) {
	t.Parallel()
	pg := newItems(t)
	roles := pg.ApplyRoles(t)
	lo := scalar[uint32](t, pg, "SELECT lo_from_bytea(0, 'secret')")
	t.Cleanup(func() { pg.Exec(t, fmt.Sprintf("SELECT lo_unlink(%d)", lo)) })

	ctx := context.Background()
	victim, err := pgx.Connect(ctx, roles.ReadOnlyURL)
	require.NoError(t, err)
	defer victim.Close(ctx)

	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o777)) // the server could write here if allowed
	for name, dsn := range map[string]string{"ro": roles.ReadOnlyURL, "rw": roles.ReadWriteURL} {
		mode := pgexec.ModeReadWrite
		if name == "ro" {
			mode = pgexec.ModeReadOnly
		}
		b := newBoundary(t, pg, dsn, mode)
		file := filepath.Join(dir, name)
		for _, sql := range []string{
			"COPY (SELECT 1) TO PROGRAM 'touch " + file + "'",
			"COPY (SELECT 1) TO '" + file + "'",
			fmt.Sprintf("SELECT lo_export(%d, '%s')", lo, file),
			"SELECT lo_import('/etc/hostname')",
			fmt.Sprintf("SELECT pg_terminate_backend(%d)", victim.PgConn().PID()),
			fmt.Sprintf("SELECT pg_cancel_backend(%d)", victim.PgConn().PID()),
			"SELECT pg_read_file('/etc/hostname')",
			"ALTER SYSTEM SET work_mem = '1GB'",
			"CREATE ROLE intruder LOGIN SUPERUSER",
		} {
			e := b.refused(body(map[string]any{"sql": sql}))
			require.Contains(t, []messages.Code{messages.CodeForbidden, messages.CodeBadRequest, messages.CodeSQL}, e.Code, "%s: %s", name, sql)
			_, err := os.Stat(file)
			require.True(t, errors.Is(err, os.ErrNotExist), "%s: %s wrote a server file", name, sql)
			require.NoError(t, victim.Ping(ctx), "%s: %s reached another session", name, sql)
		}
		if name == "ro" {
			e := b.refused(`{"sql":"DELETE FROM items"}`)
			require.Equal(t, messages.CodeForbidden, e.Code)
		}
	}
	require.Equal(t, "1=100,2=100,3=100", itemsChecksum(t, pg))
}

// TestCheckReadOnlyRole: the start-up check accepts only a login that can
// only read.
func TestCheckReadOnlyRole(t *testing.T) {
	t.Parallel()
	pg := newItems(t)
	roles := pg.ApplyRoles(t)
	check := func(dsn string) error {
		c, err := pgexec.Connect(context.Background(), pgexec.Config{DSN: dsn, MaxConns: 1})
		require.NoError(t, err)
		defer c.Close()
		return c.CheckReadOnlyRole(context.Background())
	}
	require.NoError(t, check(roles.ReadOnlyURL))
	require.ErrorContains(t, check(roles.ReadWriteURL), "may write a table")
	require.ErrorContains(t, check(pg.URL), "superuser")

	// Powers reachable with SET ROLE count, as do replication and the pg_* roles.
	login := func(name, attrs, grants string) string {
		role := name + "_" + pg.Schema
		pg.Exec(t, fmt.Sprintf("CREATE ROLE %s LOGIN %s; GRANT USAGE ON SCHEMA %s TO %s; GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s; %s",
			role, attrs, pg.Schema, role, pg.Schema, role, strings.ReplaceAll(grants, "$role", role)))
		t.Cleanup(func() { pg.Exec(t, fmt.Sprintf("DROP OWNED BY %s; DROP ROLE %s", role, role)) })
		return strings.Replace(roles.ReadOnlyURL, "dbworker_ro@", role+"@", 1)
	}
	require.ErrorContains(t, check(login("ni_super", "NOINHERIT", "GRANT postgres TO $role")), "superuser")
	require.ErrorContains(t, check(login("ni_files", "NOINHERIT", "GRANT pg_write_server_files TO $role")), "pg_write_server_files")
	require.ErrorContains(t, check(login("ni_writer", "NOINHERIT", "GRANT dbworker_rw TO $role")), "may write a table")
	require.ErrorContains(t, check(login("repl", "REPLICATION", "")), "replicate")
}

// TestCleanConnectionIsReused: the reset keeps a connection that a request
// left clean, whatever the request's shape; only a dirty one is replaced.
func TestCleanConnectionIsReused(t *testing.T) {
	t.Parallel()
	pg := newItems(t)
	b := newBoundary(t, pg, pg.URL, pgexec.ModeReadWrite)
	pid := func() any {
		return b.ok(`{"sql":"SELECT pg_backend_pid() AS pid","op":"one"}`)["row"].(map[string]any)["pid"]
	}
	first := pid()
	for _, r := range []string{
		`{"sql":"SELECT 1"}`,
		`{"sql":"SELECT 1","read_only":true}`,
		`{"sql":"UPDATE items SET bal = bal WHERE id = 1"}`,
		`{"sql":"INSERT INTO items VALUES (7, 7) RETURNING *"}`,
		`{"op":"insert","table":"items","data":{"id":8,"bal":8},"returning":["id"]}`,
		`{"op":"update","table":"items","data":{"bal":9},"where":"id = :id","where_params":{"id":8}}`,
		`{"op":"tx","statements":[{"sql":"SELECT 1"},{"sql":"DELETE FROM items WHERE id IN (7, 8)"}]}`,
		`{"op":"many","sql":"SELECT :x::int","params_list":[{"x":1},{"x":2}]}`,
		`{"op":"script","sql":"SELECT 1; SELECT 2"}`,
		`{"op":"script","sql":"SELECT 1"}`,
		`{"sql":"SET work_mem = '2MB'"}`,
		`{"sql":"SELECT pg_advisory_lock(1)"}`,
	} {
		b.ok(r)
		require.Equal(t, first, pid(), r)
	}
	// Errors leave it clean too.
	for _, r := range []string{
		`{"sql":"SELECT 1/0"}`,
		`{"sql":"SELECT 1/0","read_only":true}`,
		`{"op":"tx","statements":[{"sql":"SELECT 1"},{"sql":"SELECT 1/0"}]}`,
		`{"op":"script","sql":"SELECT 1; SELECT 1/0"}`,
		`{"sql":"SELECT :missing"}`,
	} {
		b.refused(r)
		require.Equal(t, first, pid(), r)
	}
	// Temporary objects, prepared statements, LISTEN: DISCARD ALL clears them
	// and the connection stays.
	for _, r := range []string{`{"sql":"CREATE TEMP TABLE t (x int)"}`, `{"sql":"PREPARE p AS SELECT 1"}`, `{"sql":"LISTEN c"}`} {
		b.ok(r)
		require.Equal(t, first, pid(), r)
	}
	a := b.ok(`{"sql":"SELECT to_regclass('pg_temp.t') IS NULL AS gone, (SELECT count(*) FROM pg_prepared_statements) AS prepared","op":"one"}`)
	require.Equal(t, map[string]any{"gone": true, "prepared": float64(0)}, a["row"])
}

// TestDescriptionsAndTypesCannotBePoisoned: what a caller's transaction sees
// (its search_path, its temporary tables, its own functions) never shapes how
// another caller's statement is bound or read.
func TestDescriptionsAndTypesCannotBePoisoned(t *testing.T) {
	pg := testenv.NewPostgres(t) // not parallel: it replaces string_to_array in a schema of its own
	evil := pg.Schema + "_evil"
	pg.Exec(t, `CREATE TABLE acct (id int8 PRIMARY KEY, owner text, balance int);
		INSERT INTO acct VALUES (16777216, 'mallory', 0), (16777217, 'alice', 1000);
		CREATE SCHEMA `+evil+`; CREATE TABLE `+evil+`.acct (id float4, owner text, balance int);
		CREATE FUNCTION `+evil+`.string_to_array(text, text) RETURNS text[] LANGUAGE sql
		  AS $$SELECT ARRAY['20','23','16','3802','1184','2950','701']$$;
		CREATE TYPE `+evil+`.sparsevec AS (f text)`)
	t.Cleanup(func() { pg.Exec(t, "DROP SCHEMA "+evil+" CASCADE") })
	b := newBoundary(t, pg, pg.URL, pgexec.ModeReadWrite)
	balances := func() string {
		return scalar[string](t, pg, "SELECT string_agg(owner || '=' || balance, ',' ORDER BY id) FROM acct")
	}

	// A read-only tx describes the statement under its own search_path.
	b.refused(`{"op":"tx","read_only":true,"statements":[{"sql":"SELECT set_config('search_path', '` + evil + `', true)"},{"sql":"UPDATE acct SET balance = balance + $2 WHERE id = $1","params":[1,1]}]}`)
	b.ok(`{"sql":"UPDATE acct SET balance = balance + $2 WHERE id = $1","params":[16777217,-100]}`)
	require.Equal(t, "mallory=0,alice=900", balances(), "the victim's update changed its own row")
	a := b.ok(`{"sql":"SELECT owner FROM acct WHERE id = $1","params":[16777217],"op":"one"}`)
	require.Equal(t, "alice", a["row"].(map[string]any)["owner"])

	// A temporary table of the same name, inside a tx.
	_, _ = b.run(`{"op":"tx","statements":[{"sql":"CREATE TEMP TABLE acct (id int2, owner text, balance int)"},{"sql":"DELETE FROM acct WHERE id = $1","params":[1]}]}`)
	a = b.ok(`{"sql":"DELETE FROM acct WHERE id = $1","params":[16777216]}`)
	require.EqualValues(t, float64(1), a["rows_affected"])

	// A column whose type changes between requests is bound as it is now.
	pg.Exec(t, "CREATE TABLE ev (id int PRIMARY KEY, at date); INSERT INTO ev VALUES (1, '2024-01-01')")
	upd := `{"sql":"UPDATE ev SET at = :at WHERE id = :id","params":{"id":1,"at":"2024-03-05"}}`
	b.ok(upd)
	pg.Exec(t, "ALTER TABLE ev ALTER at TYPE timestamptz")
	b.ok(`{"sql":"UPDATE ev SET at = :at WHERE id = :id","params":{"id":1,"at":"2024-03-05T17:45:00Z"}}`)
	require.Equal(t, "2024-03-05 17:45:00+00", scalar[string](t, pg, "SELECT at::text FROM ev"), "the time is kept")

	// The type catalog is looked up with qualified names, whatever the
	// caller's search_path; types of an extension's name elsewhere are not it.
	_, _ = b.run(`{"op":"tx","read_only":true,"statements":[{"sql":"SELECT set_config('search_path', '` + evil + `,pg_catalog', true)"},{"sql":"SELECT 'pg_class'::regclass AS r, ROW('AAAA')::` + evil + `.sparsevec AS v"}]}`)
	a = b.ok(`{"sql":"SELECT 1::int8 AS i, true AS t, '{\"a\":1}'::jsonb AS j, now() IS NOT NULL AS n, ROW('AAAA')::` + evil + `.sparsevec AS v","op":"one"}`)
	require.Equal(t, map[string]any{"i": float64(1), "t": true, "j": map[string]any{"a": float64(1)}, "n": true, "v": "(AAAA)"}, a["row"])
}

// TestStaleDescriptionsNeverRunAWriteTwice: a statement that autocommitted
// before its result showed a stale description is reported, not sent again.
func TestStaleDescriptionsNeverRunAWriteTwice(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	pg.Exec(t, `CREATE TABLE cnt (n int); INSERT INTO cnt VALUES (0);
		CREATE FUNCTION bump() RETURNS int LANGUAGE sql AS 'UPDATE cnt SET n = n + 1 RETURNING n';
		CREATE TABLE t (x int); INSERT INTO t VALUES (1)`)
	b := newBoundary(t, pg, pg.URL, pgexec.ModeReadWrite)
	b.ok(`{"sql":"SELECT bump() AS b, x FROM t"}`)
	pg.Exec(t, "ALTER TABLE t ALTER x TYPE int8")
	e := b.refused(`{"sql":"SELECT bump() AS b, x FROM t"}`)
	require.Equal(t, messages.CodeUnavailable, e.Code)
	require.EqualValues(t, 2, scalar[int64](t, pg, "SELECT n FROM cnt"), "one increment per request")
	b.ok(`{"sql":"SELECT bump() AS b, x FROM t"}`)
	require.EqualValues(t, 3, scalar[int64](t, pg, "SELECT n FROM cnt"))
}

// TestNoErrorHidesACommittedWrite: COPY is refused before it runs, and a
// script is committed only once its last result was read.
func TestNoErrorHidesACommittedWrite(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	pg.Exec(t, "CREATE TABLE log (x int); INSERT INTO log VALUES (1)")
	b := newBoundary(t, pg, pg.URL, pgexec.ModeReadWrite) // rows over 8 MiB are refused
	for _, r := range []string{
		`{"sql":"COPY (DELETE FROM log RETURNING *) TO STDOUT"}`,
		`{"sql":"COPY (INSERT INTO log VALUES (99) RETURNING *) TO STDOUT"}`,
		`{"op":"script","sql":"INSERT INTO log VALUES (100); INSERT INTO log VALUES (101); COPY (SELECT 1) TO STDOUT"}`,
		`{"op":"script","sql":"INSERT INTO log VALUES (200); SELECT repeat('x', 9000000)"}`,
		`{"op":"script","sql":"DELETE FROM log; SELECT repeat('x', 9000000)"}`,
	} {
		b.refused(r)
		require.Equal(t, "1", scalar[string](t, pg, "SELECT string_agg(x::text, ',') FROM log"), r)
	}
}

// TestLastRoundOfAttacks: a DO block that raises 25001 only inside the
// worker's transaction, values bound by a type the column no longer has, and
// random()'s seed left for the next caller.
func TestLastRoundOfAttacks(t *testing.T) {
	t.Parallel()
	pg := newItems(t)
	b := newBoundary(t, pg, pg.URL, pgexec.ModeReadWrite)

	// Run alone, the block would commit its update and then fail.
	do := `DO $$BEGIN IF current_setting('statement_timeout') <> '5min' THEN RAISE EXCEPTION USING ERRCODE = '25001'; END IF; UPDATE items SET bal = 1 WHERE id = 1; COMMIT; RAISE EXCEPTION 'after the commit'; END$$`
	for _, op := range []string{"query", "script"} {
		b.refused(body(map[string]any{"op": op, "sql": do}))
		require.Equal(t, "1=100,2=100,3=100", itemsChecksum(t, pg), op)
	}

	// A column that became bytea: the text value is refused, not taken as
	// bytes. (The other way, bytea to text, PostgreSQL's assignment cast to
	// text takes it: docs/protocol.md says so.)
	pg.Exec(t, "CREATE TABLE blob (id int PRIMARY KEY, w text); INSERT INTO blob VALUES (1, 'aGk=')")
	b.ok(`{"sql":"UPDATE blob SET w = :w WHERE id = :id","params":{"id":1,"w":"aGk="}}`)
	pg.Exec(t, "ALTER TABLE blob ALTER w TYPE bytea USING decode(w, 'base64')")
	b.refused(`{"sql":"UPDATE blob SET w = :w WHERE id = :id","params":{"id":1,"w":"aGVsbG8="}}`)
	require.Equal(t, "6869", scalar[string](t, pg, "SELECT encode(w, 'hex') FROM blob"))

	// The next caller's random() does not follow a caller's setseed(), by
	// the function or the setting, nor repeat from one request to the next.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var seeded float64
	_, err = conn.Exec(ctx, "SELECT setseed(0.42)")
	require.NoError(t, err)
	require.NoError(t, conn.QueryRow(ctx, "SELECT random()").Scan(&seeded))
	seen := map[any]bool{seeded: true}
	for _, poison := range []string{`{"sql":"SELECT setseed(0.42)","read_only":true}`, `{"sql":"SELECT setseed(0.42)"}`,
		`{"sql":"SET seed = 0.42"}`, `{"sql":"SELECT set_config('seed', '0.42', false)","read_only":true}`,
		`{"op":"tx","statements":[{"sql":"SELECT setseed(0.42)"}]}`, `{"op":"script","sql":"SET seed = 0.42"}`} {
		b.ok(poison)
		r := b.ok(`{"sql":"SELECT random() AS r","op":"one"}`)["row"].(map[string]any)["r"]
		require.False(t, seen[r], "after %s: random() gave %v again", poison, r)
		seen[r] = true
	}
}
