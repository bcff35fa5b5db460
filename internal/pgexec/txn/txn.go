// Package txn keeps the interactive transactions of one worker: each a
// pgexec.Tx (a connection held across requests) with an unguessable id, an
// owner, an idle timeout and a maximum lifetime. It bounds how many are open
// at once, rolls back those that outlive their timeouts, and at shutdown
// gives the open ones until a deadline to finish before rolling them back.
//
// A transaction whose worker dies is rolled back by PostgreSQL when the
// connection drops; nothing here outlives the process.
package txn

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Defaults of Config.
const (
	IdleTimeoutDefault = 10 * time.Second
	LifetimeDefault    = time.Minute
	MaxLifetimeDefault = 10 * time.Minute
)

// Config bounds a Registry's transactions.
type Config struct {
	// MaxOpen bounds the transactions open at once, each holding a pooled
	// connection. Required.
	MaxOpen int
	// IdleTimeout is a transaction's idle timeout when begin names none.
	IdleTimeout time.Duration
	// Lifetime is a transaction's maximum lifetime when begin names none.
	Lifetime time.Duration
	// MaxLifetime caps both a begin's idle timeout and its lifetime.
	MaxLifetime time.Duration
}

// Begin is what a caller asks of a new transaction.
type Begin struct {
	pgexec.TxOptions
	// Owner is who may use the transaction: requests from another owner are
	// answered as if it did not exist.
	Owner string
	// IdleTimeout and Lifetime, when positive, replace the defaults (capped
	// by Config.MaxLifetime).
	IdleTimeout, Lifetime time.Duration
}

// Opened describes a transaction Begin opened.
type Opened struct {
	ID          string
	ReadOnly    bool
	IdleTimeout time.Duration
	Lifetime    time.Duration
}

// Registry holds the open transactions of one executor. It is safe for
// concurrent use.
type Registry struct {
	ex  *pgexec.Executor
	cfg Config

	mu      sync.Mutex
	open    map[string]*entry
	pending int           // begins that hold a place but no transaction yet
	closing bool          // Close began: no more begins
	changed chan struct{} // closed and replaced when a transaction ends
}

// New returns an empty registry over ex.
func New(ex *pgexec.Executor, cfg Config) (*Registry, error) {
	switch {
	case ex == nil:
		return nil, errors.New("txn: an Executor is required")
	case cfg.MaxOpen <= 0:
		return nil, fmt.Errorf("txn: MaxOpen must be positive, got %d", cfg.MaxOpen)
	case cfg.IdleTimeout < 0, cfg.Lifetime < 0, cfg.MaxLifetime < 0:
		return nil, errors.New("txn: timeouts must not be negative")
	}
	cfg.MaxLifetime = cmp.Or(cfg.MaxLifetime, MaxLifetimeDefault)
	cfg.Lifetime = cmp.Or(cfg.Lifetime, min(LifetimeDefault, cfg.MaxLifetime))
	cfg.IdleTimeout = cmp.Or(cfg.IdleTimeout, min(IdleTimeoutDefault, cfg.Lifetime))
	if cfg.Lifetime > cfg.MaxLifetime || cfg.IdleTimeout > cfg.MaxLifetime {
		return nil, fmt.Errorf("txn: the default lifetime %s and idle timeout %s must not exceed MaxLifetime %s", cfg.Lifetime, cfg.IdleTimeout, cfg.MaxLifetime)
	}
	return &Registry{ex: ex, cfg: cfg, open: make(map[string]*entry), changed: make(chan struct{})}, nil
}

// entry is one open transaction and its timers.
type entry struct {
	r     *Registry
	id    string
	owner string
	tx    *pgexec.Tx
	idle  time.Duration

	mu        sync.Mutex
	busy      int                     // requests running in it: 0 or 1, 2 while a rollback interrupts
	idleSince time.Time               // when the last request ended
	ended     bool                    // ended or ending: no request starts
	cancel    context.CancelCauseFunc // of the request that came last, while busy
	idleT     *time.Timer
	expireT   *time.Timer
}

// errGone answers a request to a transaction that is not open here, or not
// the caller's.
func errGone() error {
	return messages.Errorf(messages.CodeTxGone, "no such transaction: it has ended (committed, rolled back, timed out, or its worker stopped), or it is not yours; begin a new one")
}

// Begin opens a transaction. Past MaxOpen it answers UNAVAILABLE at once.
func (r *Registry) Begin(ctx context.Context, b Begin) (Opened, error) {
	idle, life := r.cfg.IdleTimeout, r.cfg.Lifetime
	if b.Lifetime > 0 {
		life = min(b.Lifetime, r.cfg.MaxLifetime)
	}
	if b.IdleTimeout > 0 {
		idle = min(b.IdleTimeout, r.cfg.MaxLifetime)
	}
	idle = min(idle, life)
	r.mu.Lock()
	switch {
	case r.closing:
		r.mu.Unlock()
		return Opened{}, messages.Errorf(messages.CodeUnavailable, "the worker is shutting down; begin on another")
	case len(r.open)+r.pending >= r.cfg.MaxOpen:
		r.mu.Unlock()
		return Opened{}, messages.Errorf(messages.CodeUnavailable, "the worker holds %d open transactions, its limit (DB_TX_MAX_OPEN); retry, or end the ones you hold", r.cfg.MaxOpen)
	}
	r.pending++
	r.mu.Unlock()

	tx, err := r.ex.BeginTx(ctx, b.TxOptions)
	r.mu.Lock()
	closing := r.closing
	r.mu.Unlock()
	if err == nil && closing { // Close began while the connection was being taken
		_ = tx.Rollback(context.WithoutCancel(ctx))
		err = messages.Errorf(messages.CodeUnavailable, "the worker is shutting down; begin on another")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending--
	r.signal()
	if err != nil {
		return Opened{}, err
	}
	e := &entry{r: r, id: newID(), owner: b.Owner, tx: tx, idle: idle, idleSince: time.Now()}
	e.idleT = time.AfterFunc(idle, func() { e.expire(false) })
	e.expireT = time.AfterFunc(life, func() { e.expire(true) })
	r.open[e.id] = e
	return Opened{ID: e.id, ReadOnly: tx.ReadOnly(), IdleTimeout: idle, Lifetime: life}, nil
}

// newID returns 128 random bits in hex: a transaction's id is the key to its
// subject, so it must not be guessable.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// errBusy answers a request to a transaction that is running another.
func errBusy() error {
	return messages.Errorf(messages.CodeConflict, "the transaction is running another request: send its requests one at a time, each after the answer to the last (a rollback may interrupt)")
}

// lookup returns the caller's open transaction id, marked busy: its idle
// timer is stopped until done is called. Requests to a transaction run one
// at a time: one that finds another running is refused at once, so that no
// request waits holding a slot of the tx lane; a rollback (interrupt) does
// not wait, it cancels the request running.
func (r *Registry) lookup(ctx context.Context, id, owner string, interrupt bool) (*entry, context.Context, func(), error) {
	r.mu.Lock()
	e, ok := r.open[id]
	r.mu.Unlock()
	if !ok || e.owner != owner {
		return nil, nil, nil, errGone()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.ended:
		return nil, nil, nil, errGone()
	case e.busy > 0 && !interrupt:
		return nil, nil, nil, errBusy()
	case e.busy > 0:
		e.cancel(errRolledBack)
	}
	e.busy++
	e.idleT.Stop()
	ctx, cancel := context.WithCancelCause(ctx)
	e.cancel = cancel
	done := func() {
		cancel(nil)
		e.mu.Lock()
		defer e.mu.Unlock()
		e.busy--
		if e.busy == 0 && !e.ended {
			e.idleSince = time.Now()
			e.idleT.Reset(e.idle)
		}
	}
	return e, ctx, done, nil
}

// endTimeout bounds a commit or rollback, and a rollback's wait for the
// statement it interrupts.
const endTimeout = 10 * time.Second

// errRolledBack cancels a request whose transaction a rollback interrupts.
var errRolledBack = errors.New("txn: the transaction was rolled back")

// Execute runs a db.execute request in the caller's transaction id; out
// bounds or streams its answer (pgexec.Tx.Execute).
func (r *Registry) Execute(ctx context.Context, id, owner string, req *messages.ExecuteRequest, out pgjson.Output) ([]byte, error) {
	e, ctx, done, err := r.lookup(ctx, id, owner, false)
	if err != nil {
		return nil, err
	}
	defer done()
	answer, err := e.tx.Execute(ctx, req, out)
	switch {
	case err == nil:
	case e.tx.Ended():
		// Its connection broke (or was terminated): the transaction is gone
		// and its place is free.
		e.mu.Lock()
		e.ended = true
		e.mu.Unlock()
		e.stopTimers()
		e.forget()
		return nil, messages.Wrap(messages.CodeTxGone, err, "the transaction's connection was lost: it is rolled back (%s)", pgerr.AsError(err).Message)
	case context.Cause(ctx) == errExpired || context.Cause(ctx) == errRolledBack:
		return nil, errGone()
	}
	return answer, err
}

// End commits (commit true) or rolls back the caller's transaction id. A
// commit of an aborted transaction rolls it back and answers TX_ABORTED. A
// rollback interrupts a request running in the transaction. Whatever
// happens to the caller's request, the transaction is ended: if the end
// could not be sent, the connection is rolled back (or closed) in the
// background, so it never stays held.
func (r *Registry) End(ctx context.Context, id, owner string, commit bool) error {
	e, ctx, done, err := r.lookup(ctx, id, owner, !commit)
	if err != nil {
		return err
	}
	defer done()
	e.mu.Lock()
	e.ended = true
	e.mu.Unlock()
	e.stopTimers()
	// The end runs to its end whatever the caller's deadline: an end cut
	// off half-way would leave the outcome unknown. It waits at most for a
	// statement a rollback interrupted.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	if commit {
		err = e.tx.Commit(ectx)
	} else {
		err = e.tx.Rollback(ectx)
	}
	if e.tx.Ended() {
		e.forget()
	} else {
		go e.rollback()
	}
	return err
}

// errExpired cancels a request whose transaction outlived its lifetime.
var errExpired = errors.New("txn: the transaction's lifetime ended")

// expire rolls a transaction back when it idled for its idle timeout (a
// request running keeps it alive) or outlived its lifetime (a request
// running is cancelled).
func (e *entry) expire(lifetime bool) {
	e.mu.Lock()
	if e.ended || (!lifetime && e.busy > 0) {
		e.mu.Unlock()
		return
	}
	if left := e.idle - time.Since(e.idleSince); !lifetime && left > 0 {
		// The timer fired as a request began, and ran after it ended.
		e.idleT.Reset(left)
		e.mu.Unlock()
		return
	}
	e.ended = true
	if e.busy > 0 {
		e.cancel(errExpired)
	}
	e.mu.Unlock()
	e.stopTimers()
	e.rollback()
}

// rollback rolls back and forgets the transaction, whatever the caller's
// context: the connection must come back.
func (e *entry) rollback() {
	ctx, cancel := context.WithTimeout(context.Background(), endTimeout)
	defer cancel()
	_ = e.tx.Rollback(ctx)
	e.forget()
}

func (e *entry) stopTimers() {
	e.idleT.Stop()
	e.expireT.Stop()
}

// forget removes the transaction from the registry.
func (e *entry) forget() {
	r := e.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open[e.id] == e {
		delete(r.open, e.id)
		r.signal()
	}
}

// signal wakes Close. r.mu is held.
func (r *Registry) signal() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Open returns the number of open transactions.
func (r *Registry) Open() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.open)
}

// Close refuses new transactions, gives the open ones until ctx ends to be
// committed or rolled back by their callers, then rolls back the rest. It
// returns ctx's error when some had to be rolled back.
func (r *Registry) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	for {
		r.mu.Lock()
		n, changed := len(r.open)+r.pending, r.changed
		r.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-changed:
			continue
		case <-ctx.Done():
		}
		break
	}
	r.mu.Lock()
	left := make([]*entry, 0, len(r.open))
	for _, e := range r.open {
		left = append(left, e)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, e := range left {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.expire(true)
		}()
	}
	wg.Wait()
	return fmt.Errorf("%d open transactions rolled back at shutdown: %w", len(left), ctx.Err())
}
