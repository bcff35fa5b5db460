package worker

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/redis"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

func redisState(t testing.TB) state.Backend {
	prefix := testenv.NewRedisPrefix(t)
	b, err := redis.Factory(context.Background(), state.Options{RedisURL: testenv.RedisURL(), KeyPrefix: prefix})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

var backends = map[string]func(*options){
	"memory": func(*options) {},
	"redis":  func(o *options) { o.state = redisState },
}

// TestStateEndpoints runs each state endpoint over NATS on both backends with
// the same requests and the same expected answers.
func TestStateEndpoints(t *testing.T) {
	t.Parallel()
	for name, opt := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, opt)
			ask := func(subject, body string) map[string]any {
				t.Helper()
				a := b.request(subject, []byte(body))
				require.Empty(t, a.status, "%s %s: %s", subject, body, a.body)
				return a.json(t)
			}
			// The walkthrough: allowed, allowed, denied.
			for i, want := range []bool{true, true, false} {
				res := ask(subjects.StateRateLimit, `{"key":"u1","limit":2,"window_ms":1000}`)
				require.Equal(t, want, res["allowed"], "call %d: %v", i, res)
			}
			res := ask(subjects.StateRateLimit, `{"key":"u2","limit":5,"window_seconds":60,"cost":2}`)
			require.Equal(t, "3", fmt.Sprint(res["remaining"]))

			acq := ask(subjects.StateLock, `{"op":"acquire","key":"job:1","ttl_ms":30000,"owner":"svc-a"}`)
			require.Equal(t, true, acq["acquired"])
			require.NotEmpty(t, acq["expires_at"])
			other := ask(subjects.StateLock, `{"op":"acquire","key":"job:1","ttl_seconds":30,"owner":"svc-b","wait_ms":50}`)
			require.Equal(t, false, other["acquired"])
			require.Equal(t, "svc-a", other["owner"])
			require.Equal(t, acq["token"], other["token"], "a refused acquire shows the holder's token")
			require.NotContains(t, other, "lease")
			lease, _ := acq["lease"].(string)
			require.NotEmpty(t, lease)
			// The owner's name no longer releases or refreshes: the lease does.
			noLease := b.request(subjects.StateLock, []byte(`{"op":"release","key":"job:1","owner":"svc-a"}`)).errorOf(t)
			require.Equal(t, "BAD_REQUEST", noLease["code"])
			require.Equal(t, map[string]any{"released": false, "reason": "not_owner"}, ask(subjects.StateLock, `{"op":"release","key":"job:1","lease":"svc-a"}`))
			st := ask(subjects.StateLock, `{"op":"status","key":"job:1"}`)
			require.Equal(t, true, st["held"])
			require.Equal(t, acq["token"], st["token"])
			require.NotContains(t, st, "lease")
			require.Equal(t, true, ask(subjects.StateLock, `{"op":"refresh","key":"job:1","lease":"`+lease+`","ttl_ms":60000}`)["refreshed"])
			require.Equal(t, map[string]any{"released": true}, ask(subjects.StateLock, `{"op":"release","key":"job:1","lease":"`+lease+`"}`))
			anon := ask(subjects.StateLock, `{"op":"acquire","key":"job:2"}`)
			require.NotEmpty(t, anon["owner"], "the worker makes an owner when none is given")

			// wait_ms: a waiter gets the lock once its holder's TTL passes.
			ask(subjects.StateLock, `{"op":"acquire","key":"job:3","ttl_ms":200,"owner":"a"}`)
			waited := ask(subjects.StateLock, `{"op":"acquire","key":"job:3","owner":"b","wait_ms":3000}`)
			require.Equal(t, true, waited["acquired"])

			set := ask(subjects.CacheEmbedding, `{"op":"set","text":"hello","model":"m1","vector":[0.5,-1.25,3e-8]}`)
			hash := set["hashes"].([]any)[0].(string)
			require.Equal(t, state.EmbeddingKey("m1", "hello"), hash)
			got := ask(subjects.CacheEmbedding, `{"op":"get","hash":"`+hash+`"}`)
			require.Equal(t, true, got["hit"])
			require.Equal(t, "[0.5 -1.25 3e-8]", fmt.Sprint(got["vector"]))
			ask(subjects.CacheEmbedding, `{"op":"mset","items":[{"hash":"x","vector":[1]},{"hash":"y","vector":[2,3]}],"ttl_ms":60000}`)
			mget := ask(subjects.CacheEmbedding, `{"op":"mget","hashes":["y","nope","x"]}`)
			require.Equal(t, "[[2 3] <nil> [1]]", fmt.Sprint(mget["vectors"]))
			require.Equal(t, "2", fmt.Sprint(mget["hits"]))
			miss := ask(subjects.CacheEmbedding, `{"op":"get","text":"other","model":"m1"}`)
			require.Equal(t, false, miss["hit"])
			require.Nil(t, miss["vector"])
			require.Equal(t, "2", fmt.Sprint(ask(subjects.CacheEmbedding, `{"op":"delete","hashes":["x","y","nope"]}`)["deleted"]))

			require.Equal(t, true, ask(subjects.StateKV, `{"op":"set","key":"cfg","value":{"a":[1,"two"]},"ttl_ms":60000}`)["stored"])
			kv := ask(subjects.StateKV, `{"op":"get","key":"cfg"}`)
			require.Equal(t, true, kv["found"])
			require.Equal(t, `{"a":[1,"two"]}`, mustJSON(t, kv["value"]))
			require.Equal(t, "1", fmt.Sprint(ask(subjects.StateKV, `{"op":"incr","key":"n"}`)["value"]))
			require.Equal(t, "11", fmt.Sprint(ask(subjects.StateKV, `{"op":"incr","key":"n","amount":10}`)["value"]))
			require.Equal(t, true, ask(subjects.StateKV, `{"op":"delete","key":"cfg"}`)["deleted"])
			require.Equal(t, map[string]any{"found": false, "value": nil}, ask(subjects.StateKV, `{"op":"get","key":"cfg"}`))
		})
	}
}

func TestStateBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cases := []struct{ subject, body string }{
		{subjects.StateLock, `{"op":"grab","key":"k"}`},
		{subjects.StateLock, `{"key":"k"}`},
		{subjects.StateLock, `{"op":"acquire"}`},
		{subjects.StateLock, `{"op":"acquire","key":"k","ttl_ms":-5}`},
		{subjects.StateLock, `{"op":"acquire","key":"k","ttl_ms":10,"ttl_seconds":1}`},
		{subjects.StateLock, `{"op":"acquire","key":"k","wait_ms":-1}`},
		{subjects.StateLock, `{"op":"release","key":"k"}`},
		{subjects.StateLock, `{"op":"acquire","key":"` + strings.Repeat("k", 2000) + `"}`},
		{subjects.StateRateLimit, `{"key":"k","window_ms":1000}`},
		{subjects.StateRateLimit, `{"limit":1,"window_ms":1000}`},
		{subjects.StateRateLimit, `{"key":"k","limit":1}`},
		{subjects.StateRateLimit, `{"key":"k","limit":-1,"window_ms":1000}`},
		{subjects.StateRateLimit, `{"key":"k","limit":1,"window_ms":0}`},
		{subjects.StateRateLimit, `{"key":"k","limit":1,"window_ms":1000,"cost":-2}`},
		{subjects.StateRateLimit, `{"key":"k","limit":"ten","window_ms":1000}`},
		{subjects.CacheEmbedding, `{"op":"set","hash":"h","vector":[1,"NaN"]}`},
		{subjects.CacheEmbedding, `{"op":"set","hash":"h","vector":[1e39]}`},
		{subjects.CacheEmbedding, `{"op":"set","hash":"h","vector":[` + strings.Repeat("1,", 19999) + `1]}`},
		{subjects.CacheEmbedding, `{"op":"set","hash":"h","vector":[]}`},
		{subjects.CacheEmbedding, `{"op":"set","text":"t","vector":[1]}`},
		{subjects.CacheEmbedding, `{"op":"get"}`},
		{subjects.CacheEmbedding, `{"op":"set","hash":"h","vector":[1],"ttl_ms":-1}`},
		{subjects.CacheEmbedding, `{"op":"mget","hashes":[]}`},
		{subjects.CacheEmbedding, `{"op":"fetch","hash":"h"}`},
		{subjects.StateKV, `{"op":"set","key":"k"}`},
		{subjects.StateKV, `{"op":"get"}`},
		{subjects.StateKV, `{"op":"pop","key":"k"}`},
		{subjects.StateKV, `{"op":"set","key":"k","value":1,"ttl_ms":-1}`},
		{subjects.StateKV, `{"op":"get","key":"k","extra":true}`},
	}
	for _, tc := range cases {
		a := b.request(tc.subject, []byte(tc.body))
		require.Equal(t, "400", a.status, "%s %.120s: %s", tc.subject, tc.body, a.body)
		require.Equal(t, "BAD_REQUEST", a.errorOf(t)["code"])
	}
	b.ok(`{"op":"set","key":"s","value":"text"}`, subjects.StateKV)
	e := b.request(subjects.StateKV, []byte(`{"op":"incr","key":"s"}`)).errorOf(t)
	require.Equal(t, "BAD_REQUEST", e["code"])
}

// TestRedisRestart: with Redis down, state.* answers UNAVAILABLE while db.*
// keeps working, and state.* recovers when Redis is back, without a restart.
func TestRedisRestart(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("redis-server"); err != nil {
		testenv.Unavailable(t, "redis-server", err)
	}
	port := freePort(t)
	dir := t.TempDir()
	start := func() *exec.Cmd {
		cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
		require.NoError(t, cmd.Start())
		require.Eventually(t, func() bool {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err == nil {
				c.Close()
			}
			return err == nil
		}, 10*time.Second, 20*time.Millisecond)
		return cmd
	}
	srv := start()
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	url := fmt.Sprintf("redis://127.0.0.1:%d/0?dial_timeout=300ms&read_timeout=500ms&write_timeout=500ms", port)
	b := setup(t, func(o *options) {
		o.maintenance = true
		o.state = func(t testing.TB) state.Backend {
			be, err := redis.Factory(context.Background(), state.Options{RedisURL: url})
			require.NoError(t, err)
			t.Cleanup(func() { be.Close() })
			return be
		}
	})
	rl := `{"key":"r","limit":100,"window_ms":60000}`
	require.Empty(t, b.request(subjects.StateRateLimit, []byte(rl)).status)

	require.NoError(t, srv.Process.Kill())
	_ = srv.Wait()
	for _, subj := range []string{subjects.StateRateLimit, subjects.StateLock, subjects.StateKV, subjects.CacheEmbedding} {
		body := map[string]string{
			subjects.StateRateLimit: rl,
			subjects.StateLock:      `{"op":"acquire","key":"l"}`,
			subjects.StateKV:        `{"op":"get","key":"k"}`,
			subjects.CacheEmbedding: `{"op":"get","hash":"h"}`,
		}[subj]
		a := b.request(subj, []byte(body))
		require.Equal(t, "503", a.status, "%s: %s", subj, a.body)
		require.Equal(t, "UNAVAILABLE", a.errorOf(t)["code"])
	}
	b.ok(`{"sql":"SELECT 1"}`)
	h := b.request(subjects.DBHealth, nil).json(t)
	require.Equal(t, "degraded", h["status"])
	// No lock, no run: maintenance fails closed.
	b.pg.Exec(t, "CREATE TABLE v (x int)")
	a := b.request(subjects.DBVacuum, []byte(`{"table":"v"}`))
	require.Equal(t, "503", a.status, "%s", a.body)
	require.Equal(t, "UNAVAILABLE", a.errorOf(t)["code"])

	srv = start()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		a, err := b.send(subjects.StateRateLimit, []byte(rl))
		require.NoError(c, err)
		assert.Empty(c, a.status, "%s", a.body)
	}, 10*time.Second, 50*time.Millisecond, "state.* recovers without a worker restart")
	require.Equal(t, "healthy", b.request(subjects.DBHealth, nil).json(t)["status"])
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
