package maintenance_test

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/memory"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

func TestMain(m *testing.M) { testenv.VerifyNoLeaks(m) }

type env struct {
	pg    *testenv.Postgres
	ns    *server.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	state state.Backend
}

func newEnv(t *testing.T) *env {
	e := &env{pg: testenv.NewPostgres(t), ns: testenv.NewNATS(t)}
	e.nc = testenv.Connect(t, e.ns)
	var err error
	e.js, err = jetstream.New(e.nc)
	require.NoError(t, err)
	mem := memory.New(memory.Options{})
	t.Cleanup(func() { mem.Close() })
	e.state = mem
	return e
}

// worker starts one maintenance service, as one worker of the pool would,
// with the test signals given (slow, to make runs last).
func (e *env) worker(t *testing.T, id string, tune func(*maintenance.Config), slow ...maintenance.TestSignals) *maintenance.Service {
	t.Helper()
	ctx := context.Background()
	pg, err := pgexec.Connect(ctx, pgexec.Config{DSN: e.pg.URL, MaxConns: 4})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(pg.Close)
	nc := testenv.Connect(t, e.ns)
	cfg := maintenance.Config{WorkerID: id, Schemas: []string{e.pg.Schema}, LockTTL: 3 * time.Second, AckWait: 3 * time.Second, ProgressInterval: 100 * time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	s, err := maintenance.New(cfg, nc, pg, e.state)
	require.NoError(t, err)
	for _, ts := range slow {
		s.TestSignals = ts
	}
	require.NoError(t, s.Start(ctx))
	t.Cleanup(func() { require.NoError(t, s.Stop(context.Background())) })
	return s
}

// results reads every message stored on a stream's subject filter.
func (e *env) results(t testenv.T, stream, filter string) []messages.VacuumResult {
	t.Helper()
	ctx := context.Background()
	cons, err := e.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	require.NoError(t, err)
	info, err := e.js.Stream(ctx, stream)
	require.NoError(t, err)
	var out []messages.VacuumResult
	if info.CachedInfo().State.Msgs == 0 {
		return out
	}
	for {
		batch, err := cons.FetchNoWait(100)
		require.NoError(t, err)
		n := 0
		for msg := range batch.Messages() {
			n++
			var r messages.VacuumResult
			require.NoError(t, json.Unmarshal(msg.Data(), &r))
			out = append(out, r)
		}
		if n == 0 {
			return out
		}
	}
}

func TestStatsMatchCatalog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.worker(t, "w1", nil)
	e.pg.Exec(t, `CREATE TABLE users (id int PRIMARY KEY, pad text);
		INSERT INTO users SELECT g, repeat('x', 3000) FROM generate_series(1, 500) g;
		DELETE FROM users WHERE id <= 100;
		CREATE TABLE small (x int)`)
	ctx := context.Background()
	res, err := s.Stats(ctx, &messages.StatsRequest{})
	require.NoError(t, err)
	require.Len(t, res.Tables, 2)
	require.Equal(t, "users", res.Tables[0].Table, "largest first")
	u := res.Tables[0]

	conn, err := pgx.Connect(ctx, e.pg.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var total, indexes, toast, live, dead int64
	require.NoError(t, conn.QueryRow(ctx, `SELECT pg_total_relation_size(c.oid), pg_indexes_size(c.oid),
		COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0), s.n_live_tup, s.n_dead_tup
		FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = 'users'::regclass`).Scan(&total, &indexes, &toast, &live, &dead))
	require.Equal(t, total, u.TotalBytes)
	require.Equal(t, indexes, u.IndexesBytes)
	require.Equal(t, toast, u.ToastBytes)
	require.Equal(t, total, u.TableBytes+u.IndexesBytes+u.ToastBytes, "the parts add up")
	require.Equal(t, live, u.RowCount)
	require.Equal(t, dead, u.DeadRows)
	require.EqualValues(t, 400, u.RowCount)
	require.EqualValues(t, 100, u.DeadRows)
	require.InDelta(t, 0.2, u.DeadRatio, 0.0001)
	require.NotEmpty(t, u.TotalSize)
	require.Positive(t, res.Database.SizeBytes)

	// Stored in DB_STATS, one message per table.
	msg, err := e.js.Stream(ctx, maintenance.StreamStats)
	require.NoError(t, err)
	raw, err := msg.GetLastMsgForSubject(ctx, subjects.Subjects{}.StatsResults(e.pg.Schema, "users"))
	require.NoError(t, err)
	var rec messages.StatsRecord
	require.NoError(t, json.Unmarshal(raw.Data, &rec))
	require.Equal(t, res.RunID, rec.RunID)
	require.Equal(t, u.TotalBytes, rec.TotalBytes)

	one, err := s.Stats(ctx, &messages.StatsRequest{Table: e.pg.Schema + ".small"})
	require.NoError(t, err)
	require.Len(t, one.Tables, 1)
	_, err = s.Stats(ctx, &messages.StatsRequest{Table: "nope"})
	requireCode(t, err, messages.CodeNotFound)
	_, err = s.Stats(ctx, &messages.StatsRequest{Schema: "no_such_schema"})
	requireCode(t, err, messages.CodeNotFound)
}

func requireCode(t *testing.T, err error, code messages.Code) {
	t.Helper()
	var me *messages.Error
	require.True(t, errors.As(err, &me), "want %s, got %v", code, err)
	require.Equal(t, code, me.Code, "%v", err)
}

// TestIdentifiersAreNeverPasted: names with quotes, dots and spaces are found
// in the catalog and quoted.
func TestIdentifiersAreNeverPasted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.worker(t, "w1", nil)
	e.pg.Exec(t, `CREATE TABLE "we""ird.na me" (x int); INSERT INTO "we""ird.na me" VALUES (1)`)
	ctx := context.Background()
	res, err := s.Vacuum(ctx, &messages.VacuumRequest{Schema: e.pg.Schema, Table: `we"ird.na me`})
	require.NoError(t, err)
	require.Equal(t, messages.StatusOK, res.(*messages.VacuumResult).Status)
	st, err := s.Stats(ctx, &messages.StatsRequest{Schema: e.pg.Schema, Table: `we"ird.na me`})
	require.NoError(t, err)
	require.Equal(t, `we"ird.na me`, st.Tables[0].Table)
	stored := e.results(t, maintenance.StreamVacuum, "db.vacuum.results.>")
	require.Len(t, stored, 1)
	for _, bad := range []string{`x"; DROP TABLE users; --`, "users; VACUUM FULL", "a.b.c"} {
		_, err := s.Vacuum(ctx, &messages.VacuumRequest{Table: bad})
		require.Error(t, err, bad)
	}
	_, err = s.Vacuum(ctx, &messages.VacuumRequest{Table: "nope"})
	requireCode(t, err, messages.CodeNotFound)
	_, err = s.Vacuum(ctx, &messages.VacuumRequest{Table: `we"ird.na me`, Schema: e.pg.Schema, Full: true})
	requireCode(t, err, messages.CodeForbidden)
}

// TestOneRunPerTarget: three workers, one table, ten concurrent requests and
// jobs: VACUUM runs one at a time, the rest are LOCKED or skipped, and every
// run has exactly one result.
func TestOneRunPerTarget(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	slow := maintenance.TestSignals{BeforeVacuumSQL: "SELECT pg_sleep(0.3)"}
	workers := []*maintenance.Service{e.worker(t, "w1", nil, slow), e.worker(t, "w2", nil, slow), e.worker(t, "w3", nil, slow)}
	e.pg.Exec(t, "CREATE TABLE busy (x int); INSERT INTO busy SELECT generate_series(1, 1000)")
	ctx := context.Background()
	const requests, jobs = 5, 5
	var wg sync.WaitGroup
	var mu sync.Mutex
	locked, ran := 0, 0
	for i := 0; i < requests; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := workers[i%3].Vacuum(ctx, &messages.VacuumRequest{Table: "busy"})
			mu.Lock()
			defer mu.Unlock()
			var me *messages.Error
			if errors.As(err, &me) && me.Code == messages.CodeLocked {
				locked++
				return
			}
			if assert.NoError(t, err) && assert.Equal(t, messages.StatusOK, res.(*messages.VacuumResult).Status) {
				ran++
			}
		}()
	}
	for i := 0; i < jobs; i++ {
		_, err := workers[0].Enqueue(ctx, subjects.DBVacuumJobs, &messages.VacuumRequest{Table: "busy"})
		require.NoError(t, err)
	}
	wg.Wait()
	require.Equal(t, requests, locked+ran)
	// Every job settles: the queue empties.
	require.Eventually(t, func() bool {
		info, err := e.js.Stream(ctx, maintenance.StreamJobs)
		return err == nil && info.CachedInfo().State.Msgs == 0
	}, 20*time.Second, 50*time.Millisecond)
	stored := e.results(t, maintenance.StreamVacuum, subjects.Subjects{}.VacuumResults(e.pg.Schema, "busy"))
	var ok []messages.VacuumResult
	jobResults := map[string]int{}
	for _, r := range stored {
		if r.JobID != "" {
			jobResults[r.JobID]++
		}
		switch r.Status {
		case messages.StatusOK:
			ok = append(ok, r)
		case messages.StatusSkipped:
			require.NotEmpty(t, r.Holder)
		default:
			t.Fatalf("unexpected result %+v", r)
		}
	}
	require.Len(t, jobResults, jobs, "every job has a result")
	for id, n := range jobResults {
		require.Equal(t, 1, n, "job %s has exactly one result", id)
	}
	require.Equal(t, ran+jobs, len(stored), "a result per run: the requests that ran and every job")
	t.Logf("requests: %d ran, %d LOCKED; results: %d ok, %d skipped", ran, locked, len(ok), len(stored)-len(ok))
	// The runs that happened never overlapped.
	sort.Slice(ok, func(i, j int) bool { return ok[i].StartedAt.Before(ok[j].StartedAt) })
	for i := 1; i < len(ok); i++ {
		require.False(t, ok[i].StartedAt.Before(ok[i-1].FinishedAt), "runs %s and %s overlap", ok[i-1].RunID, ok[i].RunID)
	}
}

// TestInvalidJobIsTerminated: a job that can never succeed is not
// redelivered forever: one naming a missing table leaves a failed result; a
// body that is no job at all is dropped without one (no stored result can
// feed the jobs stream).
func TestInvalidJobIsTerminated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.worker(t, "w1", nil)
	ctx := context.Background()
	_, err := e.js.Publish(ctx, subjects.DBVacuumJobs, []byte(`{"table":`))
	require.NoError(t, err)
	// Read as strictly as a request: data after the job is no job either.
	_, err = e.js.Publish(ctx, subjects.DBVacuumJobs, []byte(`{"table":"missing_table"} {}`))
	require.NoError(t, err)
	_, err = e.js.Publish(ctx, subjects.DBStatsJobs, []byte(`{"run_id":"x","tables":[]}`))
	require.NoError(t, err)
	_, err = e.js.Publish(ctx, subjects.DBVacuumJobs, []byte(`{"table":"missing_table"}`))
	require.NoError(t, err)
	_, err = e.js.Publish(ctx, subjects.DBVacuumJobs, []byte(`{"table":"nowhere.missing_table"}`))
	require.NoError(t, err)
	_, err = e.js.Publish(ctx, subjects.DBStatsJobs, []byte(`{"table":"missing_stats"}`))
	require.NoError(t, err)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		info, err := e.js.Stream(ctx, maintenance.StreamJobs)
		require.NoError(c, err)
		assert.Zero(c, info.CachedInfo().State.Msgs)
	}, 10*time.Second, 50*time.Millisecond, "terminated jobs leave the work queue")
	// Bodies that are no job are dropped, storing nothing; jobs that can never
	// succeed are recorded failed.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Len(c, e.results(c, maintenance.StreamVacuum, "db.vacuum.results.>"), 2)
		assert.Len(c, e.results(c, maintenance.StreamStats, "db.stats.results.>"), 1)
	}, 10*time.Second, 50*time.Millisecond)
	for _, r := range e.results(t, maintenance.StreamVacuum, "db.vacuum.results.>") {
		require.Equal(t, messages.StatusFailed, r.Status)
		require.NotNil(t, r.Error)
		require.Contains(t, r.Error.Message, "missing_table")
	}
	// Each failed result is filed under the target its job named (what
	// `publisher history vacuum --table T` reads).
	require.Empty(t, e.results(t, maintenance.StreamVacuum, "db.vacuum.results._database"))
	bare := e.results(t, maintenance.StreamVacuum, "db.vacuum.results.*.missing_table")
	require.Len(t, bare, 2)
	named := e.results(t, maintenance.StreamVacuum, "db.vacuum.results.nowhere.missing_table")
	require.Len(t, named, 1)
	require.Equal(t, messages.CodeNotFound, named[0].Error.Code)
	require.Equal(t, "nowhere", named[0].Schema)
	require.Len(t, e.results(t, maintenance.StreamStats, "db.stats.results.*.missing_stats"), 1)
	stats, err := e.js.Stream(ctx, maintenance.StreamStats)
	require.NoError(t, err)
	require.EqualValues(t, 1, stats.CachedInfo().State.Msgs, "nothing stored for a body that is no job")
}

// TestProgressEvents: a running VACUUM reports its progress on
// db.vacuum.progress.<run_id>, ending with done.
func TestProgressEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.worker(t, "w1", nil, maintenance.TestSignals{BeforeVacuumSQL: "SELECT pg_sleep(0.5)"})
	e.pg.Exec(t, "CREATE TABLE p (x int); INSERT INTO p SELECT generate_series(1, 100)")
	events, err := e.nc.SubscribeSync("db.vacuum.progress.*")
	require.NoError(t, err)
	require.NoError(t, e.nc.Flush())
	res, err := s.Vacuum(context.Background(), &messages.VacuumRequest{Table: "p"})
	require.NoError(t, err)
	runID := res.(*messages.VacuumResult).RunID
	var last messages.VacuumProgress
	n := 0
	for !last.Done {
		msg, err := events.NextMsg(5 * time.Second)
		require.NoError(t, err)
		require.Equal(t, "db.vacuum.progress."+runID, msg.Subject)
		require.NoError(t, json.Unmarshal(msg.Data, &last))
		n++
	}
	require.GreaterOrEqual(t, n, 3, "events while the run lasted, then done")
}

func TestAsyncVacuumQueuesAJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.worker(t, "w1", nil)
	e.pg.Exec(t, "CREATE TABLE q (x int)")
	ctx := context.Background()
	acc, err := s.Vacuum(ctx, &messages.VacuumRequest{Table: "q", Async: true})
	require.NoError(t, err)
	job := acc.(*messages.JobAccepted)
	require.Equal(t, maintenance.StreamJobs, job.Stream)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		status := ""
		for _, r := range e.results(c, maintenance.StreamVacuum, "db.vacuum.results.>") {
			if r.JobID == job.JobID {
				status = r.Status
				break
			}
		}
		assert.Equal(c, messages.StatusOK, status, "the job's result")
	}, 10*time.Second, 50*time.Millisecond)
}
