package maintenance_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/metrics"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

// TestStreamsHaveOneOwner: the first process creates the streams; a later one
// with other settings leaves them as they are, says so in a warning and a
// metric, and changes them only when told to (UpdateStreams).
func TestStreamsHaveOneOwner(t *testing.T) {
	t.Parallel()
	nc := testenv.Connect(t, testenv.NewNATS(t))
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	maxAge := func(name string) time.Duration {
		s, err := js.Stream(ctx, name)
		require.NoError(t, err)
		return s.CachedInfo().Config.MaxAge
	}

	require.NoError(t, maintenance.SetupStreams(ctx, js, maintenance.Config{ResultsMaxAge: time.Hour}))
	require.Equal(t, time.Hour, maxAge(maintenance.StreamVacuum))

	// Another process, other settings: the streams stay as they are.
	var logs bytes.Buffer
	reg := metrics.New()
	other := maintenance.Config{ResultsMaxAge: 2 * time.Hour, Logger: zerolog.New(&logs), Metrics: reg}
	require.NoError(t, maintenance.SetupStreams(ctx, js, other))
	require.Equal(t, time.Hour, maxAge(maintenance.StreamVacuum), "an existing stream keeps its owner's settings")
	require.Equal(t, time.Hour, maxAge(maintenance.StreamStats))
	require.Contains(t, logs.String(), `"stream":"DB_VACUUM","differs":["max_age"]`)
	require.Contains(t, logs.String(), "JS_UPDATE_STREAMS=true applies this one")
	drift := func(stream string) float64 {
		return metricValue(t, reg, "dbworker_stream_config_drift", map[string]string{"stream": stream})
	}
	require.Equal(t, 1.0, drift(maintenance.StreamVacuum))
	require.Equal(t, 1.0, drift(maintenance.StreamStats))
	require.Equal(t, 0.0, drift(maintenance.StreamJobs), "DB_JOBS has no max age")

	// Told to: the settings are applied, and the drift is gone.
	other.UpdateStreams = true
	require.NoError(t, maintenance.SetupStreams(ctx, js, other))
	require.Equal(t, 2*time.Hour, maxAge(maintenance.StreamVacuum))
	require.Equal(t, 0.0, drift(maintenance.StreamVacuum))

	// Auto replicas never count as a difference; named ones do.
	logs.Reset()
	require.NoError(t, maintenance.SetupStreams(ctx, js, maintenance.Config{ResultsMaxAge: 2 * time.Hour, Logger: zerolog.New(&logs)}))
	require.NotContains(t, logs.String(), "differs")
	require.NoError(t, maintenance.SetupStreams(ctx, js, maintenance.Config{ResultsMaxAge: 2 * time.Hour, Replicas: 2, Logger: zerolog.New(&logs)}))
	require.Contains(t, logs.String(), `"differs":["replicas"]`)
}

// metricValue reads the value (a gauge's or a counter's) of the series of
// family name whose labels include labels; it fails the test when there is
// none.
func metricValue(t *testing.T, reg *metrics.Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Registry.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s with labels %v", name, labels)
	return 0
}

// TestStreamsSetUpTogether: processes setting the streams up at the same
// instant all succeed, whoever creates them.
func TestStreamsSetUpTogether(t *testing.T) {
	t.Parallel()
	ns := testenv.NewNATS(t)
	ctx := context.Background()
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		js, err := jetstream.New(testenv.Connect(t, ns))
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = maintenance.SetupStreams(ctx, js, maintenance.Config{})
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "process %d", i)
	}
}

// TestReplicasNeedACluster: named replicas above 1 on a single server are an
// error at once, naming the variable; auto is 1 there.
func TestReplicasNeedACluster(t *testing.T) {
	t.Parallel()
	nc := testenv.Connect(t, testenv.NewNATS(t))
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = maintenance.SetupStreams(ctx, js, maintenance.Config{Replicas: 3})
	require.ErrorContains(t, err, "JS_REPLICAS=3 needs a JetStream cluster")
	require.NoError(t, ctx.Err(), "not retried until the deadline")
	require.NoError(t, maintenance.SetupStreams(ctx, js, maintenance.Config{}))
	s, err := js.Stream(ctx, maintenance.StreamJobs)
	require.NoError(t, err)
	require.Equal(t, 1, s.CachedInfo().Config.Replicas)
}

// TestJobsConsumerHasOneOwner: the first worker creates the jobs consumer; a
// later one with other MAINT_* settings leaves it as it is (the pool keeps
// one configuration, not the last starter's), says so in a warning and a
// metric, and changes it only when told to. Workers starting together all
// come up.
func TestJobsConsumerHasOneOwner(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	maxDeliver := func() int {
		c, err := e.js.Consumer(ctx, maintenance.StreamJobs, maintenance.ConsumerJobs)
		require.NoError(t, err)
		return c.CachedInfo().Config.MaxDeliver
	}
	pg, err := pgexec.Connect(ctx, pgexec.Config{DSN: e.pg.URL, MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(pg.Close)
	const n = 4
	svcs, errs := make([]*maintenance.Service, n), make([]error, n)
	for i := range n {
		svcs[i], err = maintenance.New(maintenance.Config{WorkerID: fmt.Sprintf("first-%d", i), Schemas: []string{e.pg.Schema}, MaxDeliver: 7, AckWait: 3 * time.Second, LockTTL: 3 * time.Second},
			testenv.Connect(t, e.ns), pg, e.state)
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = svcs[i].Start(ctx)
		}()
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "worker %d", i)
		t.Cleanup(func() { require.NoError(t, svcs[i].Stop(context.Background())) })
	}
	require.Equal(t, 7, maxDeliver())

	var logs testenv.SyncBuffer
	reg := metrics.New()
	e.worker(t, "other", func(c *maintenance.Config) {
		c.MaxDeliver, c.Logger, c.Metrics = 9, zerolog.New(&logs), reg
	})
	require.Equal(t, 7, maxDeliver(), "an existing consumer keeps its owner's settings")
	require.Contains(t, logs.String(), `"differs":["max_deliver"]`)
	require.Contains(t, logs.String(), "JS_UPDATE_STREAMS=true applies this one")
	require.Equal(t, 1.0, metricValue(t, reg, "dbworker_consumer_config_drift", map[string]string{"consumer": maintenance.ConsumerJobs}))

	reg = metrics.New()
	e.worker(t, "told", func(c *maintenance.Config) { c.MaxDeliver, c.UpdateStreams, c.Metrics = 9, true, reg })
	require.Equal(t, 9, maxDeliver())
	require.Equal(t, 0.0, metricValue(t, reg, "dbworker_consumer_config_drift", map[string]string{"consumer": maintenance.ConsumerJobs}))
}
