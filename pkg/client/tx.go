package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Isolation levels of TxOptions.
const (
	ReadCommitted  = messages.IsolationReadCommitted
	RepeatableRead = messages.IsolationRepeatableRead
	Serializable   = messages.IsolationSerializable
)

// ErrTxGone is returned (wrapped) by a Tx whose transaction has ended: it
// was committed or rolled back, it timed out, or the worker that held it
// stopped or died (PostgreSQL then rolled it back). Nothing of it is
// committed unless Commit said so.
var ErrTxGone = errors.New("the transaction is gone")

// MaxRetriesDefault is InTx's number of retries on a serialization failure.
const MaxRetriesDefault = 3

// TxOptions opens an interactive transaction. The zero value is a
// read-write transaction at the database's default isolation, with the
// worker's timeouts.
type TxOptions struct {
	Isolation  string // ReadCommitted, RepeatableRead, Serializable or "" (the database's default)
	ReadOnly   bool
	Deferrable bool
	// IdleTimeout rolls the transaction back after this long without a
	// request; MaxLifetime this long after begin. Zero takes the worker's
	// (DB_TX_IDLE_TIMEOUT, DB_TX_LIFETIME); both are capped by the worker.
	IdleTimeout, MaxLifetime time.Duration
	// MaxRetries is how many times InTx runs its function again after a
	// serialization failure (SQLSTATE 40001). Zero is MaxRetriesDefault;
	// negative is none.
	MaxRetries int
}

// Tx is an interactive transaction, held by one worker: statements sent
// with its methods run in it, one at a time, until Commit or Rollback. It
// is safe for concurrent use: calls wait for each other (the worker runs
// one request of a transaction at a time; the Rows of QueryStream hold
// their turn until closed, and a call that waits for its turn longer than
// its context allows fails with ErrTxBusy), except Rollback, which
// interrupts a statement running.
type Tx struct {
	c        *Client
	id       string
	subject  string
	readOnly bool
	idle     time.Duration

	turn  chan struct{} // holds a token while a request runs: one at a time, Rollback aside (take)
	mu    sync.Mutex
	ended bool
}

// BeginTx opens an interactive transaction on one of the workers. The
// caller must end it with Commit or Rollback; one left open is rolled back
// by the worker after its idle timeout.
func (c *Client) BeginTx(ctx context.Context, opts TxOptions) (*Tx, error) {
	req := messages.TxBeginRequest{Op: messages.OpBegin, Isolation: opts.Isolation, ReadOnly: opts.ReadOnly, Deferrable: opts.Deferrable}
	for _, d := range []struct {
		name string
		d    time.Duration
		dst  **int64
	}{{"IdleTimeout", opts.IdleTimeout, &req.IdleTimeoutMS}, {"MaxLifetime", opts.MaxLifetime, &req.MaxLifetimeMS}} {
		if err := checkDuration(d.name, d.d); err != nil {
			return nil, err
		}
		if d.d > 0 {
			*d.dst = ms(d.d)
		}
	}
	var res messages.TxBeginResult
	if err := c.do(ctx, subjects.DBTx, req, &res); err != nil {
		return nil, err
	}
	return &Tx{c: c, id: res.Tx, subject: res.Subject, readOnly: res.ReadOnly, idle: time.Duration(res.IdleTimeoutMS) * time.Millisecond,
		turn: make(chan struct{}, 1)}, nil
}

// ID returns the transaction's id (a secret: whoever has it and may publish
// to its subject can use the transaction).
func (t *Tx) ID() string { return t.id }

// Subject returns the subject that reaches the transaction's worker.
func (t *Tx) Subject() string { return t.subject }

// ReadOnly reports whether the transaction is READ ONLY (as asked, or
// because the worker is read-only).
func (t *Tx) ReadOnly() bool { return t.readOnly }

// IdleTimeout returns how long the worker keeps the transaction without a
// request.
func (t *Tx) IdleTimeout() time.Duration { return t.idle }

// name is how errors name the transaction: by the first characters of its
// id, which is a secret.
func (t *Tx) name() string { return fmt.Sprintf("tx %.8s", t.id) }

// send sends a body to the transaction's subject. An answer TX_GONE, or no
// worker on the subject, is ErrTxGone.
func (t *Tx) send(ctx context.Context, req, resp any) error {
	if err := t.check(); err != nil {
		return err
	}
	return t.gone(t.c.sendAs(ctx, t.subject, t.name(), req, resp))
}

// check is ErrTxGone once the transaction has ended, before anything is
// sent.
func (t *Tx) check() error {
	t.mu.Lock()
	ended := t.ended
	t.mu.Unlock()
	if ended {
		return fmt.Errorf("%s: %w", t.name(), ErrTxGone)
	}
	return nil
}

// gone is err of a request to the transaction, with an answer TX_GONE, or
// no worker on the subject, made ErrTxGone.
func (t *Tx) gone(err error) error {
	var me *Error
	switch {
	case errors.Is(err, ErrNoWorker):
		return fmt.Errorf("%s: %w: no worker holds it any more", t.name(), ErrTxGone)
	case errors.As(err, &me) && me.Code == messages.CodeTxGone:
		t.end()
		return fmt.Errorf("%w: %w", ErrTxGone, err)
	}
	return err
}

func (t *Tx) end() {
	t.mu.Lock()
	t.ended = true
	t.mu.Unlock()
}

// take waits for the transaction's turn, as long as ctx allows (the client's
// timeout when ctx has no deadline): a call that waits past it, such as one
// made by the goroutine that still reads an open QueryStream's rows, fails
// with ErrTxBusy instead of waiting for ever. give hands the turn back.
func (t *Tx) take(ctx context.Context) error {
	select {
	case t.turn <- struct{}{}:
		return nil
	default:
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.c.timeout)
		defer cancel()
	}
	select {
	case t.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w (the rows of a QueryStream not yet closed?): %w", t.name(), ErrTxBusy, ctx.Err())
	}
}

func (t *Tx) give() { <-t.turn }

// ErrTxBusy is returned (wrapped) by a call of a Tx that waited for its turn
// until its context ended: another call held it, such as a QueryStream
// whose rows were neither read to their end nor closed.
var ErrTxBusy = errors.New("another call of the transaction holds its turn")

// Execute sends any db.execute body to the transaction, after applying
// opts (ops query, one, many, insert and update).
func (t *Tx) Execute(ctx context.Context, req *messages.ExecuteRequest, opts ...QueryOption) (*Result, error) {
	if err := applyQuery(req, opts); err != nil {
		return nil, err
	}
	t.c.defaults(req)
	if err := t.take(ctx); err != nil {
		return nil, err
	}
	defer t.give()
	var res Result
	if err := t.send(ctx, req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Query runs one statement in the transaction and returns all its rows, as
// Client.Query does.
func (t *Tx) Query(ctx context.Context, sql string, args Params, opts ...QueryOption) (*Result, error) {
	rows, err := t.QueryStream(ctx, sql, args, opts...)
	if err != nil {
		return nil, err
	}
	return rows.collect()
}

// QueryRow runs one statement in the transaction for its first row, as
// Client.QueryRow does.
func (t *Tx) QueryRow(ctx context.Context, sql string, args Params, opts ...QueryOption) *Row {
	return execFunc(t.Execute).queryRow(ctx, sql, args, opts)
}

// Exec runs one statement in the transaction for what it does.
func (t *Tx) Exec(ctx context.Context, sql string, args Params, opts ...QueryOption) (CommandTag, error) {
	return execFunc(t.Execute).exec(ctx, sql, args, opts)
}

// Many runs one statement once per item of argsList, pipelined, in the
// transaction.
func (t *Tx) Many(ctx context.Context, sql string, argsList []Params, opts ...QueryOption) (*Result, error) {
	return execFunc(t.Execute).many(ctx, sql, argsList, opts)
}

// Insert inserts one row in the transaction, as Client.Insert does.
func (t *Tx) Insert(ctx context.Context, table string, data map[string]any, opts ...QueryOption) (*Result, error) {
	return execFunc(t.Execute).insert(ctx, table, data, opts)
}

// Update updates rows in the transaction, as Client.Update does.
func (t *Tx) Update(ctx context.Context, table string, data map[string]any, where string, args NamedArgs, opts ...QueryOption) (CommandTag, error) {
	return execFunc(t.Execute).update(ctx, table, data, where, args, opts)
}

// Commit commits the transaction. A transaction aborted by an earlier error
// is rolled back instead, and Commit returns an *Error with code TX_ABORTED.
func (t *Tx) Commit(ctx context.Context) error {
	if err := t.take(ctx); err != nil {
		return err
	}
	defer t.give()
	var res messages.TxEndResult
	err := t.send(ctx, messages.TxEndRequest{Op: messages.OpCommit}, &res)
	var me *Error
	if err == nil || errors.As(err, &me) && me.Code == messages.CodeTxAborted {
		t.end()
	}
	return err
}

// Rollback rolls the transaction back, interrupting a statement running in
// it. Rolling back a transaction that has ended already (committed, rolled
// back or timed out) returns nil, so a deferred Rollback is always safe.
func (t *Tx) Rollback(ctx context.Context) error {
	var res messages.TxEndResult
	err := t.send(ctx, messages.TxEndRequest{Op: messages.OpRollback}, &res)
	if errors.Is(err, ErrTxGone) {
		return nil
	}
	if err == nil {
		t.end()
	}
	return err
}

// InTx runs fn in an interactive transaction: it commits when fn returns
// nil, and rolls back when fn returns an error or panics (the panic goes
// on). A serialization failure (SQLSTATE 40001), from a statement of fn or
// from the commit, runs fn again in a new transaction, up to
// opts.MaxRetries times; fn must therefore be safe to run again.
func (c *Client) InTx(ctx context.Context, opts TxOptions, fn func(*Tx) error) error {
	retries := opts.MaxRetries
	if retries == 0 {
		retries = MaxRetriesDefault
	}
	for attempt := 0; ; attempt++ {
		err := c.inTxOnce(ctx, opts, fn)
		var me *Error
		if err == nil || attempt >= retries || !errors.As(err, &me) || me.SQLState != "40001" || ctx.Err() != nil {
			return err
		}
	}
}

func (c *Client) inTxOnce(ctx context.Context, opts TxOptions, fn func(*Tx) error) (err error) {
	tx, err := c.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
