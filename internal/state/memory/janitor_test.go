package memory

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/startstop"
)

// TestJanitorStartsOnceAndStopsOnce: a second Start is refused, Stop is
// idempotent, and no sweep runs after it.
func TestJanitorStartsOnceAndStopsOnce(t *testing.T) {
	ctx := context.Background()
	var sweeps atomic.Int32
	j := &janitor{every: time.Millisecond, sweep: func() { sweeps.Add(1) }}
	require.NoError(t, j.Start(ctx))
	require.ErrorIs(t, j.Start(ctx), startstop.ErrStarted)
	require.Eventually(t, func() bool { return sweeps.Load() >= 2 }, 5*time.Second, time.Millisecond)
	require.NoError(t, j.Stop(ctx))
	n := sweeps.Load()
	require.NoError(t, j.Stop(ctx), "a second Stop is a no-op")
	time.Sleep(20 * time.Millisecond) // twenty periods
	require.Equal(t, n, sweeps.Load(), "no sweep after Stop")
	require.ErrorIs(t, j.Start(ctx), startstop.ErrStopped)
}

// TestCloseIsIdempotent: New started the janitor; any number of Close calls,
// at once or one after another, stop it once.
func TestCloseIsIdempotent(t *testing.T) {
	b := New(Options{SweepInterval: time.Millisecond})
	require.ErrorIs(t, b.janitor.Start(context.Background()), startstop.ErrStarted, "New started it")
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Close(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	require.NoError(t, b.Close())
	require.True(t, b.janitor.life.Stopping())
}
