package statetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

func rl(t testenv.T, b state.Backend, key string, limit, cost int64, window time.Duration) messages.RateLimitResult {
	t.Helper()
	res, err := b.RateLimit(ctx, key, limit, cost, window)
	require.NoError(t, err)
	require.Equal(t, limit, res.Limit)
	return res
}

// The seed's case: limit 5 answers remaining 4,3,2,1,0, then denied with 0.
func rateLimitSequence(t *testing.T, b state.Backend) {
	for want := int64(4); want >= 0; want-- {
		res := rl(t, b, "seq", 5, 1, time.Minute)
		require.True(t, res.Allowed)
		require.Equal(t, want, res.Remaining)
		require.Zero(t, res.RetryAfterMS)
		require.InDelta(t, 60000, res.ResetMS, 5000)
	}
	res := rl(t, b, "seq", 5, 1, time.Minute)
	require.False(t, res.Allowed)
	require.Zero(t, res.Remaining)
	require.Greater(t, res.RetryAfterMS, int64(50000))
	require.LessOrEqual(t, res.RetryAfterMS, int64(60000))
	// Other keys are independent.
	require.True(t, rl(t, b, "seq-other", 5, 1, time.Minute).Allowed)
}

// The seed's case: a 1 s window admits again after it.
func rateLimitWindowReopens(t *testing.T, b state.Backend) {
	require.True(t, rl(t, b, "win", 2, 1, time.Second).Allowed)
	require.True(t, rl(t, b, "win", 2, 1, time.Second).Allowed)
	denied := rl(t, b, "win", 2, 1, time.Second)
	require.False(t, denied.Allowed)
	require.Greater(t, denied.RetryAfterMS, int64(0))
	require.LessOrEqual(t, denied.RetryAfterMS, int64(1000))
	start := time.Now()
	require.EventuallyWithT(t, func(c *assert.CollectT) { assert.True(c, rl(c, b, "win", 2, 1, time.Second).Allowed) }, 3*time.Second, 20*time.Millisecond)
	require.GreaterOrEqual(t, time.Since(start), time.Duration(denied.RetryAfterMS-50)*time.Millisecond, "admitted before retry_after")
}

// A denied call is not counted: after the admitted calls leave the window the
// full limit is available again, however many calls were denied meanwhile.
func rateLimitDeniedNotCounted(t *testing.T, b state.Backend) {
	const w = 400 * time.Millisecond
	require.True(t, rl(t, b, "dnc", 2, 1, w).Allowed)
	require.True(t, rl(t, b, "dnc", 2, 1, w).Allowed)
	deadline := time.Now().Add(w / 2)
	for time.Now().Before(deadline) {
		require.False(t, rl(t, b, "dnc", 2, 1, w).Allowed)
		time.Sleep(5 * time.Millisecond) // hammer the key while it is full
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) { assert.EqualValues(c, 2, rl(c, b, "dnc", 2, 0, w).Remaining) }, 2*time.Second, 10*time.Millisecond)
	require.True(t, rl(t, b, "dnc", 2, 1, w).Allowed)
	require.True(t, rl(t, b, "dnc", 2, 1, w).Allowed)
}

func rateLimitCost(t *testing.T, b state.Backend) {
	require.Equal(t, int64(6), rl(t, b, "cost", 10, 4, time.Minute).Remaining)
	require.Equal(t, int64(2), rl(t, b, "cost", 10, 4, time.Minute).Remaining)
	res := rl(t, b, "cost", 10, 4, time.Minute)
	require.False(t, res.Allowed)
	require.Equal(t, int64(2), res.Remaining, "a denied call consumes nothing")
	require.Greater(t, res.RetryAfterMS, int64(0))
	res = rl(t, b, "cost", 10, 2, time.Minute)
	require.True(t, res.Allowed)
	require.Zero(t, res.Remaining)
	// Cost 0 asks without consuming.
	res = rl(t, b, "cost", 10, 0, time.Minute)
	require.True(t, res.Allowed)
	require.Zero(t, res.Remaining)
}

func rateLimitEdges(t *testing.T, b state.Backend) {
	res := rl(t, b, "over", 3, 5, time.Minute)
	require.False(t, res.Allowed)
	require.Equal(t, int64(-1), res.RetryAfterMS, "cost above limit can never pass")
	require.Equal(t, int64(3), res.Remaining)
	require.Zero(t, res.ResetMS)

	res = rl(t, b, "zero", 0, 1, time.Minute)
	require.False(t, res.Allowed)
	require.Equal(t, int64(-1), res.RetryAfterMS)
	require.Zero(t, res.Remaining)
	require.True(t, rl(t, b, "zero", 0, 0, time.Minute).Allowed)

}

// A full log of ExactLimitMax calls, in two batches 300 ms apart: a denied
// call's retry_after is when the oldest calls whose costs reach what it lacks
// have left the window. Asking for 500 waits for the first batch only, for
// 501 for the first call of the second, for all 1000 for the newest call
// (its reset). Backends find that call without reading the log (red-team
// finding 10); this checks they still find the right one.
func rateLimitFullLog(t *testing.T, b state.Backend) {
	const limit, window = state.ExactLimitMax, 30 * time.Second
	for i := 0; i < limit/2; i++ {
		require.True(t, rl(t, b, "full", limit, 1, window).Allowed)
	}
	time.Sleep(300 * time.Millisecond) // the batches need distinct times
	var last messages.RateLimitResult
	for i := 0; i < limit/2; i++ {
		last = rl(t, b, "full", limit, 1, window)
		require.True(t, last.Allowed)
	}
	require.Zero(t, last.Remaining, "the log is full")
	retry := map[int64]messages.RateLimitResult{}
	for _, cost := range []int64{1, limit / 2, limit/2 + 1, limit} {
		res := rl(t, b, "full", limit, cost, window)
		require.False(t, res.Allowed, "cost %d", cost)
		require.Positive(t, res.RetryAfterMS, "cost %d", cost)
		require.LessOrEqual(t, res.RetryAfterMS, window.Milliseconds(), "cost %d", cost)
		retry[cost] = res
	}
	first, endA, startB, all := retry[1].RetryAfterMS, retry[limit/2].RetryAfterMS, retry[limit/2+1].RetryAfterMS, retry[limit]
	require.LessOrEqual(t, first, endA, "the first batch leaves oldest first")
	require.GreaterOrEqual(t, startB-endA, int64(250), "501 waits for the second batch: %d vs %d", startB, endA)
	require.LessOrEqual(t, startB, all.RetryAfterMS)
	require.InDelta(t, all.ResetMS, all.RetryAfterMS, 1, "cost %d waits for the newest call", limit)
}

// The reset: one call with window_ms 1 wiped a key's history. The
// window and the limit are part of a key's identity: a call with another
// window or limit counts in a bucket of its own and leaves this one alone.
func rateLimitIdentity(t *testing.T, b state.Backend) {
	for _, limit := range []int64{5, state.ExactLimitMax + 5} {
		key := fmt.Sprint("id", limit)
		cost := max(limit/5, 1)
		for i := 0; i < 5; i++ {
			require.True(t, rl(t, b, key, limit, cost, time.Minute).Allowed)
		}
		require.False(t, rl(t, b, key, limit, cost, time.Minute).Allowed)
		require.True(t, rl(t, b, key, limit, cost, time.Millisecond).Allowed, "a 1 ms window is another bucket")
		require.True(t, rl(t, b, key, limit, cost, 2*time.Minute).Allowed, "so is a longer one")
		require.True(t, rl(t, b, key, limit+1, cost, time.Minute).Allowed, "and another limit")
		for i := 0; i < 5; i++ {
			res := rl(t, b, key, limit, cost, time.Minute)
			require.False(t, res.Allowed, "limit %d, call %d after the others: not reset", limit, i)
			require.Zero(t, res.Remaining)
		}
	}
}

// Above ExactLimitMax the key is a sliding-window counter: the same answers
// while its calls fit one aligned window (a day here).
func rateLimitCounter(t *testing.T, b state.Backend) {
	const limit, cost = 5000, 1000
	for want := int64(4000); want >= 0; want -= cost {
		res := rl(t, b, "ctr", limit, cost, 24*time.Hour)
		require.True(t, res.Allowed)
		require.Equal(t, want, res.Remaining)
		require.Zero(t, res.RetryAfterMS)
		require.Positive(t, res.ResetMS)
	}
	for i := 0; i < 20; i++ {
		res := rl(t, b, "ctr", limit, 1, 24*time.Hour)
		require.False(t, res.Allowed, "full")
		require.Zero(t, res.Remaining)
		require.Greater(t, res.RetryAfterMS, int64(0))
		require.LessOrEqual(t, res.RetryAfterMS, int64(48*time.Hour/time.Millisecond))
	}
	res := rl(t, b, "ctr", limit, 0, 24*time.Hour)
	require.True(t, res.Allowed, "cost 0 asks")
	require.Zero(t, res.Remaining, "denied calls were not counted, nor was the ask")
	res = rl(t, b, "ctr", limit, limit+1, 24*time.Hour)
	require.Equal(t, int64(-1), res.RetryAfterMS, "cost above limit can never pass")

	// Concurrent callers never get more than the limit admitted.
	var mu sync.Mutex
	admitted := int64(0)
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				res, err := b.RateLimit(ctx, "ctr-conc", 2000, 100, 24*time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Allowed {
					mu.Lock()
					admitted += 100
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int64(2000), admitted)
}

// Concurrent callers on one key never get more than the limit admitted.
func rateLimitConcurrent(t *testing.T, b state.Backend) {
	const limit, callers, each = 37, 20, 5
	var mu sync.Mutex
	admitted := 0
	var wg sync.WaitGroup
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < each; j++ {
				res, err := b.RateLimit(ctx, "conc", limit, 1, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Allowed {
					mu.Lock()
					admitted++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	require.Equal(t, limit, admitted)
}
