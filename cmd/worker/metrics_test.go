package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/client"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// freeAddr is a local address nobody listens on, for HTTP_ADDR.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// scrape reads the worker's /metrics.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

// TestRedisErrorsCountedByKind: a Redis error reply is counted under its
// code in dbworker_redis_errors_total, and logged with its cause; the
// caller gets a generic INTERNAL.
func TestRedisErrorsCountedByKind(t *testing.T) {
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	ns := testenv.NewNATS(t)
	nc := testenv.Connect(t, ns)
	prefix := testenv.NewRedisPrefix(t)
	addr := freeAddr(t)
	logs := startWorkerAs(t, nc, "redis-errors-"+pg.Schema, "NATS_URL="+ns.ClientURL(), "POSTGRES_URL="+pg.URL,
		"DEPLOYMENT_MODE=distributed", "REDIS_URL="+testenv.RedisURL(), "STATE_KEY_PREFIX="+prefix, "HTTP_ADDR="+addr, "LOG_FORMAT=json")

	opts, err := goredis.ParseURL(testenv.RedisURL())
	require.NoError(t, err)
	rc := goredis.NewClient(opts)
	defer rc.Close()
	require.NoError(t, rc.HSet(ctx, prefix+"kv:a-hash", "f", "v").Err(), "a key of another type, as another program might leave")

	c, err := client.New(nc)
	require.NoError(t, err)
	var v string
	err = c.KV().Get(ctx, "a-hash", &v)
	var me *messages.Error
	require.ErrorAs(t, err, &me)
	require.Equal(t, messages.CodeInternal, me.Code)
	require.NotContains(t, me.Message, "WRONGTYPE", "the caller is not told Redis's words")
	require.Eventually(t, func() bool {
		return strings.Contains(scrape(t, addr), `dbworker_redis_errors_total{kind="WRONGTYPE"} 1`)
	}, 5*time.Second, 50*time.Millisecond)
	require.Contains(t, logs.String(), "WRONGTYPE", "the log line carries the cause")
}
