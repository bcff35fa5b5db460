package maintenance_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/metrics"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// failingLocks is a state backend whose next fail lock acquires fail, as a
// Redis that went away would.
type failingLocks struct {
	state.Backend
	fail atomic.Int32
}

func (f *failingLocks) AcquireLock(ctx context.Context, key state.LockKey, owner string, ttl time.Duration) (messages.LockAcquireResult, error) {
	if f.fail.Add(-1) >= 0 {
		return messages.LockAcquireResult{}, errors.New("state backend unavailable")
	}
	return f.Backend.AcquireLock(ctx, key, owner, ttl)
}

// TestRunMetrics: runs are counted by kind (vacuum, stats) and source
// (request, job), with their durations; a job that comes back is counted as
// a redelivery; the jobs consumer's state is exported.
func TestRunMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	flaky := &failingLocks{Backend: e.state}
	e.state = flaky
	reg := metrics.New()
	s := e.worker(t, "w1", func(c *maintenance.Config) { c.Metrics = reg })
	e.pg.Exec(t, "CREATE TABLE m (x int)")
	ctx := context.Background()

	_, err := s.Vacuum(ctx, &messages.VacuumRequest{Table: "m"})
	require.NoError(t, err)
	_, err = s.ServeStats(ctx, &messages.StatsRequest{Table: "m"})
	require.NoError(t, err)
	// A job whose first delivery finds the state backend down comes back.
	flaky.fail.Store(1)
	_, err = e.js.Publish(ctx, subjects.DBVacuumJobs, []byte(`{"table":"m"}`))
	require.NoError(t, err)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Len(c, e.results(c, maintenance.StreamVacuum, "db.vacuum.results.>"), 2)
	}, 10*time.Second, 50*time.Millisecond)

	runs := func(kind, source string) float64 {
		return metricValue(t, reg, "dbworker_maintenance_runs_total", map[string]string{"kind": kind, "source": source, "status": "ok"})
	}
	require.Equal(t, 1.0, runs("vacuum", metrics.SourceRequest))
	require.Equal(t, 1.0, runs("vacuum", metrics.SourceJob))
	require.Equal(t, 1.0, runs("stats", metrics.SourceRequest))
	families, err := reg.Registry.Gather()
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, f := range families {
		seen[f.GetName()] = true
		switch f.GetName() {
		case "dbworker_maintenance_run_duration_seconds":
			var n uint64
			for _, m := range f.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
			require.EqualValues(t, 3, n, "a duration per run that ran")
		case "dbworker_jobs_redeliveries_total":
			require.Equal(t, 1.0, f.GetMetric()[0].GetCounter().GetValue())
		case "dbworker_jobs_pending", "dbworker_jobs_ack_pending", "dbworker_jobs_redelivered":
			require.Zero(t, f.GetMetric()[0].GetGauge().GetValue(), f.GetName())
		}
	}
	for _, name := range []string{"dbworker_maintenance_run_duration_seconds", "dbworker_jobs_redeliveries_total", "dbworker_jobs_pending",
		"dbworker_jobs_ack_pending", "dbworker_jobs_redelivered", "dbworker_stream_config_drift"} {
		require.True(t, seen[name], name)
	}
}
