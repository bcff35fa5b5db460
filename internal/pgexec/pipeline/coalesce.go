// Package pipeline sends concurrent single-statement requests of different
// callers together, as one pgconn pipeline on one connection, so that
// PostgreSQL reads, plans and answers several requests per wake-up and the
// worker writes and reads once for all of them (docs/benchmarks.md,
// "Pipelining across callers"). It also holds what a statement needs on
// the wire whichever way it is sent: its arguments encoded by the types the
// server described (Encode) and its result written as JSON (ReadResult).
//
// Each request in a batch is one segment of the pipeline, ended by its own
// Sync, so that an error ends only that segment:
//
//	read-write: [ROLLBACK] DISCARD ALL; guard; stmt; Sync
//	read-only:  [ROLLBACK] DISCARD ALL; BEGIN READ ONLY; guard; stmt; Sync
//	the batch:  [ROLLBACK] DISCARD ALL; setseed; Sync
//
// where ROLLBACK ends the read-only transaction of the segment before, and
// the guard is one SELECT that reseeds random() and sets the request's
// statement_timeout locally, to what is left of its deadline by the server's
// clock, or fails when nothing is left.
//
// What PostgreSQL enforces, not the worker:
//
//   - A request's statement runs only after a DISCARD ALL that succeeded in
//     its own segment: a neighbour's session state (settings, role,
//     prepared statements, LISTEN, advisory locks, temporary objects) is
//     gone, and DISCARD ALL refuses to run inside a transaction block, so
//     a neighbour that left one open makes the server skip the request,
//     which is then sent again on the ordinary path (it did not run).
//   - A request's statement never starts after its deadline: the guard
//     fails first, and the request is answered TIMEOUT. A statement that
//     runs is cancelled by the server at the deadline (statement_timeout).
//     Nothing cancels the shared connection for one caller: a caller whose
//     deadline passes is answered TIMEOUT while the server refuses or
//     cancels its statement. The deadline is converted to the server's clock
//     with an offset measured on the connection (refreshed every minute),
//     good to about half a round trip.
//   - Read-only requests run in BEGIN READ ONLY and are rolled back, as on
//     the ordinary path; the transaction status of every segment is checked
//     against what the request expects, and a connection where it is wrong
//     is closed after the batch.
//
// Which requests come here is the executor's choice: one statement (op
// query or one) that is read-only or reads by its keyword (SELECT, VALUES,
// TABLE, SHOW), not streamed, on a direct connection (not through a
// transaction pooler). A request joins a batch only when Leaders batches
// are already running: alone, it runs at once as a batch of one. A batch
// waits at most Window for a running one to end before it starts anyway, so
// a slow statement delays only the requests in its own batch, up to their
// deadlines.
package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/sqltext"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/stmtcache"
)

// Defaults of Config.
const (
	LeadersDefault  = 2
	WindowDefault   = 500 * time.Microsecond
	MaxBatchDefault = 16
)

// Config configures a Coalescer.
type Config struct {
	// Acquire takes a connection from the pool; it comes back clean (the
	// ordinary path's reset) and goes back clean, or is closed.
	Acquire func(ctx context.Context) (*pgxpool.Conn, error)
	// Types is the worker's type catalog.
	Types *pgjson.Catalog
	// Leaders is how many batches run at once before requests queue.
	Leaders int
	// Window is the most a queued request waits for a batch to end before
	// its own batch starts.
	Window time.Duration
	// MaxBatch bounds a batch; a request that finds the queue full takes
	// the ordinary path.
	MaxBatch int
}

// Request is one caller's statement.
type Request struct {
	Bound    sqltext.Bound
	ReadOnly bool
	Deadline time.Time    // the request's deadline, by the worker's clock
	Shape    pgjson.Shape // MaxBytes included; Emit must be nil

	sd        *pgconn.StatementDescription
	args      Args
	cached    bool // sd came from the cache
	buf       []byte
	err       error
	retry     bool // it did not run: take the ordinary path
	delivered bool
	done      chan struct{}
}

// Coalescer batches the requests of one pool.
type Coalescer struct {
	cfg Config

	mu      sync.Mutex
	running int
	queue   []*Request
	slot    chan struct{} // a batch ended while requests queued

	descMu sync.Mutex
	descs  *stmtcache.LRU // descriptions made on clean connections

	batched atomic.Int64 // requests that shared a pipeline with another

	clockMu  sync.Mutex
	offset   time.Duration // the server's clock minus the worker's
	offsetAt time.Time
}

// New returns a Coalescer; zero values of cfg take their defaults.
func New(cfg Config) *Coalescer {
	if cfg.Leaders <= 0 {
		cfg.Leaders = LeadersDefault
	}
	if cfg.Window <= 0 {
		cfg.Window = WindowDefault
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = MaxBatchDefault
	}
	return &Coalescer{cfg: cfg, slot: make(chan struct{}, 1), descs: stmtcache.New(stmtcache.Size)}
}

// ErrDeadline answers a request whose deadline passed before its statement
// started: it did not run.
var ErrDeadline = errors.New("pipeline: the request's deadline passed before its statement started")

// Do runs r, in a batch with other callers' requests when batches are
// running already. ok is false when r did not run and must take the
// ordinary path (the queue was full, or a neighbour left the connection in
// a state where the server skipped r). When ctx's deadline passes first, Do
// returns ctx's error at once: the server refuses or cancels the statement.
func (c *Coalescer) Do(ctx context.Context, r *Request) (answer []byte, ok bool, err error) {
	r.done = make(chan struct{})
	c.mu.Lock()
	switch {
	case c.running < c.cfg.Leaders && len(c.queue) == 0:
		c.running++
		c.mu.Unlock()
		c.run([]*Request{r})
	case len(c.queue) >= c.cfg.MaxBatch:
		c.mu.Unlock()
		return nil, false, nil
	default:
		c.queue = append(c.queue, r)
		if len(c.queue) == 1 {
			go c.gather()
		}
		c.mu.Unlock()
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, true, ctx.Err()
		}
		<-r.done // cancelled before its deadline: the statement may still run; wait for it
	}
	if r.retry {
		return nil, false, nil
	}
	return r.buf, true, r.err
}

// gather waits for a running batch to end, or for the window, and runs the
// queue as one batch.
func (c *Coalescer) gather() {
	t := time.NewTimer(c.cfg.Window)
	select {
	case <-c.slot:
	case <-t.C:
	}
	t.Stop()
	c.mu.Lock()
	batch := c.queue
	c.queue = nil
	c.running++
	c.mu.Unlock()
	c.run(batch)
}

// Batched is how many requests have shared a pipeline with another.
func (c *Coalescer) Batched() int64 {
	return c.batched.Load()
}

// run runs a batch on a connection of its own and answers every request.
func (c *Coalescer) run(batch []*Request) {
	defer func() {
		c.mu.Lock()
		c.running--
		if len(c.queue) > 0 {
			select {
			case c.slot <- struct{}{}:
			default:
			}
		}
		c.mu.Unlock()
	}()
	if len(batch) > 1 {
		c.batched.Add(int64(len(batch)))
	}
	last := batch[0].Deadline
	for _, r := range batch {
		if r.Deadline.After(last) {
			last = r.Deadline
		}
	}
	// The batch's own context outlives every deadline in it: what bounds a
	// statement is the server's statement_timeout, never a cancel of the
	// connection that other callers share.
	ctx, cancel := context.WithDeadline(context.Background(), last.Add(10*time.Second))
	defer cancel()
	conn, err := c.cfg.Acquire(ctx)
	if err != nil {
		for _, r := range batch {
			r.answer(nil, err)
		}
		return
	}
	if c.send(ctx, conn.Conn().PgConn(), batch) {
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = conn.Conn().Close(closeCtx)
		cancel()
	}
	conn.Release()
	for _, r := range batch {
		r.answer(r.buf, r.err)
	}
}

// answer delivers r's result once.
func (r *Request) answer(buf []byte, err error) {
	if r.delivered {
		return
	}
	r.buf, r.err, r.delivered = buf, err, true
	close(r.done)
}

// description returns the cached description of sql, or nil.
func (c *Coalescer) description(sql string) *pgconn.StatementDescription {
	c.descMu.Lock()
	defer c.descMu.Unlock()
	return c.descs.Get(sql)
}

func (c *Coalescer) putDescription(sd *pgconn.StatementDescription) {
	c.descMu.Lock()
	c.descs.Put(sd)
	c.descMu.Unlock()
}

func (c *Coalescer) dropDescription(sql string) {
	c.descMu.Lock()
	c.descs.Remove(sql)
	c.descMu.Unlock()
}
