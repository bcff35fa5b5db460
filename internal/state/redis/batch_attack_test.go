package redis_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/redis"
)

// load runs callers goroutines calling f in a loop until stop is called,
// and returns stop, which waits for them and reports the slowest call and
// the unexpected errors (anything but state.ErrUnavailable, when down).
func load(callers int, f func(ctx context.Context, caller, n int) error) (stop func() (time.Duration, []error)) {
	var wg sync.WaitGroup
	var done atomic.Bool
	var mu sync.Mutex
	var slowest time.Duration
	var errs []error
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !done.Load(); n++ {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				start := time.Now()
				err := f(ctx, i, n)
				took := time.Since(start)
				cancel()
				mu.Lock()
				slowest = max(slowest, took)
				if err != nil && !errors.Is(err, state.ErrUnavailable) {
					errs = append(errs, err)
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(5 * time.Millisecond) // Redis is down: no busy loop
				}
			}
		}()
	}
	return func() (time.Duration, []error) {
		done.Store(true)
		wg.Wait()
		return slowest, errs
	}
}

// TestBatchedCallsAcrossRedisRestart (red team): script calls under load
// while Redis is killed (-9) and started again: no call hangs past the
// client's timeouts, failures are UNAVAILABLE, calls work again once Redis
// is back (its scripts gone: NOSCRIPT), and then a limit still allows
// exactly its limit and a lock has one holder at a time.
func TestBatchedCallsAcrossRedisRestart(t *testing.T) {
	t.Parallel()
	r := startPrivateRedis(t)
	c, err := redis.NewClient(r.url() + "?dial_timeout=200ms&read_timeout=1s&write_timeout=1s")
	require.NoError(t, err)
	b := redis.New(c, "", redis.WithPipelines(2))
	defer b.Close()

	var okCalls atomic.Int64
	stop := load(24, func(ctx context.Context, caller, n int) error {
		var err error
		if n%2 == 0 {
			_, err = b.RateLimit(ctx, fmt.Sprintf("rl-%d", caller%4), 1_000_000, 1, time.Minute)
		} else {
			var got = struct{ lease string }{}
			res, aerr := b.AcquireLock(ctx, state.CallerLock(fmt.Sprintf("l-%d", caller)), "w", time.Minute)
			err = aerr
			if aerr == nil && res.Acquired {
				got.lease = res.Lease
				_, err = b.ReleaseLock(ctx, state.CallerLock(fmt.Sprintf("l-%d", caller)), got.lease)
			}
		}
		if err == nil {
			okCalls.Add(1)
		}
		return err
	})
	waitCalls := func(what string) {
		t.Helper()
		from := okCalls.Load()
		require.Eventually(t, func() bool { return okCalls.Load() > from+100 }, 15*time.Second, 10*time.Millisecond, what)
	}
	waitCalls("calls before the restart")
	path := r.cmd.Path
	r.kill()
	time.Sleep(300 * time.Millisecond)
	r.start(path)
	waitCalls("calls after the restart")
	slowest, errs := stop()
	require.Empty(t, errs)
	require.Less(t, slowest, 4*time.Second, "no call waited much past the client's timeouts")

	// After the restart, under concurrency: a limit allows exactly its
	// limit, a lock is held by one caller at a time.
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := b.RateLimit(context.Background(), "after", 10, 1, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if res.Allowed {
				allowed.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int64(10), allowed.Load())

	var holders, maxHolders, acquired atomic.Int64
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				res, err := b.AcquireLock(context.Background(), state.CallerLock("one"), "w", time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if !res.Acquired {
					continue
				}
				acquired.Add(1)
				n := holders.Add(1)
				for m := maxHolders.Load(); n > m && !maxHolders.CompareAndSwap(m, n); m = maxHolders.Load() {
				}
				time.Sleep(100 * time.Microsecond)
				holders.Add(-1)
				rel, err := b.ReleaseLock(context.Background(), state.CallerLock("one"), res.Lease)
				if err != nil || !rel.Released {
					t.Errorf("release: %+v %v", rel, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Positive(t, acquired.Load())
	require.Equal(t, int64(1), maxHolders.Load(), "two callers held the lock at once")
}

// TestBatchedCallsThroughScriptFlushes (red team): SCRIPT FLUSH while calls
// are in flight: every call is answered (NOSCRIPT is never a caller's
// error) and a shared limit still allows exactly its limit.
func TestBatchedCallsThroughScriptFlushes(t *testing.T) {
	t.Parallel()
	r := startPrivateRedis(t)
	c, err := redis.NewClient(r.url())
	require.NoError(t, err)
	b := redis.New(c, "", redis.WithPipelines(1))
	defer b.Close()
	var allowed atomic.Int64
	stop := load(16, func(ctx context.Context, caller, n int) error {
		res, err := b.RateLimit(ctx, "shared", 500, 1, time.Minute)
		if err == nil && res.Allowed {
			allowed.Add(1)
		}
		if err != nil {
			return fmt.Errorf("call %d of %d: %w", n, caller, err)
		}
		return nil
	})
	for range 20 {
		require.NoError(t, c.ScriptFlush(context.Background()).Err())
		time.Sleep(10 * time.Millisecond)
	}
	_, errs := stop()
	for _, err := range errs {
		require.NoError(t, err)
	}
	for { // what the load left of the limit
		res, err := b.RateLimit(context.Background(), "shared", 500, 1, time.Minute)
		require.NoError(t, err)
		if !res.Allowed {
			break
		}
		allowed.Add(1)
	}
	require.Equal(t, int64(500), allowed.Load(), "every admitted call counted once, no denied one")
}
