package txn_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nuid"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/txn"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Red-team tests of the transaction registry: each checks what PostgreSQL
// and the pool are left with, not only the answer.

func TestMain(m *testing.M) {
	testenv.VerifyNoLeaks(m)
}

// bundle is a registry over a pool of the test's own, whose connections
// carry an application_name of their own, so that the test can find (and,
// when the code under test leaked one, terminate) its backends.
type bundle struct {
	pg  *testenv.Postgres
	app string
	c   *pgexec.Client
	ex  *pgexec.Executor
	r   *txn.Registry
}

func setup(t *testing.T, maxConns int32, cfg txn.Config) *bundle {
	t.Helper()
	b := &bundle{pg: testenv.NewPostgres(t), app: "redtx_" + strings.ToLower(nuid.Next())}
	b.pg.Exec(t, `CREATE TABLE items (id int PRIMARY KEY, bal int NOT NULL);
		INSERT INTO items VALUES (1, 100), (2, 100), (3, 100)`)
	c, err := pgexec.Connect(context.Background(), pgexec.Config{DSN: b.pg.URL, MaxConns: maxConns, ApplicationName: b.app, AcquireTimeout: 2 * time.Second})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	b.c = c
	// Registered after NewPostgres, so it runs before the schema is dropped:
	// a backend left in a transaction would make the drop wait forever.
	t.Cleanup(func() {
		// A leaked connection makes pgxpool's Close wait forever: terminate
		// the leftovers (so that the schema can be dropped), and give Close
		// a while only.
		b.terminate(t)
		closed := make(chan struct{})
		go func() {
			c.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(3 * time.Second):
			t.Errorf("the pool's Close hangs: %d connections are still acquired", c.Pool().Stat().AcquiredConns())
		}
	})
	b.ex, err = pgexec.NewExecutor(c, pgexec.ExecutorConfig{})
	require.NoError(t, err)
	b.r, err = txn.New(b.ex, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = b.r.Close(ctx)
	})
	return b
}

// count is testenv.Postgres.Count on the test's schema.
func (b *bundle) count(sql string, args ...any) int { return b.pg.Count(sql, args...) }

// inTx counts the test's backends that are inside a transaction.
func (b *bundle) inTx() int {
	return b.count(`SELECT count(*) FROM pg_stat_activity
		WHERE application_name = $1 AND state LIKE 'idle in transaction%'`, b.app)
}

// kill terminates the test's backends that are inside a transaction.
func (b *bundle) kill() int {
	return b.count(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND state LIKE 'idle in transaction%'`, b.app)
}

// terminate ends the test's backends left inside a transaction, failing
// the test when there were some.
func (b *bundle) terminate(t *testing.T) {
	if n := b.kill(); n != 0 {
		t.Errorf("%d backends of the test were still in a transaction at its end: terminated (-1: could not tell)", n)
	}
}

func (b *bundle) checksum(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.pg.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var s string
	require.NoError(t, conn.QueryRow(ctx, "SELECT string_agg(id || '=' || bal, ',' ORDER BY id) FROM items").Scan(&s))
	return s
}

const owner = "_INBOX"

func (b *bundle) exec(ctx context.Context, id, sql string, timeoutMS int) error {
	req := &messages.ExecuteRequest{Op: messages.OpQuery, SQL: sql}
	if timeoutMS > 0 {
		req.TimeoutMS = &timeoutMS
	}
	_, err := b.r.Execute(ctx, id, owner, req, pgjson.Output{})
	return err
}

// TestRedTxEndBehindARunningStatementEndsTheTransaction: a commit or
// rollback that arrives, with a short deadline, while a statement of the
// same transaction runs. (It used to answer TIMEOUT after the registry had
// forgotten the entry, leaving the transaction open, row locks and all, on
// a connection nothing could reach.) A commit is refused at once (CONFLICT)
// and the transaction stays the caller's; a rollback interrupts the
// statement. Either way the transaction does not outlive its end: its
// locks are released and its connection returns to the pool.
func TestRedTxEndBehindARunningStatementEndsTheTransaction(t *testing.T) {
	t.Parallel()
	for _, commit := range []bool{false, true} {
		name := "rollback"
		if commit {
			name = "commit"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, 3, txn.Config{MaxOpen: 2, IdleTimeout: 30 * time.Second})
			ctx := context.Background()
			op := b.beginWrite(t)

			slow := make(chan error, 1)
			go func() { slow <- b.exec(ctx, op.ID, "SELECT pg_sleep(1.5)", 10000) }()
			require.Eventually(t, func() bool {
				return b.count(`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1
					AND state = 'active' AND query LIKE '%pg_sleep(1.5)%'`, b.app) == 1
			}, 5*time.Second, 20*time.Millisecond, "the slow statement never started")

			// The end, sent by the caller with a short deadline (a commit
			// with timeout_ms, a deferred rollback on a context about to end).
			endCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			endErr := b.r.End(endCtx, op.ID, owner, commit)
			cancel()
			t.Logf("%s answered: %v", name, endErr)
			slowErr := <-slow
			if commit {
				// A commit behind a running request is refused at once: the
				// transaction stays the caller's, and commits after.
				require.Equal(t, messages.CodeConflict, pgerr.AsError(endErr).Code, "%v", endErr)
				require.NoError(t, slowErr)
				require.NoError(t, b.r.End(ctx, op.ID, owner, true))
			} else {
				// A rollback interrupts the statement running.
				require.NoError(t, endErr)
				require.Error(t, slowErr)
			}

			// The transaction does not outlive its end: its connection back
			// in the pool, no backend of the test inside a transaction.
			require.Eventually(t, func() bool {
				return b.c.Pool().Stat().AcquiredConns() == 0 && b.inTx() == 0
			}, 5*time.Second, 50*time.Millisecond,
				"the transaction is still open after its %s answered %v: acquired conns %d, backends in a transaction %d",
				name, endErr, b.c.Pool().Stat().AcquiredConns(), b.inTx())
			want := "1=100,2=100,3=100"
			if commit {
				want = "1=0,2=100,3=100"
			}
			require.Equal(t, want, b.checksum(t))
		})
	}
}

// TestRedTxEndWithAnExpiredDeadlineEndsTheTransaction: the same end
// without any statement running, under a context already done. (End used
// to forget the entry and then wait for the transaction's turn under that
// context; the select picked the context's case about half of the time,
// and the Tx was never finished.) Twenty tries: each must leave no entry,
// no acquired connection and no backend inside a transaction.
func TestRedTxEndWithAnExpiredDeadlineEndsTheTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t, 4, txn.Config{MaxOpen: 4, IdleTimeout: 30 * time.Second})
	ctx := context.Background()
	for i := range 20 {
		op, err := b.r.Begin(ctx, txn.Begin{Owner: owner})
		require.NoError(t, err, "try %d", i)
		require.NoError(t, b.exec(ctx, op.ID, "UPDATE items SET bal = bal - 1 WHERE id = 2", 0))
		done, cancel := context.WithCancel(ctx)
		cancel()
		endErr := b.r.End(done, op.ID, owner, i%2 == 0)
		require.Equal(t, 0, b.r.Open(), "try %d", i)
		require.Zero(t, b.c.Pool().Stat().AcquiredConns(),
			"try %d: End answered %v and forgot the transaction, but its connection is still acquired (and the transaction open)", i, endErr)
		require.Zero(t, b.inTx(), "try %d: a backend is left inside the transaction", i)
	}
}

// TestRedTxBrokenConnectionFreesItsPlace: when the backend of a held
// transaction is terminated, the next request fails, commits nothing, and
// the entry goes with its connection: a begin succeeds at once under
// MaxOpen 1. (The entry used to stay until the idle timeout, counting
// against MaxOpen, so begins answered UNAVAILABLE.)
func TestRedTxBrokenConnectionFreesItsPlace(t *testing.T) {
	t.Parallel()
	b, op := setupKilledTx(t)
	ctx := context.Background()

	err := b.exec(ctx, op.ID, "SELECT 1", 0)
	require.Error(t, err)
	t.Logf("the request on the dead connection: %v", err)
	require.Equal(t, "1=100,2=100,3=100", b.checksum(t))
	require.Zero(t, b.c.Pool().Stat().AcquiredConns(), "the dead connection was not returned")

	// Its place is free again, without the caller having to ask once more.
	op2, err := b.r.Begin(ctx, txn.Begin{Owner: owner})
	require.NoError(t, err, "a begin after the only transaction died (open: %d)", b.r.Open())
	require.NoError(t, b.r.End(ctx, op2.ID, owner, false))
}

// TestRedTxBrokenConnectionFreesItsPlaceWhenAsked: a commit on a
// terminated backend fails, commits nothing, and frees the transaction's
// place; later requests answer TX_GONE.
func TestRedTxBrokenConnectionFreesItsPlaceWhenAsked(t *testing.T) {
	t.Parallel()
	b, op := setupKilledTx(t)
	ctx := context.Background()
	require.Error(t, b.r.End(ctx, op.ID, owner, true), "a commit on a terminated backend must not succeed")
	require.Equal(t, "1=100,2=100,3=100", b.checksum(t))
	require.Equal(t, messages.CodeTxGone, pgerr.AsError(b.exec(ctx, op.ID, "SELECT 1", 0)).Code)
	require.Equal(t, messages.CodeTxGone, pgerr.AsError(b.r.End(ctx, op.ID, owner, false)).Code)
	require.Zero(t, b.c.Pool().Stat().AcquiredConns())
	op2, err := b.r.Begin(ctx, txn.Begin{Owner: owner})
	require.NoError(t, err)
	require.NoError(t, b.r.End(ctx, op2.ID, owner, false))
}

// setupKilledTx opens the only transaction a registry allows (MaxOpen 1),
// writes in it, and terminates its backend.
func setupKilledTx(t *testing.T) (*bundle, txn.Opened) {
	t.Helper()
	b := setup(t, 2, txn.Config{MaxOpen: 1, IdleTimeout: 30 * time.Second})
	op := b.beginWrite(t)
	require.Equal(t, 1, b.kill())
	return b, op
}

// beginWrite begins a transaction and sets item 1's bal to 0 in it.
func (b *bundle) beginWrite(t *testing.T) txn.Opened {
	t.Helper()
	ctx := context.Background()
	op, err := b.r.Begin(ctx, txn.Begin{Owner: owner})
	require.NoError(t, err)
	require.NoError(t, b.exec(ctx, op.ID, "UPDATE items SET bal = 0 WHERE id = 1", 0))
	return op
}

// leaveState are statements that leave state on a connection beyond their
// transaction, if nothing resets it.
var leaveState = []string{
	"SELECT set_config('app.leak', 'yes', false)",
	"CREATE TEMP TABLE leak (x int)",
	"SELECT pg_advisory_lock(4243)",
	"DECLARE leak CURSOR WITH HOLD FOR SELECT 1",
	"LISTEN leak",
	"PREPARE leak AS SELECT 1",
	"SELECT setseed(0.5)",
	"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
	"SET SESSION AUTHORIZATION pg_monitor",
}

// TestRedTxExpiryLeavesNoSessionState: a transaction that ends without its
// caller (idle timeout, lifetime with a statement running, the registry's
// Close) leaves its connection as clean as a commit does: the next one-shot
// request on it (a pool of one) finds no setting, temporary table, advisory
// lock, cursor WITH HOLD, LISTEN, prepared statement, session default or
// session authorization of the transaction's, and random() is not seeded.
func TestRedTxExpiryLeavesNoSessionState(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, txn.Config{MaxOpen: 1, IdleTimeout: 30 * time.Second})
	ctx := context.Background()
	var login string
	var seeded float64
	{
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		conn, err := pgx.Connect(cctx, b.pg.URL)
		require.NoError(t, err)
		require.NoError(t, conn.QueryRow(cctx, "SELECT session_user").Scan(&login))
		_, err = conn.Exec(cctx, "SELECT setseed(0.5)")
		require.NoError(t, err)
		require.NoError(t, conn.QueryRow(cctx, "SELECT random()").Scan(&seeded))
		conn.Close(cctx)
		cancel()
	}
	var pid string // the backend the transaction ran on
	check := func(how string) {
		t.Helper()
		out, err := b.ex.Execute(ctx, &messages.ExecuteRequest{Op: messages.OpOne, SQL: `SELECT
			current_setting('app.leak', true) AS setting, to_regclass('pg_temp.leak') AS temp,
			(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS locks,
			(SELECT count(*) FROM pg_cursors WHERE name <> '') AS cursors, (SELECT count(*) FROM pg_listening_channels()) AS listening,
			(SELECT count(*) FROM pg_prepared_statements) AS prepared,
			current_setting('default_transaction_read_only') AS ro,
			session_user = $1 AND current_user = $1 AS who, random() <> $2 AS unseeded`,
			Params: []byte(`["` + login + `", ` + strconv.FormatFloat(seeded, 'g', -1, 64) + `]`)}, pgjson.Output{})
		require.NoError(t, err, how)
		same, err := b.ex.Execute(ctx, &messages.ExecuteRequest{Op: messages.OpOne, SQL: "SELECT pg_backend_pid() AS pid"}, pgjson.Output{})
		require.NoError(t, err)
		require.Contains(t, string(same), pid, "%s: the check ran on another connection than the transaction's", how)
		require.Contains(t, string(out), `"row":{"setting":"","temp":null,"locks":0,"cursors":0,"listening":0,"prepared":0,"ro":"off","who":true,"unseeded":true}`, how)
	}
	leave := func(id string) {
		t.Helper()
		out, err := b.r.Execute(ctx, id, owner, &messages.ExecuteRequest{Op: messages.OpOne, SQL: "SELECT pg_backend_pid() AS pid"}, pgjson.Output{})
		require.NoError(t, err)
		pid = string(out[strings.Index(string(out), `"row":`):])
		pid = pid[:strings.IndexByte(pid, '}')+1]
		for _, sql := range leaveState {
			require.NoError(t, b.exec(ctx, id, sql, 0), sql)
		}
	}

	op, err := b.r.Begin(ctx, txn.Begin{Owner: owner, IdleTimeout: 300 * time.Millisecond})
	require.NoError(t, err)
	leave(op.ID)
	require.Eventually(t, func() bool { return b.r.Open() == 0 }, 5*time.Second, 20*time.Millisecond)
	check("idle timeout")

	op, err = b.r.Begin(ctx, txn.Begin{Owner: owner, Lifetime: time.Second})
	require.NoError(t, err)
	leave(op.ID)
	start := time.Now()
	err = b.exec(ctx, op.ID, "SELECT pg_sleep(10)", 20000)
	require.Equal(t, messages.CodeTxGone, pgerr.AsError(err).Code, "%v", err)
	require.Less(t, time.Since(start), 5*time.Second)
	require.Eventually(t, func() bool { return b.r.Open() == 0 }, 5*time.Second, 20*time.Millisecond)
	check("lifetime")

	op, err = b.r.Begin(ctx, txn.Begin{Owner: owner})
	require.NoError(t, err)
	leave(op.ID)
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	require.Error(t, b.r.Close(cctx))
	cancel()
	require.Zero(t, b.r.Open())
	check("close")
	require.Zero(t, b.c.Pool().Stat().AcquiredConns())
}
