package maintenance_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// TestRequestCannotForgeAJobsOutcome: a scheduled job's id is predictable
// (<schedule>:<slot>). A db.vacuum or db.stats request naming it is refused,
// so it cannot store the job's outcome ahead of it (job:<id>:done would then
// deduplicate the real run's result away); the real job's result is stored.
func TestRequestCannotForgeAJobsOutcome(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.worker(t, "w1", nil)
	e.pg.Exec(t, "CREATE TABLE t (x int)")
	ctx := context.Background()
	const id = "vacuum-nightly:2030-01-01T00:00:00Z"

	for _, async := range []bool{false, true} {
		_, err := s.Vacuum(ctx, &messages.VacuumRequest{Table: "t", JobID: id, Async: async})
		var me *messages.Error
		require.True(t, errors.As(err, &me), "async=%v: %v", async, err)
		require.Equal(t, messages.CodeBadRequest, me.Code)
	}
	_, err := s.ServeStats(ctx, &messages.StatsRequest{Table: "t", JobID: id})
	var me *messages.Error
	require.True(t, errors.As(err, &me))
	require.Equal(t, messages.CodeBadRequest, me.Code)
	require.Empty(t, e.results(t, maintenance.StreamVacuum, "db.vacuum.results.>"), "nothing stored for the forged requests")

	// The real job runs and its outcome is stored under its id.
	_, err = e.js.Publish(ctx, subjects.DBVacuumJobs, []byte(`{"table":"t"}`), jetstream.WithMsgID(id))
	require.NoError(t, err)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Len(c, e.results(c, maintenance.StreamVacuum, "db.vacuum.results.>"), 1)
	}, 10*time.Second, 50*time.Millisecond)
	r := e.results(t, maintenance.StreamVacuum, "db.vacuum.results.>")[0]
	require.Equal(t, id, r.JobID)
	require.Equal(t, messages.StatusOK, r.Status)
}
