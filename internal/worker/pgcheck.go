package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// pgCheck pings PostgreSQL for db.health and /readyz on a connection of its
// own, outside the pool: when user queries hold every pooled connection, the
// check still answers at once and tells a saturated database from a dead one.
// It costs one connection per worker (see docs/operations.md), opened at the
// first check and again after a failure.
type pgCheck struct {
	cl  *pgexec.Client
	cfg *pgx.ConnConfig

	turn   chan struct{} // a lock that gives up with the caller's ctx
	conn   *pgx.Conn
	closed bool
}

func newPGCheck(cl *pgexec.Client) *pgCheck {
	if cl == nil {
		return nil
	}
	cfg := cl.ConnConfig()
	if name := cfg.RuntimeParams["application_name"]; name != "" {
		cfg.RuntimeParams["application_name"] = name + "/health"
	}
	// A check past its deadline closes its connection at once: the pool's
	// handler first asks the server to cancel, on a new connection, and
	// waits up to 5 s for it, which a server that does not answer turns
	// into 5 s more for db.health and /readyz. The check's statement is
	// empty; there is nothing to cancel, and a failed check drops its
	// connection anyway.
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: pc.Conn()}
	}
	return &pgCheck{cl: cl, cfg: cfg, turn: make(chan struct{}, 1)}
}

// ping runs an empty statement on the check's connection, connecting first
// when needed. Checks take turns on the one connection.
func (p *pgCheck) ping(ctx context.Context) error {
	select {
	case p.turn <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("wait for the health check's connection: %w", ctx.Err())
	}
	defer func() { <-p.turn }()
	if p.closed {
		return errors.New("the worker has stopped")
	}
	if p.conn == nil || p.conn.IsClosed() {
		conn, err := pgx.ConnectConfig(ctx, p.cfg)
		if err != nil {
			return fmt.Errorf("connect for the health check: %w", err)
		}
		p.conn = conn
	}
	if err := p.conn.Ping(ctx); err != nil {
		p.drop()
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// drop closes the connection after a failed check; the next check opens a
// new one.
func (p *pgCheck) drop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = p.conn.Close(ctx)
	p.conn = nil
}

// close closes the connection for good.
func (p *pgCheck) close() {
	if p == nil {
		return
	}
	p.turn <- struct{}{}
	defer func() { <-p.turn }()
	p.closed = true
	if p.conn != nil {
		p.drop()
	}
}

// health reports PostgreSQL as db.health shows it: the check's ping and
// latency, and the pool's counters.
func (p *pgCheck) health(ctx context.Context) messages.PostgresHealth {
	cl := p.cl
	h := messages.PostgresHealth{Version: cl.ServerVersion()}
	if v := cl.PGVectorVersion(); v != "" {
		h.PGVector = &v
	}
	st := cl.Pool().Stat()
	h.Pool = messages.PoolHealth{Total: st.TotalConns(), Idle: st.IdleConns(), Acquired: st.AcquiredConns(), Max: st.MaxConns()}
	start := time.Now()
	err := p.ping(ctx)
	h.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		h.Status = messages.HealthUnhealthy
		h.Error = pgerr.AsError(err).Message
		return h
	}
	h.Status = messages.HealthHealthy
	return h
}
