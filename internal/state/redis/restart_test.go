package redis_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/redis"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

// privateRedis is a redis-server of the test's own, without persistence, so
// the test may flush it or kill it.
type privateRedis struct {
	t    *testing.T
	port int
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		testenv.Unavailable(t, "redis-server", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	r := &privateRedis{t: t, port: port}
	r.start(path)
	t.Cleanup(r.kill)
	return r
}

func (r *privateRedis) start(path string) {
	r.t.Helper()
	r.cmd = exec.Command(path, "--port", fmt.Sprint(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", r.t.TempDir())
	require.NoError(r.t, r.cmd.Start())
	c, err := redis.NewClient(r.url())
	require.NoError(r.t, err)
	defer c.Close()
	require.Eventually(r.t, func() bool { return c.Ping(context.Background()).Err() == nil }, 10*time.Second, 20*time.Millisecond, "redis-server on port %d", r.port)
}

func (r *privateRedis) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// kill is kill -9: nothing is saved.
func (r *privateRedis) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// TestTokensSurviveDataLoss: fencing tokens keep growing after FLUSHALL and
// after kill -9 and a restart of a Redis without persistence (on main they
// went back to 1).
func TestTokensSurviveDataLoss(t *testing.T) {
	t.Parallel()
	r := startPrivateRedis(t)
	ctx := context.Background()
	key := state.CallerLock("vacuum")
	var last int64
	acquireRelease := func(step string) {
		t.Helper()
		c, err := redis.NewClient(r.url())
		require.NoError(t, err)
		b := redis.New(c, "")
		defer b.Close()
		for i := 0; i < 3; i++ {
			got, err := b.AcquireLock(ctx, key, "w", time.Minute)
			require.NoError(t, err)
			require.True(t, got.Acquired, step)
			require.Greater(t, got.Token, last, "%s: acquisition %d", step, i)
			last = got.Token
			rel, err := b.ReleaseLock(ctx, key, got.Lease)
			require.NoError(t, err)
			require.True(t, rel.Released)
		}
	}
	acquireRelease("first")
	c, err := redis.NewClient(r.url())
	require.NoError(t, err)
	require.NoError(t, c.FlushAll(ctx).Err())
	c.Close()
	acquireRelease("after FLUSHALL")
	path := r.cmd.Path
	r.kill()
	r.start(path)
	acquireRelease("after kill -9 and restart")
}
