package memory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/memory"
	"github.com/jeeves-avionics/dbworker/internal/state/statetest"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

func TestMain(m *testing.M) { testenv.VerifyNoLeaks(m) }

func TestConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Backend {
		b := memory.New(memory.Options{SweepInterval: 50 * time.Millisecond})
		t.Cleanup(func() { require.NoError(t, b.Close()) })
		return b
	})
}

// TestReclaimsExpiredEntries: one-off keys do not stay once expired, even if
// never read again.
func TestReclaimsExpiredEntries(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	b := memory.New(memory.Options{Now: clock, SweepInterval: time.Hour})
	defer b.Close()
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		key := fmt.Sprint("k", i)
		_, _ = b.RateLimit(ctx, key, 5, 1, time.Second)
		_, _ = b.AcquireLock(ctx, state.CallerLock(key), "o", time.Second)
		require.NoError(t, b.SetBlobs(ctx, []state.Blob{{Key: key, Value: []byte{0, 0, 0, 0}}}, time.Second))
		require.NoError(t, b.KVSet(ctx, key, []byte("1"), time.Second))
	}
	require.NoError(t, b.KVSet(ctx, "forever", []byte("1"), 0))
	require.Equal(t, 4001, b.Len())
	b.Sweep()
	require.Equal(t, 4001, b.Len(), "nothing has expired yet")
	now = now.Add(2 * time.Second)
	b.Sweep()
	require.Equal(t, 1, b.Len(), "only the key without a TTL is left")
}

func TestJanitorRuns(t *testing.T) {
	b := memory.New(memory.Options{SweepInterval: 10 * time.Millisecond})
	defer b.Close()
	require.NoError(t, b.KVSet(context.Background(), "k", []byte("1"), 20*time.Millisecond))
	require.Eventually(t, func() bool { return b.Len() == 0 }, 2*time.Second, 5*time.Millisecond)
}

// TestTokensSurviveRestart: a new backend (a restarted worker) issues tokens
// past the old one's, though it starts with no counter.
func TestTokensSurviveRestart(t *testing.T) {
	ctx := context.Background()
	key := state.CallerLock("job")
	var last int64
	for i := 0; i < 3; i++ {
		b := memory.New(memory.Options{})
		for j := 0; j < 3; j++ {
			got, err := b.AcquireLock(ctx, key, "o", time.Minute)
			require.NoError(t, err)
			require.True(t, got.Acquired)
			require.Greater(t, got.Token, last, "restart %d, acquisition %d", i, j)
			last = got.Token
			rel, err := b.ReleaseLock(ctx, key, got.Lease)
			require.NoError(t, err)
			require.True(t, rel.Released)
		}
		require.NoError(t, b.Close())
	}
}

// TestRateLimitCostBounded: a key with a huge limit keeps a counter, not a
// call per admission; an exact key keeps at most limit calls.
func TestRateLimitCostBounded(t *testing.T) {
	b := memory.New(memory.Options{})
	defer b.Close()
	ctx := context.Background()
	const calls = 3 * state.ExactLimitMax
	for i := 0; i < calls; i++ {
		res, err := b.RateLimit(ctx, "huge", 1e9, 1, time.Hour)
		require.NoError(t, err)
		require.True(t, res.Allowed)
	}
	require.Equal(t, 1, b.RateLimitEntries())
	for i := 0; i < calls; i++ {
		_, err := b.RateLimit(ctx, "exact", state.ExactLimitMax, 1, time.Hour)
		require.NoError(t, err)
	}
	require.Equal(t, 1+state.ExactLimitMax, b.RateLimitEntries())
}
