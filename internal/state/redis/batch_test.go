package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/redis"
	"github.com/jeeves-avionics/dbworker/internal/state/statetest"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

// batched opens a backend whose script calls share at most one pipeline
// at a time, so that concurrent calls are batched as often as they can be.
func batched(t *testing.T) *redis.Backend {
	b, _ := batchedWithPrefix(t)
	return b
}

func batchedWithPrefix(t *testing.T) (*redis.Backend, string) {
	t.Helper()
	c, err := redis.NewClient(testenv.RedisURL())
	require.NoError(t, err)
	prefix := testenv.NewRedisPrefix(t)
	b := redis.New(c, prefix, redis.WithPipelines(1))
	t.Cleanup(func() { b.Close() })
	return b, prefix
}

func TestConformanceBatchedAndDirect(t *testing.T) {
	t.Run("one pipeline", func(t *testing.T) {
		statetest.Run(t, func(t *testing.T) state.Backend { return batched(t) })
	})
	t.Run("direct", func(t *testing.T) {
		statetest.Run(t, func(t *testing.T) state.Backend {
			c, err := redis.NewClient(testenv.RedisURL())
			require.NoError(t, err)
			b := redis.New(c, testenv.NewRedisPrefix(t), redis.WithPipelines(0))
			t.Cleanup(func() { b.Close() })
			return b
		})
	})
}

// TestBatchedCallsAreIsolated: many concurrent calls sharing pipelines each
// get their own answer: a shared limit allows exactly its limit, every
// caller's own key counts only its own calls, and a call whose script fails
// (its key holds a value of another type) fails alone.
func TestBatchedCallsAreIsolated(t *testing.T) {
	b, prefix := batchedWithPrefix(t)
	ctx := context.Background()
	// A key of another type under the rate limit's name: its script fails
	// with WRONGTYPE inside the pipeline.
	require.NoError(t, b.Client().HSet(ctx, prefix+"rl:{poisoned}:60000000:5", "f", "v").Err())
	sizes := &pipelineSizes{}
	b.Client().AddHook(sizes)

	const callers, calls, shared = 48, 20, 100
	var allowedShared atomic.Int64
	errs := make(chan error, callers*calls)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := fmt.Sprintf("own-%d", i)
			for n := range calls {
				switch n % 3 {
				case 0:
					r, err := b.RateLimit(ctx, "shared", shared, 1, time.Minute)
					if err != nil {
						errs <- fmt.Errorf("shared: %w", err)
						continue
					}
					if r.Allowed {
						allowedShared.Add(1)
					}
				case 1:
					r, err := b.RateLimit(ctx, own, 1000, 1, time.Minute)
					switch {
					case err != nil:
						errs <- fmt.Errorf("%s: %w", own, err)
					case !r.Allowed || r.Remaining != int64(1000-(n/3+1)):
						errs <- fmt.Errorf("%s call %d: %+v, another caller's calls counted", own, n, r)
					}
				case 2:
					_, err := b.RateLimit(ctx, "poisoned", 5, 1, time.Minute)
					if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
						errs <- fmt.Errorf("poisoned: want WRONGTYPE, got %v", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.Equal(t, int64(shared), allowedShared.Load(), "exactly the limit is allowed: no call lost or sent twice")
	require.Greater(t, sizes.max.Load(), int64(1), "calls shared pipelines")
}

// pipelineSizes is a go-redis hook that keeps the largest pipeline seen.
type pipelineSizes struct{ max atomic.Int64 }

func (h *pipelineSizes) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (h *pipelineSizes) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return next
}

func (h *pipelineSizes) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		for n := int64(len(cmds)); ; {
			m := h.max.Load()
			if n <= m || h.max.CompareAndSwap(m, n) {
				break
			}
		}
		return next(ctx, cmds)
	}
}

// TestBatchedCallsSurviveScriptFlush: after Redis forgets its scripts
// (a restart, SCRIPT FLUSH), batched calls fall back to sending the source.
func TestBatchedCallsSurviveScriptFlush(t *testing.T) {
	b := batched(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for round := range 3 {
		require.NoError(t, b.Client().ScriptFlush(ctx).Err())
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := b.RateLimit(ctx, fmt.Sprintf("flush-%d-%d", round, i), 10, 1, time.Minute); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestBatchedCallerGivesUp: a call whose caller gives up while it waits for
// a pipeline returns at once with the caller's error and is never sent; the
// calls around it are answered.
func TestBatchedCallerGivesUp(t *testing.T) {
	b := batched(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	var ok, gaveUp atomic.Int64
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithCancel(ctx)
			if i%2 == 1 {
				cancel() // gave up before, or while, waiting
			}
			defer cancel()
			_, err := b.RateLimit(cctx, "give-up", 1000, 1, time.Minute)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, context.Canceled):
				gaveUp.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	require.GreaterOrEqual(t, ok.Load(), int64(32), "every caller that waited got its answer")
	r, err := b.RateLimit(ctx, "give-up", 1000, 1, time.Minute)
	require.NoError(t, err)
	require.Equal(t, int64(1000-ok.Load()-1), r.Remaining, "a call answered with the caller's error was not counted, or one answered ok was")
}

// TestBatchedCallsWhileRedisIsDown: every call of a pipeline whose
// connection fails is UNAVAILABLE; none hangs.
func TestBatchedCallsWhileRedisIsDown(t *testing.T) {
	c, err := redis.NewClient("redis://127.0.0.1:1/0?dial_timeout=200ms")
	require.NoError(t, err)
	b := redis.New(c, "x:", redis.WithPipelines(1))
	defer b.Close()
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := b.RateLimit(context.Background(), "k", 1, 1, time.Second)
			if !errors.Is(err, state.ErrUnavailable) {
				t.Errorf("want unavailable, got %v", err)
			}
		}()
	}
	wg.Wait()
}
