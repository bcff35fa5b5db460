package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// sleepers sends n db.execute requests that each sleep seconds in PostgreSQL,
// without waiting for their answers, and returns once running of them sleep
// in the database. The answers arrive on the returned subscription.
func (b *bundle) sleepers(n, running int, seconds float64) *nats.Subscription {
	t := b.t
	t.Helper()
	inbox := b.nc.NewRespInbox()
	replies, err := b.nc.SubscribeSync(inbox + ".*")
	require.NoError(t, err)
	t.Cleanup(func() { _ = replies.Unsubscribe() })
	marker := "sleeper_" + b.pg.Schema
	for i := 0; i < n; i++ {
		body := fmt.Sprintf(`{"sql":"SELECT pg_sleep(%g), '%s' AS marker"}`, seconds, marker)
		require.NoError(t, b.nc.PublishRequest(b.sub.Of(subjects.DBExecute), fmt.Sprintf("%s.%d", inbox, i), []byte(body)))
	}
	require.NoError(t, b.nc.Flush())
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, b.pg.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		var sleeping int
		require.NoError(c, conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE state = 'active' AND pid <> pg_backend_pid() AND query LIKE '%' || $1 || '%'`, marker).Scan(&sleeping))
		assert.Equal(c, running, sleeping)
	}, 10*time.Second, 10*time.Millisecond,
		"%d of %d requests sleeping in PostgreSQL", running, n)
	return replies
}

// answers reads n answers of sleepers, each of which must have succeeded.
func answers(t *testing.T, replies *nats.Subscription, n int, wait time.Duration) {
	t.Helper()
	for i := 0; i < n; i++ {
		msg, err := replies.NextMsg(wait)
		require.NoError(t, err, "answer %d of %d", i+1, n)
		require.Empty(t, msg.Header.Get("Nats-Service-Error-Code"), "%s", msg.Data)
	}
}

// timed runs a request and returns its answer and how long it took.
func (b *bundle) timed(subject, body string) (answer, time.Duration) {
	b.t.Helper()
	start := time.Now()
	a := b.request(subject, []byte(body))
	return a, time.Since(start)
}

// TestStateAndHealthDoNotWaitBehindDB fills the db lane, and the pool, with
// pg_sleep: state.kv and db.health still answer at once, and db.health says
// healthy and busy (issue 12: state.kv get took 17 s and db.health said
// unhealthy).
func TestStateAndHealthDoNotWaitBehindDB(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.maxConcurrent = 4; o.maxConns = 4 })
	b.ok(`{"op":"set","key":"k","value":1}`, subjects.StateKV)
	replies := b.sleepers(6, 4, 2) // four sleep, two wait for the lane

	a, took := b.timed(subjects.StateKV, `{"op":"get","key":"k"}`)
	require.Empty(t, a.status, "%s", a.body)
	require.Less(t, took, time.Second, "state.kv get waited behind the database")
	a, took = b.timed(subjects.StateRateLimit, `{"key":"r","limit":5,"window_ms":60000}`)
	require.Empty(t, a.status, "%s", a.body)
	require.Less(t, took, time.Second, "state.ratelimit waited behind the database")

	a, took = b.timed(subjects.DBHealth, "")
	require.Less(t, took, time.Second, "db.health waited behind the database")
	require.Empty(t, a.status, "%s", a.body)
	var h messages.HealthResult
	require.NoError(t, json.Unmarshal(a.body, &h))
	require.Equal(t, messages.HealthHealthy, h.Status, "a busy database is not an unhealthy one: %s", a.body)
	require.Equal(t, messages.HealthHealthy, h.Postgres.Status)
	require.EqualValues(t, 4, h.Postgres.Pool.Acquired, "the sleepers hold the whole pool")
	require.True(t, h.Worker.Busy)
	require.Equal(t, messages.LaneHealth{Running: 4, Max: 4, Queued: 2}, h.Worker.Lanes["db"])
	require.Equal(t, messages.LaneHealth{Running: 1, Max: HealthConcurrentDefault}, h.Worker.Lanes["health"])

	require.NoError(t, b.w.Ready(context.Background()), "a busy worker stays ready")
	answers(t, replies, 6, 10*time.Second)
}

// TestQueuedRequestTimesOutInTime: a request with a short timeout_ms queued
// behind a full db lane is answered TIMEOUT about when its timeout passes,
// not when the requests ahead of it finish (issue 12: with timeout_ms 25000,
// p99 was 50 s).
func TestQueuedRequestTimesOutInTime(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.maxConcurrent = 2 })
	b.ok(`{"op":"create_collection","collection":"docs"}`, subjects.DBVector)
	replies := b.sleepers(2, 2, 3)
	for _, tc := range []struct{ subject, body string }{
		{subjects.DBExecute, `{"sql":"SELECT 1","timeout_ms":300}`},
		{subjects.DBVector, `{"op":"search","collection":"docs","vector":[1,0,0],"timeout_ms":300}`},
	} {
		a, took := b.timed(tc.subject, tc.body)
		e := a.errorOf(t)
		require.Equal(t, "TIMEOUT", e["code"], "%s: %s", tc.body, a.body)
		require.Equal(t, json.Number("408"), e["status"])
		require.Contains(t, e["message"], "db lane")
		require.GreaterOrEqual(t, took, 250*time.Millisecond, tc.body)
		require.Less(t, took, 1500*time.Millisecond, "%s: answered long after its timeout", tc.body)
	}
	answers(t, replies, 2, 10*time.Second)
}

// TestTimeQueuedCountsTowardTimeout: a request's deadline starts when the
// worker receives it, so a request that waits 1.5 s for the lane and then
// needs 1 s does not fit a 2 s timeout.
func TestTimeQueuedCountsTowardTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.maxConcurrent = 1 })
	replies := b.sleepers(1, 1, 1.5)
	a, took := b.timed(subjects.DBExecute, `{"sql":"SELECT pg_sleep(1)","timeout_ms":2000}`)
	e := a.errorOf(t)
	require.Equal(t, "TIMEOUT", e["code"], "%s", a.body)
	require.Greater(t, took, 1800*time.Millisecond)
	require.Less(t, took, 2600*time.Millisecond, "the timeout counted only from the start of the run")
	answers(t, replies, 1, 5*time.Second)
}

// TestFullLaneAnswersBusy: with every slot taken and the queue full, a
// request is answered UNAVAILABLE at once; those admitted are answered.
func TestFullLaneAnswersBusy(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.maxConcurrent = 1; o.maxQueued = 1 })
	replies := b.sleepers(1, 1, 1.5)
	inbox := b.nc.NewRespInbox()
	more, err := b.nc.SubscribeSync(inbox + ".*")
	require.NoError(t, err)
	for i := 0; i < 2; i++ { // one waits for the lane, one finds the queue full
		require.NoError(t, b.nc.PublishRequest(b.sub.Of(subjects.DBExecute), fmt.Sprintf("%s.%d", inbox, i), []byte(`{"sql":"SELECT 1"}`)))
	}
	start := time.Now()
	msg, err := more.NextMsg(5 * time.Second)
	require.NoError(t, err)
	require.Less(t, time.Since(start), time.Second, "the refusal is immediate")
	require.Equal(t, "503", msg.Header.Get("Nats-Service-Error-Code"), "%s", msg.Data)
	var body messages.ErrorBody
	require.NoError(t, json.Unmarshal(msg.Data, &body))
	require.Equal(t, messages.CodeUnavailable, body.Error.Code)
	require.Contains(t, body.Error.Message, "busy")
	answers(t, replies, 1, 5*time.Second)
	answers(t, more, 1, 5*time.Second)
}

// TestLaneAdmit: slots first, then the queue by count and by bytes, one
// waiter always allowed whatever its size.
func TestLaneAdmit(t *testing.T) {
	t.Parallel()
	l := newLane("db", 1, 2, 100, true)
	queued, err := l.admit(1000)
	require.NoError(t, err)
	require.False(t, queued, "a free slot")
	queued, err = l.admit(1000)
	require.NoError(t, err)
	require.True(t, queued, "the first waiter, though over the byte limit")
	_, err = l.admit(10)
	require.ErrorIs(t, err, errLaneFull, "over the byte limit")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, l.wait(ctx, 1000), context.DeadlineExceeded)
	require.EqualValues(t, 0, l.queued.Load())
	require.EqualValues(t, 0, l.queuedBytes.Load())
	for range 2 {
		queued, err = l.admit(10)
		require.NoError(t, err)
		require.True(t, queued)
	}
	_, err = l.admit(10)
	require.ErrorIs(t, err, errLaneFull, "over the count")
	l.leave()
	require.NoError(t, l.wait(context.Background(), 10), "a freed slot goes to a waiter")
}

// TestMaintenanceDoesNotWaitForPool: with the pool full of pg_sleep, db.stats
// and a db.vacuum answer at once: their SQL runs on the maintenance
// connections, not the shared pool (red-team finding 9: db.stats took 23 s
// behind 330 pg_sleep(20), and with longer sleeps it failed UNAVAILABLE).
func TestMaintenanceDoesNotWaitForPool(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.maintenance = true; o.maxConcurrent = 6; o.maxConns = 3 })
	b.pg.Exec(t, "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100); DELETE FROM t WHERE id <= 10")
	b.ok(`{"table":"t"}`, subjects.DBStats) // the maintenance pool's connection is open
	replies := b.sleepers(3, 3, 3)          // three sleep on the whole pool

	for _, body := range []string{`{"table":"t"}`, `{}`, `{"table":"t","publish":false}`} {
		a, took := b.timed(subjects.DBStats, body)
		require.Empty(t, a.status, "%s: %s", body, a.body)
		require.Less(t, took, time.Second, "db.stats %s waited for the pool", body)
	}
	a, took := b.timed(subjects.DBVacuum, `{"table":"t"}`)
	require.Empty(t, a.status, "%s", a.body)
	require.Equal(t, "ok", a.json(t)["status"], "%s", a.body)
	require.Less(t, took, 2*time.Second, "db.vacuum waited for the pool")
	answers(t, replies, 3, 10*time.Second)
}
