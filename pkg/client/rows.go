package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// ErrTruncated is returned when a worker cut an answer at its row cap
// (DB_MAX_ROWS) though the caller set none. Workers that stream answers
// never do; an older one does. Set WithMaxRows to accept a cut answer.
var ErrTruncated = errors.New("the worker cut the answer at its row cap (DB_MAX_ROWS); set WithMaxRows to accept a cut answer")

// ErrStreamBroken is returned when a streamed answer lost a message or got
// them out of order (a slow consumer, a broken connection): the rows read
// are not the whole answer.
var ErrStreamBroken = errors.New("streamed answer broken: a message was lost or came out of order")

// Column is a result column: its name and its type's name (int4, text...).
type Column = messages.Column

// streamWindow is how many messages a worker may send past the client's
// credit (Stream-Window): about that many max-payload messages wait in the
// client at most.
const streamWindow = 4

// Rows is the answer of QueryStream, read a row at a time as pgx.Rows is:
//
//	rows, err := c.QueryStream(ctx, "SELECT id, email FROM users", nil)
//	if err != nil { ... }
//	defer rows.Close()
//	for rows.Next() {
//		var u User
//		if err := rows.Scan(&u); err != nil { ... }
//	}
//	if err := rows.Err(); err != nil { ... } // the stream's end, or why it failed
//
// An answer that fits one message comes whole. A larger one is streamed
// (docs/protocol.md, "Streamed results"): the worker sends a few messages of
// rows ahead of what has been read, the client grants more as Next consumes
// them, and the last message carries the totals or the error. Rows read
// before Err reports an error are not the whole answer; for a write (an
// INSERT ... RETURNING), an error means nothing was committed.
//
// Rows is not safe for concurrent use. Close it when stopping early: the
// worker then stops the statement.
type Rows struct {
	c      *Client
	ctx    context.Context
	name   string // the request, in errors
	call   *call
	capped bool // the request set max_rows: a cut answer is expected

	// plain is an answer that came as one message; its rows are split into
	// rows when Next first needs them.
	plain   *Result
	unsplit json.RawMessage

	columns []Column
	rows    []json.RawMessage // the rows of the message being read
	next    int               // index in rows of the row Next returns next
	cur     json.RawMessage
	read    int64 // rows returned by Next

	id     string // the stream's; "" for one plain answer
	credit string
	seq    int64 // messages received
	done   bool  // the last message is in
	tag    CommandTag
	trunc  bool
	err    error
	closed bool

	release func() // at Close: a Tx's turn, held by its QueryStream
}

// QueryStream runs one statement and returns its rows to be read one at a
// time, however many there are: no row cap but WithMaxRows, and no more than a
// few messages held in memory. An error of the request itself (a bad
// statement, no worker) is returned here; one met while streaming comes out
// of Rows.Err.
func (c *Client) QueryStream(ctx context.Context, sql string, args Params, opts ...QueryOption) (*Rows, error) {
	req, err := queryRequest(sql, args, opts)
	if err != nil {
		return nil, err
	}
	subject := c.subjects.Of(subjects.DBExecute)
	return c.openRows(ctx, subject, subject, req)
}

// QueryStream runs one statement in the transaction and returns its rows to
// be read one at a time, as Client.QueryStream does. The transaction's
// other calls (Rollback aside) wait until the rows are closed or read to
// their end, as the worker runs one request of a transaction at a time:
// close them before the next call of the same goroutine, which would
// otherwise wait for its context (or the client's timeout) and fail with
// ErrTxBusy.
func (t *Tx) QueryStream(ctx context.Context, sql string, args Params, opts ...QueryOption) (*Rows, error) {
	req, err := queryRequest(sql, args, opts)
	if err != nil {
		return nil, err
	}
	if err := t.check(); err != nil {
		return nil, err
	}
	if err := t.take(ctx); err != nil {
		return nil, err
	}
	rows, err := t.c.openRows(ctx, t.subject, t.name(), req)
	if err != nil {
		t.give()
		return nil, t.gone(err)
	}
	rows.release = t.give
	return rows, nil
}

// queryRequest is the request of a query, opts applied.
func queryRequest(sql string, args Params, opts []QueryOption) (*messages.ExecuteRequest, error) {
	raw, err := encodeParams(args)
	if err != nil {
		return nil, err
	}
	req := &messages.ExecuteRequest{Op: messages.OpQuery, SQL: sql, Params: raw}
	if err := applyQuery(req, opts); err != nil {
		return nil, err
	}
	return req, nil
}

// Next moves to the next row, reading (and granting credit for) the next
// message when the current one is used up. It returns false at the end of
// the rows or on an error: see Err.
func (r *Rows) Next() bool {
	r.cur = nil
	if r.closed || r.err != nil {
		return false
	}
	if r.unsplit != nil {
		var err error
		if r.rows, err = splitRows(r.unsplit); err != nil {
			r.err = fmt.Errorf("%s: decode answer: %w", r.name, err)
			r.Close()
			return false
		}
		r.unsplit = nil
	}
	for r.next >= len(r.rows) {
		if r.done {
			r.Close()
			return false
		}
		if !r.grant() || !r.receive() {
			r.Close()
			return false
		}
	}
	r.cur = r.rows[r.next]
	r.next++
	r.read++
	return true
}

// Scan decodes the current row into dest, as Row.Scan does: a struct, a
// map, any, or the value of a lone column.
func (r *Rows) Scan(dest any) error {
	if r.cur == nil {
		return errors.New("scan: no current row (call Next first)")
	}
	return decodeRow(r.cur, dest)
}

// RawRow is the current row as JSON: an object, or an array with
// WithArrayRows. It shares the memory of the message it came in; copy it
// to keep it without keeping the message.
func (r *Rows) RawRow() json.RawMessage { return r.cur }

// Columns are the result's columns.
func (r *Rows) Columns() []Column { return r.columns }

// Err is the error that ended the rows, nil at a good end.
func (r *Rows) Err() error { return r.err }

// CommandTag is what the statement did, once the rows are read.
func (r *Rows) CommandTag() CommandTag { return r.tag }

// Truncated reports that rows past WithMaxRows were cut, once the rows are
// read.
func (r *Rows) Truncated() bool { return r.trunc }

// Close ends the rows. Before the end of a stream it tells the worker to
// stop: the statement is cancelled. It is idempotent.
func (r *Rows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	if r.id != "" && !r.done {
		_ = r.c.nc.Publish(r.credit, []byte(`{"cancel":true}`))
	}
	r.c.replies.close(r.call)
	if r.release != nil {
		r.release()
	}
}

// collect reads every row into one Result, as one plain answer holds them.
func (r *Rows) collect() (*Result, error) {
	defer r.Close()
	if r.plain != nil {
		return r.plain, nil
	}
	buf := append(make([]byte, 0, 64<<10), '[')
	for r.Next() {
		if r.read > 1 {
			buf = append(buf, ',')
		}
		buf = append(buf, r.cur...)
	}
	if r.err != nil {
		return nil, r.err
	}
	return &Result{Columns: r.columns, Rows: append(buf, ']'), RowsAffected: r.tag.rowsAffected, Command: r.tag.command, Truncated: r.trunc}, nil
}

// AllRows iterates over the rows of QueryStream, each decoded into a T as
// CollectRows decodes them, and closes them at the end or when the loop
// stops. An error (of the request, of a row's decoding, or of the stream)
// is the last pair the loop sees:
//
//	for u, err := range client.AllRows[User](c.QueryStream(ctx, "SELECT id, email FROM users", nil)) {
//		if err != nil { return err }
//		...
//	}
func AllRows[T any](rows *Rows, err error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		if err != nil {
			yield(zero, err)
			return
		}
		defer rows.Close()
		for rows.Next() {
			var v T
			if err := rows.Scan(&v); err != nil {
				yield(zero, err)
				return
			}
			if !yield(v, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(zero, err)
		}
	}
}
