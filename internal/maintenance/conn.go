package maintenance

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/jeeves-avionics/dbworker/internal/metrics"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// vacuumLockClass is the first key of every maintenance advisory lock
// (pg_try_advisory_lock(int4, int4)); the second is the target's OID, 0 for
// the database. "dbwv" in ASCII.
const vacuumLockClass int32 = 0x64627776

// maintConn is a run's dedicated connection: one slot of the maintenance
// connection budget, the target's advisory lock for as long as it is open, and
// the server notices (VERBOSE output) it receives.
type maintConn struct {
	conn *pgx.Conn
	free func()

	mu      sync.Mutex
	notices []string
}

// output returns the notices received so far.
func (c *maintConn) output() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.notices...)
}

// close closes the connection, which frees the advisory lock, and gives the
// slot back.
func (c *maintConn) close(ctx context.Context) {
	if c.conn != nil {
		_ = c.conn.Close(ctx)
	}
	c.free()
}

// takeSlot takes one of MaxConnections slots. A job waits for one until ctx
// ends; a request does not wait: with the budget in use it is UNAVAILABLE at
// once, since it would hold a request slot of the worker meanwhile.
func (s *Service) takeSlot(ctx context.Context, wait bool) (func(), error) {
	free := func() { <-s.conns }
	select {
	case s.conns <- struct{}{}:
		return free, nil
	default:
	}
	if !wait {
		s.cfg.Metrics.MaintenanceRun("vacuum", metrics.SourceRequest, "busy")
		return nil, messages.Errorf(messages.CodeUnavailable,
			"every maintenance connection of this worker is in use (MAINT_MAX_CONNECTIONS=%d): retry later, or queue the VACUUM with async", s.cfg.MaxConnections)
	}
	select {
	case s.conns <- struct{}{}:
		return free, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// openConn takes a slot (see takeSlot), opens the run's dedicated connection
// and takes the target's advisory lock on it, so two runs of one target never
// overlap even if the state backend forgot its lock. It returns *lockedError when
// another session holds the advisory lock, a *messages.Error when the budget
// is in use, and other errors when PostgreSQL could not be reached.
func (s *Service) openConn(ctx context.Context, t target, timeout time.Duration, wait bool) (*maintConn, error) {
	free, err := s.takeSlot(ctx, wait)
	if err != nil {
		return nil, err
	}
	cc, err := s.pg.SessionConnConfig()
	if err != nil {
		free()
		return nil, messages.Wrap(messages.CodeForbidden, err, "VACUUM is refused: %v", err)
	}
	mc := &maintConn{free: free}
	cc.RuntimeParams["application_name"] = s.applicationName()
	cc.RuntimeParams["lock_timeout"] = fmt.Sprint(s.cfg.LockTimeout.Milliseconds())
	cc.RuntimeParams["statement_timeout"] = fmt.Sprint(timeout.Milliseconds())
	cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		line := n.Message
		if n.Detail != "" {
			line += "\n" + n.Detail
		}
		mc.mu.Lock()
		mc.notices = append(mc.notices, line)
		mc.mu.Unlock()
	}
	if mc.conn, err = pgx.ConnectConfig(ctx, cc); err != nil {
		free()
		return nil, fmt.Errorf("connect for vacuum: %w", err)
	}
	var got bool
	if err := mc.conn.QueryRow(ctx, advisoryLockQuery, vacuumLockClass, int32(t.oid)).Scan(&got); err != nil {
		mc.close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("take the advisory lock of %s: %w", t.lockKey(), err)
	}
	if !got {
		mc.close(context.WithoutCancel(ctx))
		holder := "another session"
		var app string
		var pid int32
		if s.catalog().QueryRow(ctx, advisoryHolderQuery, vacuumLockClass, int32(t.oid)).Scan(&app, &pid) == nil {
			holder = fmt.Sprintf("%s (pid %d)", app, pid)
		}
		return nil, &lockedError{target: t, holder: holder, expiresIn: s.cfg.LockTTL, advisory: true}
	}
	if major, _, _ := strings.Cut(mc.conn.PgConn().ParameterStatus("server_version"), "."); len(major) >= 2 && major >= "14" {
		// A worker that dies mid-run must not leave its VACUUM running.
		_, _ = mc.conn.Exec(ctx, "SET client_connection_check_interval = 1000")
	}
	return mc, nil
}

// applicationName is the application_name of this worker's maintenance
// connections: pg_stat_activity counts them by it.
func (s *Service) applicationName() string {
	return "dbworker/" + s.cfg.WorkerID + "/vacuum"
}
