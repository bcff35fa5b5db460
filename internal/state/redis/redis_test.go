package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/redis"
	"github.com/jeeves-avionics/dbworker/internal/state/statetest"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T) *redis.Backend {
	t.Helper()
	prefix := testenv.NewRedisPrefix(t)
	b, err := redis.Factory(context.Background(), state.Options{RedisURL: testenv.RedisURL(), KeyPrefix: prefix})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b.(*redis.Backend)
}

func TestConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Backend { return open(t) })
}

// TestKeysExpire: rate-limit keys carry a TTL, the fencing counter does not.
func TestKeysExpire(t *testing.T) {
	b := open(t)
	ctx := context.Background()
	prefix := testenv.NewRedisPrefix(t)
	b = redis.New(b.Client(), prefix)
	_, err := b.RateLimit(ctx, "u", 5, 1, 2*time.Second)
	require.NoError(t, err)
	ttl, err := b.Client().PTTL(ctx, prefix+"rl:{u}:2000000:5").Result()
	require.NoError(t, err)
	require.Greater(t, ttl, time.Second)
	require.LessOrEqual(t, ttl, 4*time.Second)
	_, err = b.AcquireLock(ctx, state.CallerLock("l"), "o", time.Minute)
	require.NoError(t, err)
	ttl, err = b.Client().PTTL(ctx, prefix+"lock:{l}:fence").Result()
	require.NoError(t, err)
	require.Equal(t, time.Duration(-1), ttl, "fencing counters never expire")
}

func TestHealthReportsStats(t *testing.T) {
	h := open(t).Health(context.Background())
	require.Equal(t, "healthy", h.Status)
	require.NotNil(t, h.TotalCommandsProcessed)
	require.NotNil(t, h.KeyspaceHits)
	require.NotNil(t, h.KeyspaceMisses)
	require.NotNil(t, h.TotalConnectionsReceived)
}

func TestUnreachableIsUnavailable(t *testing.T) {
	c, err := redis.NewClient("redis://127.0.0.1:1/0?dial_timeout=200ms")
	require.NoError(t, err)
	b := redis.New(c, "x:")
	defer b.Close()
	_, err = b.RateLimit(context.Background(), "k", 1, 1, time.Second)
	require.ErrorIs(t, err, state.ErrUnavailable)
	require.Equal(t, "unhealthy", b.Health(context.Background()).Status)
}

func TestNewClientURLs(t *testing.T) {
	for _, bad := range []string{"", "http://x", "redis://:pw@[bad"} {
		_, err := redis.NewClient(bad)
		require.Error(t, err, bad)
		require.NotContains(t, err.Error(), "pw")
	}
	for _, good := range []string{"redis://127.0.0.1:6379/1", "rediss://u:p@h:6380/0", "redis://h:7000?addr=h:7001&addr=h:7002", "redis://h:26379?master_name=m"} {
		c, err := redis.NewClient(good)
		require.NoError(t, err, good)
		c.Close()
	}
}

// TestRateLimitCostBounded: the key admitted with limit 1e9 grew to
// 200k sorted-set members, and each denied call scanned them all. Above
// state.ExactLimitMax a key is one small hash, whatever the calls; below it
// the log holds at most limit members.
func TestRateLimitCostBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prefix := testenv.NewRedisPrefix(t)
	b := redis.New(open(t).Client(), prefix)
	c := b.Client()
	const calls = 3 * state.ExactLimitMax
	for i := 0; i < calls; i++ {
		res, err := b.RateLimit(ctx, "huge", 1e9, 1, time.Hour)
		require.NoError(t, err)
		require.True(t, res.Allowed)
	}
	for i := 0; i < calls; i++ {
		_, err := b.RateLimit(ctx, "exact", state.ExactLimitMax, 1, time.Hour)
		require.NoError(t, err)
	}
	keys, err := c.Keys(ctx, prefix+"*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	for _, k := range keys {
		switch typ := c.Type(ctx, k).Val(); typ {
		case "zset":
			require.LessOrEqual(t, c.ZCard(ctx, k).Val(), int64(state.ExactLimitMax), k)
		case "hash":
			require.LessOrEqual(t, c.HLen(ctx, k).Val(), int64(3), k)
		case "string":
		default:
			t.Fatalf("%s is a %s", k, typ)
		}
	}
	require.LessOrEqual(t, len(keys), 3, "one hash for the huge key, a log and its sum for the exact one: %v", keys)
}
