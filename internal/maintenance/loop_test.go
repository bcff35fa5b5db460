package maintenance_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/metrics"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// TestStoredResultsCannotBecomeJobs: a push consumer on DB_VACUUM that
// delivers into db.vacuum.jobs (any account user with CONSUMER.CREATE could
// make one) feeds every stored result back as a job. The jobs consumer drops
// such messages without storing anything, so the loop stops after one turn
// instead of filling DB_VACUUM forever.
func TestStoredResultsCannotBecomeJobs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reg := metrics.New()
	s := e.worker(t, "w1", func(c *maintenance.Config) { c.Metrics = reg })
	e.pg.Exec(t, "CREATE TABLE t (x int)")
	ctx := context.Background()
	for _, c := range []struct{ stream, deliver string }{
		{maintenance.StreamVacuum, "db.vacuum.jobs"},
		{maintenance.StreamStats, "db.stats.jobs"},
	} {
		_, err := e.js.CreateOrUpdateConsumer(ctx, c.stream, jetstream.ConsumerConfig{
			Durable: "loop", DeliverSubject: c.deliver, AckPolicy: jetstream.AckNonePolicy, DeliverPolicy: jetstream.DeliverAllPolicy})
		require.NoError(t, err)
	}
	_, err := s.Vacuum(ctx, &messages.VacuumRequest{Table: "t"})
	require.NoError(t, err)
	_, err = s.Stats(ctx, &messages.StatsRequest{Table: "t"})
	require.NoError(t, err)

	jobs, err := e.js.Stream(ctx, maintenance.StreamJobs)
	require.NoError(t, err)
	count := func(name string) uint64 {
		st, err := e.js.Stream(ctx, name)
		require.NoError(t, err)
		return st.CachedInfo().State.LastSeq
	}
	// Both stored results came back as jobs, and were taken.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		info, err := jobs.Info(ctx)
		require.NoError(c, err)
		assert.GreaterOrEqual(c, info.State.LastSeq, uint64(2))
		assert.Zero(c, info.State.Msgs)
	}, 10*time.Second, 20*time.Millisecond)
	vac, stats := count(maintenance.StreamVacuum), count(maintenance.StreamStats)
	time.Sleep(time.Second) // a running loop adds hundreds of messages a second
	require.Equal(t, vac, count(maintenance.StreamVacuum), "no result was stored for a result fed back as a job")
	require.Equal(t, stats, count(maintenance.StreamStats))
	require.EqualValues(t, 1, vac)
	require.EqualValues(t, 1, stats)
	require.Equal(t, 2.0, metricValue(t, reg, "dbworker_jobs_dropped_total", nil), "each dropped message is counted")
}
