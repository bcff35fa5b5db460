// Package statetest is the conformance suite of state backends: the same
// calls with the same expected answers, run against every backend.
package statetest

import (
	"context"
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

// Open returns a fresh, isolated backend for one test.
type Open func(t *testing.T) state.Backend

// Run runs the whole suite against the backends open returns.
func Run(t *testing.T, open Open) {
	tests := map[string]func(*testing.T, state.Backend){
		"RateLimitSequence":       rateLimitSequence,
		"RateLimitWindowReopens":  rateLimitWindowReopens,
		"RateLimitDeniedNotCount": rateLimitDeniedNotCounted,
		"RateLimitCost":           rateLimitCost,
		"RateLimitEdges":          rateLimitEdges,
		"RateLimitConcurrent":     rateLimitConcurrent,
		"RateLimitIdentity":       rateLimitIdentity,
		"RateLimitCounter":        rateLimitCounter,
		"RateLimitFullLog":        rateLimitFullLog,
		"LockOwnership":           lockOwnership,
		"LockThirdPartyCannot":    lockThirdPartyCannotSteal,
		"LockSpaces":              lockSpaces,
		"LockExpiry":              lockExpiry,
		"LockRefresh":             lockRefresh,
		"LockTokensFollowClock":   lockTokensFollowClock,
		"LockFencingContended":    lockFencingContended,
		"Cache":                   cache,
		"KV":                      kv,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, open(t))
		})
	}
}

var ctx = context.Background()

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

func acquire(t *testing.T, b state.Backend, key, owner string, ttl time.Duration) messages.LockAcquireResult {
	t.Helper()
	res, err := b.AcquireLock(ctx, state.CallerLock(key), owner, ttl)
	require.NoError(t, err)
	if res.Acquired {
		require.GreaterOrEqual(t, len(res.Lease), 26, "a lease of at least 128 bits")
	} else {
		require.Empty(t, res.Lease, "a refused acquire never shows a lease")
	}
	return res
}

func release(t *testing.T, b state.Backend, key, lease string) messages.LockReleaseResult {
	t.Helper()
	res, err := b.ReleaseLock(ctx, state.CallerLock(key), lease)
	require.NoError(t, err)
	return res
}

func status(t *testing.T, b state.Backend, key string) messages.LockStatusResult {
	t.Helper()
	res, err := b.LockStatus(ctx, state.CallerLock(key))
	require.NoError(t, err)
	return res
}

// A lock can't be taken twice and only the holder of its lease releases it
// (the seed released any lock; then the owner name alone did).
func lockOwnership(t *testing.T, b state.Backend) {
	a := acquire(t, b, "job", "a", time.Minute)
	require.True(t, a.Acquired)
	require.Equal(t, "a", a.Owner)
	require.Positive(t, a.Token)
	require.NotNil(t, a.ExpiresAt)
	require.WithinDuration(t, time.Now().Add(time.Minute), *a.ExpiresAt, 5*time.Second)

	other := acquire(t, b, "job", "b", time.Minute)
	require.False(t, other.Acquired)
	require.Equal(t, "a", other.Owner, "the answer names the holder")
	require.Equal(t, a.Token, other.Token, "and its fencing token")
	require.InDelta(t, 60000, other.ExpiresInMS, 5000)

	again := acquire(t, b, "job", "a", time.Minute)
	require.False(t, again.Acquired, "the owner's name alone does not take a held lock")

	rel := release(t, b, "job", "")
	require.Equal(t, messages.LockReleaseResult{Reason: messages.ReasonNotOwner}, rel)
	st := status(t, b, "job")
	require.Equal(t, messages.LockStatusResult{Held: true, Owner: "a", Token: a.Token, ExpiresInMS: st.ExpiresInMS}, st)

	require.Equal(t, messages.LockReleaseResult{Released: true}, release(t, b, "job", a.Lease))
	require.Equal(t, messages.LockReleaseResult{Reason: messages.ReasonNotHeld}, release(t, b, "job", a.Lease))
	require.Equal(t, messages.LockStatusResult{}, status(t, b, "job"))

	next := acquire(t, b, "job", "b", time.Minute)
	require.True(t, next.Acquired)
	require.Greater(t, next.Token, a.Token, "tokens grow across releases")
	require.NotEqual(t, a.Lease, next.Lease, "every acquisition has a lease of its own")
}

// The theft: a third party that knows the key, the owner's name and
// the token (all shown by status) can neither release nor refresh the lock,
// and it stays held.
func lockThirdPartyCannotSteal(t *testing.T, b state.Backend) {
	key := state.CallerLock("vacuum")
	a := acquire(t, b, "vacuum", "worker-1/run-1", time.Minute)
	require.True(t, a.Acquired)
	st := status(t, b, "vacuum")
	for _, guess := range []string{"", "worker-1/run-1", st.Owner, fmt.Sprint(st.Token), a.Lease[:len(a.Lease)-1], a.Lease + "x"} {
		rel, err := b.ReleaseLock(ctx, key, guess)
		require.NoError(t, err)
		require.Equal(t, messages.LockReleaseResult{Reason: messages.ReasonNotOwner}, rel, "release with %q", guess)
		ref, err := b.RefreshLock(ctx, key, guess, time.Hour)
		require.NoError(t, err)
		require.Equal(t, messages.LockRefreshResult{Reason: messages.ReasonNotOwner}, ref, "refresh with %q", guess)
	}
	after := status(t, b, "vacuum")
	require.True(t, after.Held, "the lock is still held")
	require.Equal(t, a.Token, after.Token)
	require.LessOrEqual(t, after.ExpiresInMS, int64(60000), "nobody extended it")
	require.False(t, acquire(t, b, "vacuum", "thief", time.Minute).Acquired, "nor can anyone take it")
}

// Callers' and internal locks of one name are different locks.
func lockSpaces(t *testing.T, b state.Backend) {
	caller, internal := state.CallerLock("maint:vacuum:public.users"), state.InternalLock("maint:vacuum:public.users")
	c, err := b.AcquireLock(ctx, caller, "squatter", 30*24*time.Hour)
	require.NoError(t, err)
	require.True(t, c.Acquired)
	st, err := b.LockStatus(ctx, internal)
	require.NoError(t, err)
	require.False(t, st.Held, "a caller's lock is not an internal lock")
	i, err := b.AcquireLock(ctx, internal, "worker", time.Minute)
	require.NoError(t, err)
	require.True(t, i.Acquired, "the internal lock is free whatever callers hold")
	rel, err := b.ReleaseLock(ctx, caller, i.Lease)
	require.NoError(t, err)
	require.Equal(t, messages.ReasonNotOwner, rel.Reason, "a lease opens only its own lock")
	rel, err = b.ReleaseLock(ctx, internal, i.Lease)
	require.NoError(t, err)
	require.True(t, rel.Released)
	require.True(t, status(t, b, "maint:vacuum:public.users").Held, "releasing the internal lock leaves the caller's")
}

// The seed's case: a lock expires after its TTL; the fencing token survives.
func lockExpiry(t *testing.T, b state.Backend) {
	a := acquire(t, b, "exp", "a", 150*time.Millisecond)
	require.True(t, a.Acquired)
	require.Eventually(t, func() bool {
		st, err := b.LockStatus(ctx, state.CallerLock("exp"))
		return err == nil && !st.Held
	}, 3*time.Second, 10*time.Millisecond)
	c := acquire(t, b, "exp", "a", time.Minute)
	require.True(t, c.Acquired)
	require.Greater(t, c.Token, a.Token, "tokens grow across expiries")
	require.Equal(t, messages.ReasonNotOwner, release(t, b, "exp", a.Lease).Reason, "an expired acquisition cannot release the new one, even of the same owner")
}

func lockRefresh(t *testing.T, b state.Backend) {
	key := state.CallerLock("ref")
	a := acquire(t, b, "ref", "a", time.Second)
	require.True(t, a.Acquired)
	res, err := b.RefreshLock(ctx, key, "a", time.Hour)
	require.NoError(t, err)
	require.Equal(t, messages.LockRefreshResult{Reason: messages.ReasonNotOwner}, res, "the owner's name is not its lease")
	res, err = b.RefreshLock(ctx, key, a.Lease, time.Hour)
	require.NoError(t, err)
	require.True(t, res.Refreshed)
	require.WithinDuration(t, time.Now().Add(time.Hour), *res.ExpiresAt, 5*time.Second)
	st := status(t, b, "ref")
	require.Greater(t, st.ExpiresInMS, int64(3500000))
	require.Equal(t, a.Token, st.Token, "a refresh keeps the token")
	res, err = b.RefreshLock(ctx, state.CallerLock("nothing"), a.Lease, time.Hour)
	require.NoError(t, err)
	require.Equal(t, messages.LockRefreshResult{Reason: messages.ReasonNotHeld}, res)
}

// Tokens are seeded from the clock (µs since the epoch), so a store that lost
// its counters still issues tokens past the earlier ones.
func lockTokensFollowClock(t *testing.T, b state.Backend) {
	before := time.Now()
	a := acquire(t, b, "clock", "a", time.Minute)
	require.True(t, a.Acquired)
	require.GreaterOrEqual(t, a.Token, before.Add(-time.Second).UnixMicro(), "a token is at least the clock in µs")
	require.LessOrEqual(t, a.Token, time.Now().Add(time.Second).UnixMicro())
}

// Fencing tokens strictly increase across 1000 contended acquisitions.
func lockFencingContended(t *testing.T, b state.Backend) {
	const total, workers = 1000, 8
	key := state.CallerLock("fence")
	var mu sync.Mutex
	var tokens []int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("w%d", w)
			for {
				mu.Lock()
				done := len(tokens) >= total
				mu.Unlock()
				if done {
					return
				}
				res, err := b.AcquireLock(ctx, key, owner, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if !res.Acquired {
					continue
				}
				mu.Lock() // recorded while held: the slice is in acquisition order
				tokens = append(tokens, res.Token)
				mu.Unlock()
				if rel, err := b.ReleaseLock(ctx, key, res.Lease); err != nil || !rel.Released {
					t.Errorf("release: %v %+v", err, rel)
					return
				}
			}
		}()
	}
	wg.Wait()
	require.GreaterOrEqual(t, len(tokens), total)
	for i := 1; i < len(tokens); i++ {
		require.Greater(t, tokens[i], tokens[i-1], "token %d", i)
	}
}

// The seed's cases: cache hit, miss and expiry; mget in request order.
func cache(t *testing.T, b state.Backend) {
	require.NoError(t, b.SetBlobs(ctx, []state.Blob{{Key: "h1", Value: []byte{1, 2, 3, 4}}, {Key: "h2", Value: []byte{5, 6, 7, 8}}}, 0))
	got, err := b.GetBlobs(ctx, []string{"h2", "missing", "h1"})
	require.NoError(t, err)
	require.Equal(t, [][]byte{{5, 6, 7, 8}, nil, {1, 2, 3, 4}}, got)

	require.NoError(t, b.SetBlobs(ctx, []state.Blob{{Key: "short", Value: []byte{9, 9, 9, 9}}}, 150*time.Millisecond))
	got, err = b.GetBlobs(ctx, []string{"short"})
	require.NoError(t, err)
	require.NotNil(t, got[0])
	require.Eventually(t, func() bool {
		got, err := b.GetBlobs(ctx, []string{"short"})
		return err == nil && got[0] == nil
	}, 3*time.Second, 10*time.Millisecond)

	n, err := b.DeleteBlobs(ctx, []string{"h1", "missing"})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	got, err = b.GetBlobs(ctx, []string{"h1"})
	require.NoError(t, err)
	require.Nil(t, got[0])
}

func kv(t *testing.T, b state.Backend) {
	_, found, err := b.KVGet(ctx, "k")
	require.NoError(t, err)
	require.False(t, found)
	require.NoError(t, b.KVSet(ctx, "k", []byte(`{"a":[1,2],"b":"x"}`), 0))
	v, found, err := b.KVGet(ctx, "k")
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, `{"a":[1,2],"b":"x"}`, string(v))

	n, err := b.KVIncr(ctx, "n", 1)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	n, err = b.KVIncr(ctx, "n", -6)
	require.NoError(t, err)
	require.EqualValues(t, -5, n)
	v, _, err = b.KVGet(ctx, "n")
	require.NoError(t, err)
	require.Equal(t, "-5", string(v))
	_, err = b.KVIncr(ctx, "k", 1)
	require.ErrorIs(t, err, state.ErrNotInteger)
	require.NoError(t, b.KVSet(ctx, "big", []byte("9223372036854775807"), 0))
	_, err = b.KVIncr(ctx, "big", 1)
	require.ErrorIs(t, err, state.ErrNotInteger, "overflow is refused")

	ok, err := b.KVDelete(ctx, "k")
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = b.KVDelete(ctx, "k")
	require.NoError(t, err)
	require.False(t, ok)

	require.NoError(t, b.KVSet(ctx, "ttl", []byte(`"soon gone"`), 150*time.Millisecond))
	_, err = b.KVIncr(ctx, "ttl", 1)
	require.ErrorIs(t, err, state.ErrNotInteger)
	require.Eventually(t, func() bool {
		_, found, err := b.KVGet(ctx, "ttl")
		return err == nil && !found
	}, 3*time.Second, 10*time.Millisecond)
}
