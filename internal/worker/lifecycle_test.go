package worker

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/startstop"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

// TestFailedStartLeavesNothingRunning: a Start that fails after it started
// the maintenance service stops it again (issue #18, defect 2:
// SERVICE_NAME="bad name" passed config, micro.AddService refused it, and
// Start returned with a job consumer running that Stop never stopped).
//
// Not parallel: the goroutine check needs the process to itself.
func TestFailedStartLeavesNothingRunning(t *testing.T) {
	for _, c := range []struct {
		name    string
		breakIt func(w *Worker)
	}{
		// What SERVICE_NAME="bad name" did before config and New refused it.
		{"micro refuses the service", func(w *Worker) { w.cfg.ServiceName = "bad name" }},
		{"micro refuses an endpoint", func(w *Worker) {
			w.extra = []endpoint{{name: "bad", subject: "bad subject", handle: func(context.Context, *request) ([]byte, error) { return nil, nil }}}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := &bundle{t: t, pg: testenv.NewPostgres(t), ns: testenv.NewNATS(t)}
			b.nc = testenv.Connect(t, b.ns)
			cl, w := b.newWorker(t, "w1", options{maxConns: 4, acquire: 5 * time.Second, mode: pgexec.ModeReadWrite, maxRows: 10, maintenance: true})
			c.breakIt(w)
			// The embedded server's goroutines for the streams and the jobs
			// consumer, and the connection's request mux, which live as long
			// as they do, are there before the snapshot: another maintenance
			// service sets them up first.
			warm, err := maintenance.New(maintenance.Config{WorkerID: "warm", Subjects: b.sub, Schemas: []string{b.pg.Schema}}, w.deps.NATS, cl, b.state)
			require.NoError(t, err)
			require.NoError(t, warm.Start(context.Background()))
			require.NoError(t, warm.Stop(context.Background()))
			before := goleak.IgnoreCurrent()

			require.Error(t, w.Start(context.Background()))
			require.NoError(t, w.Stop(context.Background()))
			goleak.VerifyNone(t, before)
			require.ErrorIs(t, w.Start(context.Background()), startstop.ErrStopped, "a worker whose Start failed does not start again")
		})
	}
}

func TestStartAndStopAreGuarded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	require.ErrorIs(t, b.w.Start(ctx), startstop.ErrStarted)
	b.ok(`{"sql":"SELECT 1 AS one"}`) // the second Start changed nothing
	require.NoError(t, b.w.Stop(ctx))
	require.NoError(t, b.w.Stop(ctx), "a second Stop is a no-op")
	require.ErrorIs(t, b.w.Start(ctx), startstop.ErrStopped)

	_, w := b.newWorker(t, "w2", options{maxConns: 2, acquire: 5 * time.Second, mode: pgexec.ModeReadWrite, maxRows: 10})
	require.NoError(t, w.Stop(ctx), "Stop before Start")
	require.ErrorIs(t, w.Start(ctx), startstop.ErrStopped)
}

// TestNewRefusesBadConfig: a value that is wrong is an error naming the
// field, not replaced by its default.
func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	for want, c := range map[string]Config{
		"Config.ID is required":          {},
		"Config.ServiceName":             {ID: "w", ServiceName: "bad name"},
		"Config.QueueGroup":              {ID: "w", QueueGroup: "a b"},
		"Config.MaxConcurrent":           {ID: "w", MaxConcurrent: -1},
		"Config.StateConcurrent":         {ID: "w", StateConcurrent: -1},
		"Config.MaintConcurrent":         {ID: "w", MaintConcurrent: -4},
		"Config.HealthConcurrent":        {ID: "w", HealthConcurrent: -2},
		"Config.MaxQueued":               {ID: "w", MaxQueued: -1},
		"Config.MaxQueuedBytes":          {ID: "w", MaxQueuedBytes: -1},
		"Config.MaxRequestBytes":         {ID: "w", MaxRequestBytes: -1},
		"Config.DrainTimeout":            {ID: "w", DrainTimeout: -time.Second},
		"Config.MaxTimeout":              {ID: "w", MaxTimeout: -time.Second},
		"Config.DefaultTimeout must":     {ID: "w", DefaultTimeout: -time.Second},
		"is above MaxTimeout":            {ID: "w", DefaultTimeout: time.Minute, MaxTimeout: time.Second},
		"Config.TrustedReplyPrefixes":    {ID: "w", TrustedReplyPrefixes: []string{"db."}},
		`"bad name": a micro service na`: {ID: "w", ServiceName: "bad name"},
	} {
		_, err := New(c, Deps{})
		require.ErrorContains(t, err, want)
		require.NotContains(t, err.Error(), "Deps", "the config is checked first")
	}
	for _, name := range []string{"dbworker", "dbworker-prod", "db_worker_2"} {
		require.NoError(t, ValidateServiceName(name))
	}
	for _, name := range []string{"", "bad name", "db.worker", "dbworker>", "dbwörker"} {
		require.Error(t, ValidateServiceName(name), name)
	}
	_, err := New(Config{ID: "w"}, Deps{})
	require.ErrorContains(t, err, "Deps.NATS", "a good config gets as far as the deps")
}

// TestDefaultTimeoutFollowsMaxTimeout: left zero, DefaultTimeout is its
// default capped by MaxTimeout, as before.
func TestDefaultTimeoutFollowsMaxTimeout(t *testing.T) {
	t.Parallel()
	c := Config{ID: "w", MaxTimeout: 10 * time.Second}
	require.NoError(t, c.withDefaults())
	require.Equal(t, 10*time.Second, c.DefaultTimeout)
	c = Config{ID: "w"}
	require.NoError(t, c.withDefaults())
	require.Equal(t, []time.Duration{DefaultTimeoutDefault, MaxTimeoutDefault, DrainTimeoutDefault}, []time.Duration{c.DefaultTimeout, c.MaxTimeout, c.DrainTimeout})
	require.Equal(t, TrustedReplyPrefixesDefault, c.TrustedReplyPrefixes)
}

func TestVersionIsSemver(t *testing.T) {
	require.NoError(t, validateVersion(Version))
	require.NoError(t, validateVersion("v1.2.3-rc.1"))
	require.Error(t, validateVersion("abc1234"))
}
