package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/txn"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/memory"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Red-team tests of db.tx over the wire. The worker is built here rather
// than by setup: its pool carries an application_name of the test's own, so
// that a transaction the worker leaked can be found and terminated, and its
// Close is given a while only (pgxpool's Close waits forever for a leaked
// connection).

type redTx struct {
	t   *testing.T
	pg  *testenv.Postgres
	ns  *server.Server
	nc  *nats.Conn
	app string
	cl  *pgexec.Client
	w   *Worker
}

func redTxSetup(t *testing.T, maxConns int32, tx txn.Config, logger ...zerolog.Logger) *redTx {
	t.Helper()
	b := &redTx{t: t, pg: testenv.NewPostgres(t), ns: testenv.NewNATS(t), app: "redtx_" + strings.ToLower(nuid.Next())}
	b.pg.Exec(t, `CREATE TABLE items (id int PRIMARY KEY, bal int NOT NULL);
		INSERT INTO items VALUES (1, 100), (2, 100), (3, 100)`)
	b.nc = testenv.Connect(t, b.ns)
	log := zerolog.Nop()
	if len(logger) > 0 {
		log = logger[0]
	}
	var err error
	b.cl, b.w, err = b.startWorker("w1", maxConns, tx, log)
	require.NoError(t, err)
	return b
}

// startWorker starts a worker over the test's database and NATS server.
func (b *redTx) startWorker(id string, maxConns int32, tx txn.Config, log zerolog.Logger) (*pgexec.Client, *Worker, error) {
	t := b.t
	t.Helper()
	ctx := context.Background()
	cl, err := pgexec.Connect(ctx, pgexec.Config{DSN: b.pg.URL, MaxConns: maxConns, AcquireTimeout: 2 * time.Second, ApplicationName: b.app})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(func() {
		if n := b.count(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1 AND state LIKE 'idle in transaction%'`, b.app); n != 0 {
			t.Errorf("%d backends of the worker were still in a transaction after it stopped: terminated (-1: could not tell)", n)
		}
		closed := make(chan struct{})
		go func() {
			cl.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(3 * time.Second):
			t.Errorf("the pool's Close hangs after the worker stopped: %d connections are still acquired", cl.Pool().Stat().AcquiredConns())
		}
	})
	wnc := testenv.Connect(t, b.ns)
	ex, err := pgexec.NewExecutor(cl, pgexec.ExecutorConfig{DefaultTimeout: 10 * time.Second, MaxTimeout: time.Minute})
	require.NoError(t, err)
	mem := memory.New(memory.Options{})
	t.Cleanup(func() { mem.Close() })
	sub, _ := subjects.New("")
	svc, err := state.NewService(mem, state.ServiceConfig{})
	require.NoError(t, err)
	w, err := New(Config{ID: id, Subjects: sub, Logger: log, DrainTimeout: 3 * time.Second,
		DefaultTimeout: 10 * time.Second, MaxTimeout: time.Minute, Tx: tx},
		Deps{NATS: wnc, Postgres: cl, Executor: ex, State: svc})
	require.NoError(t, err)
	if err := w.Start(ctx); err != nil {
		return cl, nil, err
	}
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	return cl, w, nil
}

// count is testenv.Postgres.Count on the test's schema.
func (b *redTx) count(sql string, args ...any) int { return b.pg.Count(sql, args...) }

func (b *redTx) checksum() string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.pg.URL)
	require.NoError(b.t, err)
	defer conn.Close(ctx)
	var s string
	require.NoError(b.t, conn.QueryRow(ctx, "SELECT string_agg(id || '=' || bal, ',' ORDER BY id) FROM items").Scan(&s))
	return s
}

// ask sends body to subject on nc and returns the answer; a failure to get
// one is returned, not fatal, for goroutines.
func ask(nc *nats.Conn, subject, body string, timeout time.Duration) (answer, error) {
	msg, err := nc.Request(subject, []byte(body), timeout)
	if err != nil {
		return answer{}, err
	}
	return answer{status: msg.Header.Get("Nats-Service-Error-Code"), body: msg.Data}, nil
}

func (b *redTx) must(nc *nats.Conn, subject, body string) answer {
	b.t.Helper()
	a, err := ask(nc, subject, body, 15*time.Second)
	require.NoError(b.t, err, "%s %s", subject, body)
	return a
}

// begin opens a transaction as nc and returns its subject.
func (b *redTx) begin(nc *nats.Conn, body string) string {
	b.t.Helper()
	a := b.must(nc, subjects.DBTx, body)
	require.Empty(b.t, a.status, "begin: %s", a.body)
	var res messages.TxBeginResult
	require.NoError(b.t, json.Unmarshal(a.body, &res))
	return res.Subject
}

func (a answer) code(t *testing.T) string {
	t.Helper()
	if a.status == "" {
		return ""
	}
	return a.errorOf(t)["code"].(string)
}

// TestRedTxRollbackBehindASlowStatementLeaksTheTransaction: a caller runs
// a slow statement in its transaction and, from another goroutine (or after
// giving up on it), rolls back with a deadline shorter than what is left of
// the statement (the worker's DB default timeout, when the rollback names
// none). The rollback answers TIMEOUT ("busy"), and the registry has already
// forgotten the transaction while the pgexec.Tx was never finished: its
// connection stays acquired, PostgreSQL keeps the transaction open with its
// row locks, and neither the idle timeout, the lifetime nor the drain ever
// reach it. DB_TX_MAX_OPEN no longer counts it, so the caller may do it
// again until the pool is empty; the worker's shutdown then hangs in the
// pool's Close (this test gives it three seconds).
//
// Should: whatever the rollback answers, the transaction is rolled back once
// the statement ends, its locks released and its connection back in the pool.
func TestRedTxRollbackBehindASlowStatementLeaksTheTransaction(t *testing.T) {
	t.Parallel()
	b := redTxSetup(t, 8, txn.Config{MaxOpen: 2, IdleTimeout: 30 * time.Second})
	subject := b.begin(b.nc, `{}`)
	a := b.must(b.nc, subject, `{"sql":"UPDATE items SET bal = 0 WHERE id = 2"}`)
	require.Empty(t, a.status, "%s", a.body)
	slow := make(chan error, 1)
	go func() {
		_, err := ask(b.nc, subject, `{"sql":"SELECT pg_sleep(1.5)","timeout_ms":10000}`, 15*time.Second)
		slow <- err
	}()
	require.Eventually(t, func() bool {
		return b.count(`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'
			AND query LIKE '%pg_sleep(1.5)%'`, b.app) == 1
	}, 5*time.Second, 20*time.Millisecond)
	end := b.must(b.nc, subject, `{"op":"rollback","timeout_ms":300}`)
	t.Logf("the rollback answered %s %s", end.status, end.body)
	require.NoError(t, <-slow)

	require.Eventually(t, func() bool { return b.cl.Pool().Stat().AcquiredConns() == 0 }, 5*time.Second, 20*time.Millisecond,
		"the rollback answered %s %s, and the transaction's connection is still acquired (%d backends in a transaction)",
		end.status, end.body, b.count(`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state LIKE 'idle in transaction%'`, b.app))
	// The row the transaction updated is free for others.
	a = b.must(b.nc, subjects.DBExecute, `{"sql":"UPDATE items SET bal = 50 WHERE id = 2","timeout_ms":2000}`)
	require.Empty(t, a.status, "another caller's update of the row: %s", a.body)
	require.Equal(t, "1=100,2=50,3=100", b.checksum())
}

// TestRedTxOneTransactionStarvesTheOthers: the tx lane has DB_TX_MAX_OPEN
// slots, and a request waiting for its transaction's turn holds one. One
// caller that sends a few requests at once to its own transaction (pkg/client's
// Tx is "safe for concurrent use") fills the lane: every other caller's
// requests, commits and begins wait in the lane's queue behind them, while
// their idle timers run. Here another caller's commit waits some six
// seconds, by which time its transaction has idled out: TX_GONE, its work
// lost.
//
// Should: a transaction's own queue does not take the lane from the others;
// the other caller's commit is answered at once and commits.
func TestRedTxOneTransactionStarvesTheOthers(t *testing.T) {
	t.Parallel()
	b := redTxSetup(t, 8, txn.Config{MaxOpen: 2, IdleTimeout: 30 * time.Second})
	victim := b.begin(b.nc, `{"idle_timeout_ms":3000}`)
	a := b.must(b.nc, victim, `{"sql":"UPDATE items SET bal = 101 WHERE id = 1"}`)
	require.Empty(t, a.status, "%s", a.body)

	greedy := b.begin(b.nc, `{}`)
	const n = 4
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = ask(b.nc, greedy, `{"sql":"SELECT pg_sleep(2)","timeout_ms":20000}`, 30*time.Second)
		}()
	}
	t.Cleanup(wg.Wait)
	lane := b.w.lanes[laneTx]
	// One of the greedy requests runs; the others are refused at once
	// (CONFLICT: one request at a time), so none holds a slot waiting.
	require.Eventually(t, func() bool { h := lane.health(); return h.Running == 1 && h.Queued == 0 }, 5*time.Second, 10*time.Millisecond)

	start := time.Now()
	end := b.must(b.nc, victim, `{"op":"commit"}`)
	took := time.Since(start)
	require.Empty(t, end.status, "the victim's commit, answered after %s: %s", took, end.body)
	require.Less(t, took, 1500*time.Millisecond, "the victim's commit waited behind another caller's requests")
	require.Equal(t, "1=101,2=100,3=100", b.checksum())
}

// TestRedTxStrangersGetNothing: what holds. Another owner (the default inbox,
// or an inbox prefix that only starts like the owner's), a guessed id, a
// wildcard subject, a request without a reply: each is answered TX_GONE or
// not at all, runs nothing in the transaction and ends nothing; a begin
// without a reply opens nothing. The owner then commits exactly its own work.
func TestRedTxStrangersGetNothing(t *testing.T) {
	t.Parallel()
	b := redTxSetup(t, 8, txn.Config{MaxOpen: 4, IdleTimeout: 30 * time.Second})
	alice, err := nats.Connect(b.ns.ClientURL(), nats.CustomInboxPrefix("_INBOX_alice"))
	require.NoError(t, err)
	t.Cleanup(alice.Close)
	lookalike, err := nats.Connect(b.ns.ClientURL(), nats.CustomInboxPrefix("_INBOX_alicex"))
	require.NoError(t, err)
	t.Cleanup(lookalike.Close)

	subject := b.begin(alice, `{}`)
	a := b.must(alice, subject, `{"sql":"UPDATE items SET bal = 0 WHERE id = 1"}`)
	require.Empty(t, a.status, "%s", a.body)
	id := subject[strings.LastIndexByte(subject, '.')+1:]
	prefix := strings.TrimSuffix(subject, id)

	for _, who := range []*nats.Conn{b.nc, lookalike} {
		for _, body := range []string{
			`{"sql":"UPDATE items SET bal = -1 WHERE id = 3"}`,
			`{"op":"update","table":"items","data":{"bal":-1},"where":"id = 3"}`,
			`{"op":"commit"}`,
			`{"op":"rollback"}`,
		} {
			a := b.must(who, subject, body)
			require.Equal(t, string(messages.CodeTxGone), a.code(t), "%s", a.body)
		}
	}
	// A guessed id, an id in another case, a wildcard token.
	for _, s := range []string{prefix + strings.Repeat("0", 32), prefix + strings.ToUpper(id), prefix + "*", prefix + id + ".x"} {
		a, err := ask(b.nc, s, `{"op":"rollback"}`, time.Second)
		if err == nil {
			require.Equal(t, string(messages.CodeTxGone), a.code(t), "%s: %s", s, a.body)
		}
	}
	// No reply: nothing runs, nothing ends.
	require.NoError(t, alice.Publish(subject, []byte(`{"sql":"UPDATE items SET bal = -1 WHERE id = 3"}`)))
	require.NoError(t, alice.Publish(subject, []byte(`{"op":"rollback"}`)))
	require.NoError(t, b.nc.Publish(subjects.DBTx, []byte(`{}`)))
	require.NoError(t, alice.Publish(subjects.DBTx, []byte(`{"op":"begin"}`)))
	require.NoError(t, alice.Flush())
	require.NoError(t, b.nc.Flush())
	require.Never(t, func() bool { return b.w.txs.Open() != 1 }, 500*time.Millisecond, 20*time.Millisecond, "a begin without a reply opened a transaction")

	a = b.must(alice, subject, `{"sql":"SELECT bal FROM items WHERE id = 3","op":"one"}`)
	require.Empty(t, a.status, "%s", a.body)
	require.Contains(t, string(a.body), `"bal":100`)
	a = b.must(alice, subject, `{"op":"commit"}`)
	require.Empty(t, a.status, "%s", a.body)
	require.Equal(t, "1=0,2=100,3=100", b.checksum())
	require.Eventually(t, func() bool { return b.cl.Pool().Stat().AcquiredConns() == 0 }, 2*time.Second, 10*time.Millisecond)
}

// TestRedTxLogsDoNotHoldTheSecret: the transaction id is the secret that
// reaches a transaction ("like a lock's lease"), and the begin's log line
// keeps only its first 8 characters. But every failed request is logged
// at warn with its subject, db.tx.<worker>.<full id> (a statement error, a
// TX_ABORTED: the everyday case), so whoever reads the worker's logs can
// reach the live transaction (the owner check is the reply subject's first
// token, which a publisher chooses, and "_INBOX" for every default caller).
//
// Should: the logs name a transaction by a prefix of its id, as begin does.
func TestRedTxLogsDoNotHoldTheSecret(t *testing.T) {
	t.Parallel()
	logs := &testenv.SyncBuffer{}
	b := redTxSetup(t, 8, txn.Config{MaxOpen: 2, IdleTimeout: 30 * time.Second}, zerolog.New(logs).Level(zerolog.InfoLevel))
	subject := b.begin(b.nc, `{}`)
	id := subject[strings.LastIndexByte(subject, '.')+1:]
	a := b.must(b.nc, subject, `{"sql":"SELECT 1/0"}`)
	require.NotEmpty(t, a.status)
	a = b.must(b.nc, subject, `{"sql":"SELECT 1"}`)
	require.Equal(t, string(messages.CodeTxAborted), a.code(t))
	require.Eventually(t, func() bool { return strings.Count(logs.String(), "request failed") >= 2 }, 2*time.Second, 10*time.Millisecond)
	require.NotContains(t, logs.String(), id, "the worker's logs hold the live transaction's full id")
	a = b.must(b.nc, subject, `{"op":"rollback"}`)
	require.Empty(t, a.status, "%s", a.body)
}

// TestRedTxTwoWorkersWithOneID: WORKER_ID defaults to hostname-pid, which
// two containers share when they run on the host's network (pid 1 in each),
// and an operator may set it alike in a template with replicas. Before
// transactions that only blurred the logs. Now both workers subscribe to
// db.tx.<id>.* (a plain subscription, not a queue group), so every request
// to a transaction reaches both: the one that does not hold it answers
// TX_GONE at once, and the caller takes that first answer, while the one
// that holds it runs the statement, or commits. The caller is told its
// write and its commit are gone (pkg/client: ErrTxGone, "nothing of it is
// committed") when they are done: the row below is committed.
//
// Should: the second worker refuses to start (or its transactions' subjects
// are its own); otherwise every answer is the holder's.
func TestRedTxTwoWorkersWithOneID(t *testing.T) {
	t.Parallel()
	b := redTxSetup(t, 8, txn.Config{MaxOpen: 2, IdleTimeout: 30 * time.Second})
	if _, _, err := b.startWorker("w1", 8, txn.Config{MaxOpen: 2, IdleTimeout: 30 * time.Second}, zerolog.Nop()); err != nil {
		t.Logf("the second worker with id w1 refused to start: %v", err)
		return
	}
	committed := 100
	for i := range 4 {
		subject := b.begin(b.nc, `{}`)
		update := b.must(b.nc, subject, `{"sql":"UPDATE items SET bal = bal + 1 WHERE id = 1"}`)
		commit := b.must(b.nc, subject, `{"op":"commit"}`)
		if commit.status == "" {
			committed++
		}
		// Let the holder finish whatever it was still doing.
		require.Eventually(t, func() bool { return b.cl.Pool().Stat().AcquiredConns() == 0 }, 5*time.Second, 10*time.Millisecond)
		got := b.checksum()
		require.Equal(t, fmt.Sprintf("1=%d,2=100,3=100", committed), got,
			"try %d: the update was answered %s %s, the commit %s %s, and the rows are %s", i, update.status, update.body, commit.status, commit.body, got)
		require.Empty(t, update.status, "try %d: the update was answered %s", i, update.body)
		require.Empty(t, commit.status, "try %d: the commit was answered %s", i, commit.body)
	}
}
