package redis_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/state/redis"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

// kinds counts what an ErrorHook reports.
type kinds struct {
	mu sync.Mutex
	n  map[string]int
}

func (k *kinds) count(kind string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.n[kind]++
}

func (k *kinds) snapshot() map[string]int {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]int, len(k.n))
	for kind, n := range k.n {
		out[kind] = n
	}
	return out
}

// hooked is a client of url with an ErrorHook counting into the kinds it
// returns.
func hooked(t *testing.T, url string) (goredis.UniversalClient, *kinds) {
	t.Helper()
	c, err := redis.NewClient(url)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	k := &kinds{n: map[string]int{}}
	c.AddHook(redis.ErrorHook(k.count))
	return c, k
}

// TestErrorHookCountsByKind: error replies are counted under their code,
// in commands and in pipelines; misses and a caller giving up are not
// failures; an unreachable server is "connection".
func TestErrorHookCountsByKind(t *testing.T) {
	ctx := context.Background()
	c, k := hooked(t, testenv.RedisURL())
	key := testenv.NewRedisPrefix(t) + "s"
	require.NoError(t, c.Set(ctx, key, "x", time.Minute).Err())

	require.ErrorContains(t, c.HIncrBy(ctx, key, "f", 1).Err(), "WRONGTYPE")
	require.ErrorContains(t, c.Do(ctx, "NOSUCHCOMMAND").Err(), "ERR")
	require.ErrorContains(t, c.EvalSha(ctx, "0000000000000000000000000000000000000000", []string{key}).Err(), "NOSCRIPT")
	_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.Get(ctx, key)
		p.LPush(ctx, key, "v")
		return nil
	})
	require.ErrorContains(t, err, "WRONGTYPE")
	require.ErrorIs(t, c.Get(ctx, key+"-missing").Err(), goredis.Nil)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, c.Get(canceled, key).Err(), context.Canceled)
	require.Equal(t, map[string]int{"WRONGTYPE": 2, "ERR": 1, "NOSCRIPT": 1}, k.snapshot())

	down, kd := hooked(t, "redis://127.0.0.1:1/0?dial_timeout=200ms")
	require.Error(t, down.Get(ctx, "k").Err())
	require.Equal(t, map[string]int{"connection": 1}, kd.snapshot(), "one failed command is one count, its dials included")
}

func TestErrorKind(t *testing.T) {
	for err, want := range map[error]string{
		nil:                      "",
		goredis.Nil:              "",
		context.Canceled:         "",
		context.DeadlineExceeded: "timeout",
		goredis.ErrPoolTimeout:   "timeout",
		goredis.ErrClosed:        "connection",
		errors.New("boom"):       "other",
	} {
		require.Equal(t, want, redis.ErrorKind(err), "%v", err)
	}
}

// TestErrorHookCountsEachCommandOfAPipeline (red team): a failure after a
// miss in a pipeline is counted (the pipeline's error is the miss), and
// script calls that fail count the same whether they shared pipelines
// (REDIS_PIPELINES) or went alone: on main the batched calls counted once
// per pipeline, and a miss hid the failures after it.
func TestErrorHookCountsEachCommandOfAPipeline(t *testing.T) {
	ctx := context.Background()
	c, k := hooked(t, testenv.RedisURL())
	prefix := testenv.NewRedisPrefix(t)
	key := prefix + "s"
	require.NoError(t, c.Set(ctx, key, "x", time.Minute).Err())
	_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.Get(ctx, key+"-missing")
		p.LPush(ctx, key, "v")
		p.HIncrBy(ctx, key, "f", 1)
		return nil
	})
	require.ErrorIs(t, err, goredis.Nil, "go-redis answers the first error: the miss")
	require.Equal(t, map[string]int{"WRONGTYPE": 2}, k.snapshot())

	// Rate limits on a key of another type, 32 at once: each fails with
	// WRONGTYPE, and each is one count, batched or not.
	require.NoError(t, c.HSet(ctx, prefix+"rl:{poisoned}:60000000:5", "f", "v").Err())
	for _, pipelines := range []int{0, 1} {
		kb := &kinds{n: map[string]int{}}
		bc, err := redis.NewClient(testenv.RedisURL())
		require.NoError(t, err)
		bc.AddHook(redis.ErrorHook(kb.count))
		b := redis.New(bc, prefix, redis.WithPipelines(pipelines))
		var wg sync.WaitGroup
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := b.RateLimit(ctx, "poisoned", 5, 1, time.Minute)
				assert.ErrorContains(t, err, "WRONGTYPE")
			}()
		}
		wg.Wait()
		require.NoError(t, b.Close())
		require.Equal(t, map[string]int{"WRONGTYPE": 32}, kb.snapshot(), "pipelines=%d", pipelines)
	}
}
