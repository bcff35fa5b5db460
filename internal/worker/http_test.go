package worker

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

func get(t testenv.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv := httptest.NewServer(b.w.Handler())
	defer srv.Close()

	code, _ := get(t, srv, "/healthz")
	require.Equal(t, 200, code)
	code, body := get(t, srv, "/readyz")
	require.Equal(t, 200, code, body)

	b.ok(`{"sql":"SELECT 1"}`)
	b.exec(`{"sql":"SELEC 1"}`)
	b.ok(`{"key":"k","limit":1,"window_ms":60000}`, subjects.StateRateLimit)
	b.ok(`{"key":"k","limit":1,"window_ms":60000}`, subjects.StateRateLimit)
	b.ok(`{"op":"acquire","key":"l"}`, subjects.StateLock)

	code, body = get(t, srv, "/metrics")
	require.Equal(t, 200, code)
	for _, want := range []string{
		`dbworker_requests_total{code="OK",endpoint="execute"} 1`,
		`dbworker_requests_total{code="SQL_ERROR",endpoint="execute"} 1`,
		`dbworker_request_duration_seconds_count{code="OK",endpoint="execute"} 1`,
		`dbworker_ratelimit_checks_total{outcome="allowed"} 1`,
		`dbworker_ratelimit_checks_total{outcome="denied"} 1`,
		`dbworker_lock_operations_total{op="acquire",outcome="acquired"} 1`,
		`dbworker_pg_pool_max_connections{pool="primary"} 8`,
		`dbworker_lane_running{lane="health"} 0`,
		`dbworker_lane_queued{lane="db"} 0`,
		`go_goroutines`,
	} {
		require.Contains(t, body, want)
	}

	// The gauge drops just after each answer is sent.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, body := get(c, srv, "/metrics")
		assert.Contains(c, body, "dbworker_requests_in_flight 0")
	}, 5*time.Second, 10*time.Millisecond)

	require.NoError(t, b.w.Stop(context.Background()))
	code, body = get(t, srv, "/readyz")
	require.Equal(t, 503, code)
	require.Contains(t, body, "not subscribed")
}
