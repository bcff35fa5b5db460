package schedule_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/schedule"
	"github.com/jeeves-avionics/dbworker/internal/startstop"
)

func hourly(t *testing.T) *schedule.Runner {
	t.Helper()
	scheds, err := schedule.Parse(strings.NewReader("schedules:\n  - {name: hourly, cron: '@every 1h', job: stats}\n"))
	require.NoError(t, err)
	// No JetStream: nothing comes due during the test.
	return &schedule.Runner{Schedules: scheds, Log: zerolog.Nop()}
}

// TestRunnerRunsOnce: a runner that runs refuses a second Start or Run, its
// Stop is idempotent, and it does not run again (goleak in TestMain checks
// that Stop waited for the loops).
func TestRunnerRunsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := hourly(t)
	require.NoError(t, r.Start(ctx))
	require.ErrorIs(t, r.Start(ctx), startstop.ErrStarted)
	require.ErrorIs(t, r.Run(ctx), startstop.ErrStarted, "Run does not start a second set of loops")
	require.NoError(t, r.Stop(ctx))
	require.NoError(t, r.Stop(ctx), "a second Stop is a no-op")
	require.ErrorIs(t, r.Start(ctx), startstop.ErrStopped)
	require.ErrorIs(t, r.Run(ctx), startstop.ErrStopped)
}

// TestRunUntilContextEnds: Run returns ctx's error once it ends, or nil
// once Stop is called from elsewhere.
func TestRunUntilContextEnds(t *testing.T) {
	t.Parallel()
	r := hourly(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("Run returned before its context ended: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)

	r = hourly(t)
	started := make(chan struct{})
	var once sync.Once
	r.Now = func() time.Time {
		once.Do(func() { close(started) }) // the loop reads the clock first
		return time.Now()
	}
	go func() { done <- r.Run(context.Background()) }()
	<-started
	require.NoError(t, r.Stop(context.Background()))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Stop")
	}
}
