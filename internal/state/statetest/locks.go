package statetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

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
