package pgexec

import (
	"context"
	"time"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Health pings the database and reports its latency, version, pgvector and the
// pool's counters.
func (c *Client) Health(ctx context.Context) messages.PostgresHealth {
	h := messages.PostgresHealth{Version: c.serverVersion}
	if c.pgvector != "" {
		v := c.pgvector
		h.PGVector = &v
	}
	st := c.pool.Stat()
	h.Pool = messages.PoolHealth{Total: st.TotalConns(), Idle: st.IdleConns(), Acquired: st.AcquiredConns(), Max: st.MaxConns()}
	start := time.Now()
	conn, err := c.Acquire(ctx)
	if err == nil {
		err = conn.Ping(ctx)
		conn.Release()
	}
	h.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		h.Status = messages.HealthUnhealthy
		h.Error = AsError(err).Message
		return h
	}
	h.Status = messages.HealthHealthy
	return h
}
