package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/sqltext"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// newCoalescer is a Coalescer on a pool of at most two connections to a
// schema of the test's own, with the session settings the worker connects
// with (a 5-minute statement_timeout among them).
func newCoalescer(t *testing.T, cfg Config) (*Coalescer, *testenv.Postgres, *pgxpool.Pool) {
	t.Helper()
	pg := testenv.NewPostgres(t)
	pcfg, err := pgxpool.ParseConfig(pg.URL)
	require.NoError(t, err)
	pcfg.MaxConns = 2
	pcfg.ConnConfig.RuntimeParams["statement_timeout"] = "300000"
	pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(pool.Close)
	cfg.Acquire, cfg.Types = pool.Acquire, pgjson.NewCatalog()
	return New(cfg), pg, pool
}

// req is a request of sql with JSON arguments $1, $2..., a 5-second deadline.
func req(readOnly bool, sql string, args ...string) *Request {
	b := sqltext.Bound{SQL: sql}
	for i, a := range args {
		b.Args = append(b.Args, json.RawMessage(a))
		b.Names = append(b.Names, "$"+strconv.Itoa(i+1))
	}
	return &Request{Bound: b, ReadOnly: readOnly, Deadline: time.Now().Add(5 * time.Second),
		Shape: pgjson.Shape{MaxRows: 1000, MaxBytes: 1 << 20}, done: make(chan struct{})}
}

// runOne sends batch as one pipeline, as a batch that gathered them would.
func runOne(c *Coalescer, batch ...*Request) {
	c.mu.Lock()
	c.running++
	c.mu.Unlock()
	c.run(batch)
	for _, r := range batch {
		<-r.done
	}
}

// rows decodes an answer's rows.
func rows(t *testing.T, r *Request) []map[string]any {
	t.Helper()
	require.NoError(t, r.err, r.Bound.SQL)
	require.False(t, r.retry, r.Bound.SQL)
	var a struct {
		Rows      []map[string]any `json:"rows"`
		Truncated bool             `json:"truncated"`
	}
	require.NoError(t, json.Unmarshal(r.buf, &a), string(r.buf))
	return a.Rows
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// probeSQL reads, in the request's own session, everything a neighbour
// could have left behind, and echoes the caller's own value.
const probeSQL = `SELECT $1::int AS id, current_setting('search_path') AS sp,
	current_setting('work_mem') AS wm,
	(SELECT count(*) FROM pg_prepared_statements)::int AS prepared,
	(SELECT count(*) FROM pg_listening_channels())::int AS listening,
	(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())::int AS advisory,
	to_regclass('pg_temp.tt') IS NULL AS no_temp, random() AS r,
	current_setting('transaction_read_only') AS ro`

// TestNeighboursAreIsolated sends, in one pipeline, requests that fail,
// time out, return too much, write under read-only and change their
// session, each followed by a neighbour that must get exactly its own
// answer, in a clean session.
func TestNeighboursAreIsolated(t *testing.T) {
	c, pg, _ := newCoalescer(t, Config{})
	pg.Exec(t, "CREATE SEQUENCE seq")
	seeded := func() float64 { // what random() gives after setseed(0.5)
		var v float64
		conn, err := pgxpool.New(context.Background(), pg.URL)
		require.NoError(t, err)
		defer conn.Close()
		require.NoError(t, conn.QueryRow(context.Background(), "SELECT setseed(0.5), random()").Scan(nil, &v))
		return v
	}()
	past := req(false, "SELECT nextval('seq')")
	past.Deadline = time.Now().Add(-time.Millisecond)
	slow := req(false, "SELECT pg_sleep(3)")
	slow.Deadline = time.Now().Add(300 * time.Millisecond)
	big := req(false, "SELECT repeat('x', 100) FROM generate_series(1, 100000)")
	big.Shape.MaxBytes = 10000
	many := req(true, "SELECT generate_series(1, 100) AS g")
	many.Shape.MaxRows = 3
	poisons := []*Request{
		req(false, "SELECT 1/0"),
		past,
		slow,
		big,
		many,
		req(true, "SELECT nextval('seq')"), // a write under READ ONLY
		req(false, "SELECT set_config('search_path', 'evil', false), set_config('work_mem', '77MB', false)"),
		req(true, "SELECT set_config('search_path', 'evil', false)"),
		req(false, "SELECT setseed(0.5)"),
		req(false, "PREPARE p AS SELECT 1"),
		req(false, "LISTEN ch"),
		req(true, "LISTEN ch"),
		req(false, "SELECT pg_advisory_lock(42)"),
		req(false, "CREATE TEMP TABLE tt (a int)"),
		req(false, "SELECT no_such_column"),
	}
	var batch, probes []*Request
	for i, p := range poisons {
		probe := req(i%2 == 0, probeSQL, strconv.Itoa(1000+i))
		batch = append(batch, p, probe)
		probes = append(probes, probe)
	}
	start := time.Now()
	runOne(c, batch...)
	require.Less(t, time.Since(start), 2500*time.Millisecond, "the slow statement was cancelled at its deadline")

	require.Equal(t, "22012", sqlState(poisons[0].err))
	require.ErrorIs(t, past.err, ErrDeadline)
	require.Equal(t, "57014", sqlState(slow.err))
	require.Equal(t, messages.CodeTooLarge, codeOf(big.err), "%v", big.err)
	require.Len(t, rows(t, many), 3)
	require.Contains(t, string(many.buf), `"truncated":true`)
	require.Equal(t, "25006", sqlState(poisons[5].err))
	for _, p := range poisons[6:14] {
		require.NoError(t, p.err, p.Bound.SQL)
	}
	require.Equal(t, "42703", sqlState(poisons[14].err))
	for i, probe := range probes {
		got := rows(t, probe)
		require.Len(t, got, 1)
		row := got[0]
		after := poisons[i].Bound.SQL
		require.EqualValues(t, 1000+i, row["id"], "after %s: crossed answers", after)
		require.Contains(t, row["sp"], pg.Schema, "after %s", after)
		require.NotContains(t, row["sp"], "evil", "after %s", after)
		require.Equal(t, "4MB", row["wm"], "after %s", after)
		require.EqualValues(t, 0, row["prepared"], "after %s", after)
		require.EqualValues(t, 0, row["listening"], "after %s", after)
		require.EqualValues(t, 0, row["advisory"], "after %s", after)
		require.Equal(t, true, row["no_temp"], "after %s", after)
		require.NotEqual(t, seeded, row["r"], "after %s: random() was predictable", after)
		require.Equal(t, map[bool]string{true: "on", false: "off"}[probe.ReadOnly], row["ro"], "after %s", after)
	}
	require.Equal(t, 0, pg.Count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 42"), "the advisory lock outlived the batch")
	require.Equal(t, 1, pg.Count("SELECT CASE WHEN is_called THEN 2 ELSE 1 END FROM seq"), "a refused request ran: the sequence moved")
}

// TestTransactionControlSkipsTheRest: a statement that opens a transaction
// (the executor refuses BEGIN by keyword; here it is sent anyway) is
// answered BAD_REQUEST, and the server itself skips the requests behind it
// (their DISCARD ALL refuses to run in a transaction block): they did not
// run and take the ordinary path. A read-only statement that ends its
// transaction is caught the same way, and the next request runs clean.
func TestTransactionControlSkipsTheRest(t *testing.T) {
	c, pg, _ := newCoalescer(t, Config{})
	pg.Exec(t, "CREATE TABLE t (a int)")
	open := req(false, "BEGIN")
	after := []*Request{req(false, "INSERT INTO t VALUES (1)"), req(false, probeSQL, "1"), req(false, "INSERT INTO t VALUES (2)")}
	runOne(c, append([]*Request{open}, after...)...)
	require.Equal(t, messages.CodeBadRequest, codeOf(open.err), "%v", open.err)
	for _, r := range after {
		require.True(t, r.retry, "%s ran in a transaction it did not open", r.Bound.SQL)
	}
	require.Equal(t, 0, pg.Count("SELECT count(*) FROM t"))

	commit := req(true, "COMMIT")
	next := req(true, probeSQL, "2")
	runOne(c, commit, next)
	require.Equal(t, messages.CodeBadRequest, codeOf(commit.err), "%v", commit.err)
	require.EqualValues(t, 2, rows(t, next)[0]["id"])
	require.Equal(t, "on", rows(t, next)[0]["ro"])
}

// TestDeadlineFirstAnswersAtOnce: a caller whose deadline passes while a
// neighbour's statement holds the connection is answered at its deadline,
// and its statement (here a write) never runs afterwards.
func TestDeadlineFirstAnswersAtOnce(t *testing.T) {
	c, pg, _ := newCoalescer(t, Config{Leaders: 1, Window: time.Second})
	pg.Exec(t, "CREATE TABLE t (a int)")
	slow := req(false, "SELECT pg_sleep(1)")
	var wg sync.WaitGroup
	wg.Go(func() {
		_, ok, err := c.Do(context.Background(), slow)
		require.True(t, ok)
		require.NoError(t, err)
	})
	time.Sleep(100 * time.Millisecond) // the slow batch runs; the next one queues behind it
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	victim := req(false, "WITH w AS (INSERT INTO t VALUES (1) RETURNING a) SELECT a FROM w")
	victim.Deadline, _ = ctx.Deadline()
	start := time.Now()
	_, ok, err := c.Do(ctx, victim)
	require.True(t, ok)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 500*time.Millisecond)
	wg.Wait()
	<-victim.done
	require.ErrorIs(t, victim.err, ErrDeadline)
	require.Equal(t, 0, pg.Count("SELECT count(*) FROM t"), "a timed-out request ran after its caller was answered")
}

// TestManyCallersGetTheirOwnAnswers: 32 goroutines on one or two batching
// connections, read-only and read-write, some failing, some changing their
// session: each gets its own value, errors only its own.
func TestManyCallersGetTheirOwnAnswers(t *testing.T) {
	c, _, _ := newCoalescer(t, Config{Leaders: 1, Window: 2 * time.Millisecond, MaxBatch: 64})
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := range 25 {
				v := g*1000 + i
				var r *Request
				switch i % 5 {
				case 0:
					r = req(g%2 == 0, "SELECT 1/($1::int - $1::int)", strconv.Itoa(v))
				case 1:
					r = req(g%2 == 0, "SELECT set_config('search_path', 'evil', false), $1::int AS id", strconv.Itoa(v))
				default:
					r = req(g%2 == 0, probeSQL, strconv.Itoa(v))
				}
				buf, ok, err := c.Do(context.Background(), r)
				if !ok {
					t.Errorf("%d: retried", v)
					return
				}
				switch i % 5 {
				case 0:
					if sqlState(err) != "22012" {
						t.Errorf("%d: %v", v, err)
					}
				default:
					var a struct{ Rows []map[string]any }
					if err != nil || json.Unmarshal(buf, &a) != nil || len(a.Rows) != 1 {
						t.Errorf("%d: %v %s", v, err, buf)
						return
					}
					if fmt.Sprint(a.Rows[0]["id"]) != strconv.Itoa(v) || i%5 > 1 && a.Rows[0]["sp"] == "evil" {
						t.Errorf("%d: got %v", v, a.Rows[0])
					}
				}
			}
		})
	}
	wg.Wait()
	require.Positive(t, c.Batched(), "no request shared a pipeline")
}

func codeOf(err error) messages.Code {
	var me *messages.Error
	if errors.As(err, &me) {
		return me.Code
	}
	return ""
}
