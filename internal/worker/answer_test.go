package worker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/redis"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

// logLines collects a worker's JSON log lines; zerolog writes each line in
// one Write, from any goroutine.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// failed waits for the "request failed" line of endpoint with code and
// returns its fields. The line is written after the answer is sent.
func (l *logLines) failed(t *testing.T, endpoint, code string) map[string]any {
	t.Helper()
	var found map[string]any
	require.Eventually(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["message"] == "request failed" &&
				line["endpoint"] == endpoint && line["code"] == code {
				found = line
				return true
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond, "no %s line for %s", code, endpoint)
	return found
}

// TestFailedAnswerLogsCause: an INTERNAL or UNAVAILABLE answer tells the
// caller only that something failed; the log line says what: the Redis error
// behind a state failure, the PostgreSQL error behind an XX000.
func TestFailedAnswerLogsCause(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prefix := testenv.NewRedisPrefix(t)
	var rb *redis.Backend
	logs := &logLines{}
	b := setup(t, func(o *options) {
		o.logs = logs
		o.state = func(t testing.TB) state.Backend {
			be, err := redis.Factory(ctx, state.Options{RedisURL: testenv.RedisURL(), KeyPrefix: prefix})
			require.NoError(t, err)
			t.Cleanup(func() { be.Close() })
			rb = be.(*redis.Backend)
			return be
		}
	})

	// A hash where state.kv keeps strings: Redis answers WRONGTYPE, an error
	// reply (as CROSSSLOT is) that no answer of the protocol stands for.
	require.NoError(t, rb.Client().HSet(ctx, prefix+"kv:cfg", "f", "v").Err())
	a := b.request(subjects.StateKV, []byte(`{"op":"get","key":"cfg"}`))
	require.Equal(t, "500", a.status, "body: %s", a.body)
	e := a.errorOf(t)
	require.Equal(t, "INTERNAL", e["code"])
	require.Equal(t, "state backend error", e["message"], "the wire message stays generic")
	require.NotContains(t, string(a.body), "WRONGTYPE")
	line := logs.failed(t, "kv", "INTERNAL")
	require.Equal(t, "error", line["level"])
	require.Equal(t, "state backend error", line["error"])
	require.Contains(t, line["cause"], `kv get "cfg"`)
	require.Contains(t, line["cause"], "WRONGTYPE")

	// PostgreSQL's internal error: the answer has its message, the log its cause.
	b.exec(`{"sql":"DO $$BEGIN RAISE EXCEPTION 'disk on fire' USING ERRCODE = 'XX000'; END$$"}`).errorOf(t)
	line = logs.failed(t, "execute", "INTERNAL")
	require.Contains(t, line["cause"], "SQLSTATE XX000")

	// The backend's client closed under the worker: UNAVAILABLE, with go-redis's error in the log.
	require.NoError(t, rb.Close())
	a = b.request(subjects.StateLock, []byte(`{"op":"status","key":"job"}`))
	require.Equal(t, "503", a.status, "body: %s", a.body)
	require.Equal(t, "state backend unavailable", a.errorOf(t)["message"])
	line = logs.failed(t, "lock", "UNAVAILABLE")
	require.Contains(t, line["cause"], "redis: client is closed")
}

// TestCauseLogWithoutPasswords: a cause that carries a connection string is
// logged with its passwords replaced, and never sent.
func TestCauseLogWithoutPasswords(t *testing.T) {
	t.Parallel()
	logs := &logLines{}
	b := setup(t, func(o *options) {
		o.logs = logs
		o.extra = []endpoint{{name: "leaky", subject: "test.leaky", handle: func(context.Context, *request) ([]byte, error) {
			return nil, errors.New("connect postgres://app:hunter2@db:5432/app, then redis://:hunter3@cache:6379/0?password=hunter4 with password='hunter 5'")
		}}}
	})
	a := b.request("test.leaky", []byte(`{}`))
	require.Equal(t, "500", a.status)
	require.NotContains(t, string(a.body), "hunter")
	line := logs.failed(t, "leaky", "INTERNAL")
	require.Equal(t, "connect postgres://app:xxxxx@db:5432/app, then redis://:xxxxx@cache:6379/0?password=xxxxx with password=xxxxx", line["cause"])
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"dial tcp 127.0.0.1:6379: connect: connection refused":                 "dial tcp 127.0.0.1:6379: connect: connection refused",
		"failed to connect to `user=app database=app`: 10.0.0.1:5432: timeout": "failed to connect to `user=app database=app`: 10.0.0.1:5432: timeout",
		"rediss://default:s3cr3t@redis:6380":                                   "rediss://default:xxxxx@redis:6380",
		"postgres://u@h/db (no password)":                                      "postgres://u@h/db (no password)",
		"host=h password=s3cr3t user=u":                                        "host=h password=xxxxx user=u",
		"PASSWORD = 's3 cr3t'":                                                 "PASSWORD = xxxxx",
	} {
		require.Equal(t, want, redact(in), in)
	}
}
