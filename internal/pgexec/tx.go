package pgexec

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/sqltext"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// TxOptions opens an interactive transaction.
type TxOptions struct {
	Isolation  string // messages.Isolation*, or "" for the database's default
	ReadOnly   bool   // forced on a read-only executor
	Deferrable bool
}

// Tx is an interactive transaction: a pooled connection held across
// requests, with a transaction of the caller's open on it. The session
// (session.go) runs each request's statements in it without ending it, and
// resets the connection when the transaction ends, as it does after any
// request. One request runs at a time; a Tx is safe for concurrent use.
//
// An error from the server, or one met after a statement was sent, aborts
// the transaction as PostgreSQL does: later requests answer TX_ABORTED and
// Commit rolls back. A request refused before anything was sent (a bad
// parameter, an unknown op) leaves it as it was.
type Tx struct {
	s        *session
	readOnly bool
	turn     chan struct{} // one request at a time; taken with the caller's ctx

	// Under turn:
	aborted   bool
	ended     bool
	committed bool

	gone atomic.Bool // ended, readable without the turn
}

// BeginTx takes a connection and opens a transaction on it. The caller must
// end it with Commit or Rollback, which return the connection.
func (e *Executor) BeginTx(ctx context.Context, opts TxOptions) (*Tx, error) {
	if e.cfg.Mode == ModeDisabled {
		return nil, messages.Errorf(messages.CodeForbidden, "db.execute is disabled by configuration")
	}
	opts.ReadOnly = opts.ReadOnly || e.cfg.Mode == ModeReadOnly
	begin, err := sqltext.Begin(opts.Isolation, opts.ReadOnly, opts.Deferrable)
	if err != nil {
		return nil, err
	}
	s, err := e.openSession(ctx, opts.ReadOnly)
	if err != nil {
		return nil, err
	}
	p := s.pg.StartPipeline(ctx)
	p.SendQueryParams(begin, nil, nil, nil, nil)
	s.inTx = true // from here on, release rolls back
	if err = p.Sync(); err == nil {
		err = readTag(p)
		err = s.readSync(p, 'T', err)
	}
	if cerr := p.Close(); err == nil && cerr != nil {
		s.broken, err = true, cerr
	}
	if err != nil {
		s.release()
		return nil, err
	}
	s.held = true
	return &Tx{s: s, readOnly: opts.ReadOnly, turn: make(chan struct{}, 1)}, nil
}

// Ended reports whether the transaction has ended (committed, rolled back,
// or its connection lost) and its connection was given back.
func (t *Tx) Ended() bool { return t.gone.Load() }

// ReadOnly reports whether the transaction is READ ONLY.
func (t *Tx) ReadOnly() bool { return t.readOnly }

// take waits for the transaction's turn, or for ctx.
func (t *Tx) take(ctx context.Context) error {
	select {
	case t.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return messages.Errorf(messages.CodeTimeout, "the transaction is busy with another request")
	}
}

func (t *Tx) give() { <-t.turn }

// errTxGone answers a request to a transaction that has ended.
func errTxGone() error {
	return messages.Errorf(messages.CodeTxGone, "the transaction has ended (committed, rolled back, timed out or its connection lost); begin a new one")
}

// errTxAborted answers a statement sent after one that failed.
func errTxAborted() error {
	return messages.Errorf(messages.CodeTxAborted, "the transaction is aborted by an earlier error; roll it back")
}

// Execute runs one db.execute request (query, one, many, insert or update)
// in the transaction; output is as in Executor.Execute.
func (t *Tx) Execute(ctx context.Context, req *messages.ExecuteRequest, output pgjson.Output) ([]byte, error) {
	if err := t.take(ctx); err != nil {
		return nil, err
	}
	defer t.give()
	switch {
	case t.ended:
		return nil, errTxGone()
	case t.aborted:
		return nil, errTxAborted()
	}
	pl, err := t.s.e.prepare(req, output)
	if err != nil {
		return nil, err
	}
	switch {
	case pl.op == messages.OpTx || pl.op == messages.OpScript:
		return nil, messages.BadRequest("op", "op %s is not run inside an interactive transaction: send its statements one at a time", pl.op)
	case pl.readOnly && !t.readOnly:
		// READ ONLY holds for a whole transaction: it cannot be switched on
		// for one statement and off again.
		return nil, messages.Errorf(messages.CodeForbidden, "a read-only request (read_only, or a read-only named query) runs only in a transaction begun with \"read_only\":true")
	}
	ctx, cancel := context.WithTimeout(ctx, pl.timeout)
	defer cancel()
	t.s.timeout = pl.timeout
	if dl, ok := ctx.Deadline(); ok {
		t.s.timeout = min(pl.timeout, time.Until(dl))
	}
	t.s.out = output
	out, err := t.s.run(ctx, pl)
	switch {
	case err == nil:
	case t.s.broken || t.s.pg.IsClosed():
		t.end()
	case t.s.pg.TxStatus() == 'E' || pgerr.AsError(err).Code != messages.CodeBadRequest:
		t.aborted = true
	}
	return out, err
}

// Commit commits the transaction (a read-only one is rolled back: nothing
// of it needs keeping) and returns the connection, reset. A transaction that
// was aborted is rolled back and answers TX_ABORTED.
func (t *Tx) Commit(ctx context.Context) error {
	if err := t.take(ctx); err != nil {
		return err
	}
	defer t.give()
	switch {
	case t.ended:
		return errTxGone()
	case t.aborted:
		t.finish(ctx, false)
		return messages.Errorf(messages.CodeTxAborted, "the transaction was aborted by an earlier error and is rolled back")
	}
	if err := t.finish(ctx, true); err != nil {
		return err
	}
	t.committed = true
	return nil
}

// Rollback rolls the transaction back and returns the connection, reset. It
// is idempotent: rolling back an ended transaction does nothing.
func (t *Tx) Rollback(ctx context.Context) error {
	if err := t.take(ctx); err != nil {
		return err
	}
	defer t.give()
	if t.ended {
		if t.committed { // a commit got there first
			return errTxGone()
		}
		return nil
	}
	return t.finish(ctx, false)
}

// finish ends the transaction and releases the connection: it is reused
// only when the reset left it clean.
func (t *Tx) finish(ctx context.Context, commit bool) error {
	t.s.held = false
	t.s.timeout = t.s.e.cfg.DefaultTimeout
	var err error
	if !t.s.broken && !t.s.pg.IsClosed() {
		err = t.s.finish(ctx, commit)
	}
	t.end()
	return err
}

// end releases the connection (closing it unless it was reset) and marks the
// transaction ended.
func (t *Tx) end() {
	t.s.held = false
	t.s.release()
	t.ended = true
	t.gone.Store(true)
}
