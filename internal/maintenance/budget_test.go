package maintenance_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// TestConnectionBudget: 80 concurrent db.vacuum requests over 8 tables never
// hold more than MAINT_MAX_CONNECTIONS (2) VACUUM connections, counted in
// pg_stat_activity by application_name (on main each run opened its own,
// and 80 of them exhausted max_connections). Requests beyond the budget
// answer UNAVAILABLE at once; the rest run or are LOCKED.
func TestConnectionBudget(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.pg.Schema + "-budget"
	s := e.worker(t, id, nil, maintenance.TestSignals{BeforeVacuumSQL: "SELECT pg_sleep(0.4)"})
	const tables, requests = 8, 80
	for i := 0; i < tables; i++ {
		e.pg.Exec(t, fmt.Sprintf("CREATE TABLE b%d (x int)", i))
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.pg.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)

	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			var n int64
			if conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", "dbworker/"+id+"/vacuum").Scan(&n) == nil && n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	var ran, locked, busy atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < requests; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.Vacuum(ctx, &messages.VacuumRequest{Table: fmt.Sprintf("b%d", i%tables)})
			var me *messages.Error
			switch {
			case err == nil:
				assert.Equal(t, messages.StatusOK, res.(*messages.VacuumResult).Status)
				ran.Add(1)
			case errors.As(err, &me) && me.Code == messages.CodeLocked:
				locked.Add(1)
			case errors.As(err, &me) && me.Code == messages.CodeUnavailable:
				assert.Contains(t, me.Message, "MAINT_MAX_CONNECTIONS")
				busy.Add(1)
			default:
				t.Errorf("unexpected answer: %v", err)
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	t.Logf("%d ran, %d locked, %d busy in %s; peak %d VACUUM connections", ran.Load(), locked.Load(), busy.Load(), time.Since(start), peak.Load())
	require.EqualValues(t, requests, ran.Load()+locked.Load()+busy.Load())
	require.Positive(t, ran.Load())
	require.Positive(t, busy.Load())
	require.Positive(t, peak.Load(), "the sampler saw the runs")
	require.LessOrEqual(t, peak.Load(), int64(maintenance.MaxConnectionsDefault))
}

// TestJobsWaitForAConnection: with the budget held by a request, a job waits
// for the connection (it is neither skipped nor failed, nor run beside the
// request) and runs once the request's run is over.
func TestJobsWaitForAConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.worker(t, e.pg.Schema+"-wait", func(c *maintenance.Config) { c.MaxConnections = 1 },
		maintenance.TestSignals{BeforeVacuumSQL: "SELECT pg_sleep(0.5)"})
	e.pg.Exec(t, "CREATE TABLE held (x int); CREATE TABLE queued (x int)")
	ctx := context.Background()
	first := make(chan *messages.VacuumResult, 1)
	go func() {
		res, err := s.Vacuum(ctx, &messages.VacuumRequest{Table: "held"})
		if err != nil {
			t.Error(err)
		}
		r, _ := res.(*messages.VacuumResult)
		first <- r
	}()
	waitHeld(t, e.state, maintenance.VacuumLockKey(e.pg.Schema, "held"))
	acc, err := s.Enqueue(ctx, subjects.DBVacuumJobs, &messages.VacuumRequest{Table: "queued"})
	require.NoError(t, err)
	held := <-first
	require.NotNil(t, held)
	var job []messages.VacuumResult
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		job = job[:0]
		for _, r := range e.results(c, maintenance.StreamVacuum, "db.vacuum.results.>") {
			if r.JobID == acc.JobID {
				job = append(job, r)
			}
		}
		assert.NotEmpty(c, job, "the job's result")
	}, 10*time.Second, 50*time.Millisecond)
	require.Len(t, job, 1, "one result: the job was not failed or retried")
	require.Equal(t, messages.StatusOK, job[0].Status)
	require.False(t, job[0].StartedAt.Before(held.FinishedAt), "the job ran after the request's run, not beside it")
}
