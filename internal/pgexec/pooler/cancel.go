package pooler

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// ContextWatcher returns what a connection does when a query's context ends:
// it sends a cancel request and keeps the connection, which is closed only
// when the server has not answered deadlineDelay later. Through a transaction
// pooler the cancel request is always seen through to its end: pgconn's
// handler closes it as soon as the query returns, and PgBouncer 1.18 exits
// when a cancel request's connection closes before it has passed the cancel
// on ("bad client state: 0", PgBouncer issue 801).
func ContextWatcher(m Mode, pc *pgconn.PgConn, deadlineDelay time.Duration) ctxwatch.Handler {
	if m == Transaction {
		return &cancelToTheEnd{conn: pc, delay: deadlineDelay}
	}
	return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: deadlineDelay}
}

// cancelToTheEnd is pgconn.CancelRequestContextWatcherHandler, but for a
// cancel request that is not cut short when the query returns.
type cancelToTheEnd struct {
	conn  *pgconn.PgConn
	delay time.Duration
	done  chan struct{}
}

func (h *cancelToTheEnd) HandleCancel(context.Context) {
	h.done = make(chan struct{})
	deadline := time.Now().Add(h.delay)
	_ = h.conn.Conn().SetDeadline(deadline)
	go func(done chan struct{}) {
		defer close(done)
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		_ = h.conn.CancelRequest(ctx)
		// As pgconn does: the cancel may reach the server connection a little
		// after the pooler closed the request's connection; a query sent at
		// once could be the one it cancels.
		time.Sleep(100 * time.Millisecond)
	}(h.done)
}

func (h *cancelToTheEnd) HandleUnwatchAfterCancel() {
	<-h.done
	_ = h.conn.Conn().SetDeadline(time.Time{})
}
