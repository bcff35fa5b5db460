package redis_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/redis"
	"github.com/jeeves-avionics/dbworker/internal/state/statetest"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

func TestMain(m *testing.M) { testenv.VerifyNoLeaks(m) }

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

// TestDeniedRateLimitReadsLogByRank: on a full log of ExactLimitMax calls, a
// denied call reads O(log n) entries by rank (ZRANGE i i), never the whole
// log (red-team finding 10: ZRANGE 0 -1 cost 1.85 ms of Redis a call).
// MONITOR shows the commands the script runs.
func TestDeniedRateLimitReadsLogByRank(t *testing.T) {
	b := open(t)
	ctx := context.Background()
	const limit, window = state.ExactLimitMax, time.Minute
	key := "full-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	for i := 0; i < limit; i++ {
		res, err := b.RateLimit(ctx, key, limit, 1, window)
		require.NoError(t, err)
		require.True(t, res.Allowed)
	}
	mon := monitor(t)
	costs := []int64{1, limit / 2, limit}
	for _, cost := range costs {
		res, err := b.RateLimit(ctx, key, limit, cost, window)
		require.NoError(t, err)
		require.False(t, res.Allowed)
		require.Positive(t, res.RetryAfterMS)
	}
	cmds := mon.until(t, b, "{"+key+"}")
	var zranges int
	for _, c := range cmds {
		if !strings.EqualFold(c[0], "ZRANGE") {
			continue
		}
		zranges++
		require.GreaterOrEqual(t, len(c), 4, "%q", c)
		start, err1 := strconv.Atoi(c[2])
		stop, err2 := strconv.Atoi(c[3])
		require.NoError(t, errors.Join(err1, err2), "%q", c)
		require.Equal(t, start, stop, "a ZRANGE that reads more than one entry: %q", c)
	}
	require.Positive(t, zranges, "MONITOR saw the script's commands")
	// Newest, oldest, ~log2(1000) = 10 probes and the decisive entry per call.
	require.LessOrEqual(t, zranges, len(costs)*(3+int(math.Ceil(math.Log2(limit)))), "ZRANGE calls: %d", zranges)
}

// monitored is a MONITOR connection's command lines.
type monitored struct {
	conn net.Conn
	r    *bufio.Reader
}

// monitor opens a MONITOR connection to the test Redis.
func monitor(t *testing.T) *monitored {
	t.Helper()
	opts, err := goredis.ParseURL(testenv.RedisURL())
	require.NoError(t, err)
	conn, err := net.DialTimeout("tcp", opts.Addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	m := &monitored{conn: conn, r: bufio.NewReader(conn)}
	if opts.Password != "" {
		_, err = fmt.Fprintf(conn, "AUTH %s %s\r\n", cmpOr(opts.Username, "default"), opts.Password)
		require.NoError(t, err)
		_, err = m.r.ReadString('\n')
		require.NoError(t, err)
	}
	_, err = conn.Write([]byte("MONITOR\r\n"))
	require.NoError(t, err)
	line, err := m.r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "+OK\r\n", line)
	return m
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

var monitorArg = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)

// until sends a marker command through b and returns the commands seen
// before it whose key contains keyPart, each as its arguments.
func (m *monitored) until(t *testing.T, b *redis.Backend, keyPart string) [][]string {
	t.Helper()
	marker := "monitor-marker-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	require.NoError(t, b.Client().Echo(context.Background(), marker).Err())
	require.NoError(t, m.conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	var out [][]string
	for {
		line, err := m.r.ReadString('\n')
		require.NoError(t, err, "waiting for the marker")
		if strings.Contains(line, marker) {
			return out
		}
		var args []string
		for _, a := range monitorArg.FindAllStringSubmatch(line, -1) {
			args = append(args, a[1])
		}
		if len(args) >= 2 && strings.Contains(args[1], keyPart) {
			out = append(out, args)
		}
	}
}
