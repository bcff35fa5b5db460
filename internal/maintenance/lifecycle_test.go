package maintenance_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/startstop"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

// TestStartAndStopAreGuarded: a second Start is refused, Stop is
// idempotent, and a stopped service does not start again. Once stopped it
// takes no more jobs, and Stop does not wait for one to come.
func TestStartAndStopAreGuarded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.worker(t, "w1", nil)
	ctx := context.Background()
	require.ErrorIs(t, s.Start(ctx), startstop.ErrStarted)

	start := time.Now()
	require.NoError(t, s.Stop(ctx))
	require.Less(t, time.Since(start), 3*time.Second, "Stop waits for the fetch under way, no more")
	require.NoError(t, s.Stop(ctx), "a second Stop is a no-op")
	require.ErrorIs(t, s.Start(ctx), startstop.ErrStopped)

	e.pg.Exec(t, "CREATE TABLE t (x int)")
	_, err := e.js.Publish(ctx, "db.stats.jobs", []byte(`{"table":"t"}`))
	require.NoError(t, err)
	time.Sleep(500 * time.Millisecond) // a running job loop takes a job in milliseconds
	jobs, err := e.js.Stream(ctx, maintenance.StreamJobs)
	require.NoError(t, err)
	info, err := jobs.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, info.State.Msgs, "a stopped service takes no jobs")
}

func TestStopBeforeStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pg, err := pgexec.Connect(context.Background(), pgexec.Config{DSN: e.pg.URL, MaxConns: 2})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(pg.Close)
	s, err := maintenance.New(maintenance.Config{WorkerID: "w1"}, e.nc, pg, e.state)
	require.NoError(t, err)
	require.NoError(t, s.Stop(context.Background()))
	require.ErrorIs(t, s.Start(context.Background()), startstop.ErrStopped)
}

// TestFailedStartStartsNothing: a Start whose set-up fails leaves nothing
// running (goleak in TestMain), and the service does not start again.
func TestFailedStartStartsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pg, err := pgexec.Connect(context.Background(), pgexec.Config{DSN: e.pg.URL, MaxConns: 2})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(pg.Close)
	nc := testenv.Connect(t, e.ns)
	s, err := maintenance.New(maintenance.Config{WorkerID: "w1"}, nc, pg, e.state)
	require.NoError(t, err)
	nc.Close()
	require.Error(t, s.Start(context.Background()))
	require.NoError(t, s.Stop(context.Background()))
	require.ErrorIs(t, s.Start(context.Background()), startstop.ErrStopped)
}

// TestNewRefusesBadConfig: a value that is wrong is an error naming the
// field, not replaced by its default.
func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	neg := -1
	for want, tune := range map[string]func(c *maintenance.Config){
		"Config.WorkerID is required":          func(c *maintenance.Config) { c.WorkerID = "" },
		"Config.Concurrency must not be":       func(c *maintenance.Config) { c.Concurrency = &neg },
		"Config.LockTTL must be positive":      func(c *maintenance.Config) { c.LockTTL = -time.Second },
		"Config.LockTTL must be positive, at":  func(c *maintenance.Config) { c.LockTTL = time.Nanosecond },
		"Config.AckWait":                       func(c *maintenance.Config) { c.AckWait = -time.Second },
		"Config.LockTimeout":                   func(c *maintenance.Config) { c.LockTimeout = -time.Second },
		"Config.VacuumTimeout":                 func(c *maintenance.Config) { c.VacuumTimeout = -time.Second },
		"Config.ResultsMaxAge":                 func(c *maintenance.Config) { c.ResultsMaxAge = -time.Hour },
		"Config.DuplicateWindow":               func(c *maintenance.Config) { c.DuplicateWindow = -time.Minute },
		"Config.ProgressInterval":              func(c *maintenance.Config) { c.ProgressInterval = -time.Second },
		"Config.MaxDeliver":                    func(c *maintenance.Config) { c.MaxDeliver = -1 },
		"Config.MaxConnections":                func(c *maintenance.Config) { c.MaxConnections = -2 },
		"Config.SQLConnections":                func(c *maintenance.Config) { c.SQLConnections = -1 },
		"Config.Replicas must not be negative": func(c *maintenance.Config) { c.Replicas = -1 },
		"Config.Replicas must be at most 5":    func(c *maintenance.Config) { c.Replicas = 7 },
		"Config.ResultsMaxPerSubject":          func(c *maintenance.Config) { c.ResultsMaxPerSubject = -1 },
		"Config.BackOff step 1 must be":        func(c *maintenance.Config) { c.BackOff = []time.Duration{time.Second, -time.Second} },
		"MaxDeliver must be above 3, got 3": func(c *maintenance.Config) {
			c.BackOff, c.MaxDeliver = []time.Duration{time.Second, time.Second, time.Second}, 3
		},
		"Config.Schemas holds an empty name": func(c *maintenance.Config) { c.Schemas = []string{"public", ""} },
	} {
		cfg := maintenance.Config{WorkerID: "w1"}
		tune(&cfg)
		_, err := maintenance.New(cfg, nil, nil, nil)
		require.ErrorContains(t, err, want)
	}
}
