package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

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
	c       *Client
	ctx     context.Context
	subject string
	call    *call
	capped  bool // the request set max_rows: a cut answer is expected

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
}

// QueryStream runs one statement and returns its rows to be read one at a
// time, however many there are: no row cap but WithMaxRows, and no more than a
// few messages held in memory. An error of the request itself (a bad
// statement, no worker) is returned here; one met while streaming comes out
// of Rows.Err.
func (c *Client) QueryStream(ctx context.Context, sql string, args Params, opts ...QueryOption) (*Rows, error) {
	raw, err := encodeParams(args)
	if err != nil {
		return nil, err
	}
	req := &messages.ExecuteRequest{Op: messages.OpQuery, SQL: sql, Params: raw}
	for _, o := range opts {
		if err := o.applyQuery(req); err != nil {
			return nil, err
		}
	}
	return c.openRows(ctx, c.subjects.Of(subjects.DBExecute), req)
}

// openRows sends req to subject (with its prefix) as a caller that reads
// streams, and reads the first message.
func (c *Client) openRows(ctx context.Context, subject string, req *messages.ExecuteRequest) (*Rows, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("%s: encode request: %w", subject, err)
	}
	inbox, call, err := c.replies.open()
	if err != nil {
		return nil, fmt.Errorf("%s: subscribe to answers: %w", subject, err)
	}
	r := &Rows{c: c, ctx: ctx, subject: subject, call: call, capped: req.MaxRows != nil}
	msg := nats.NewMsg(subject)
	msg.Reply = inbox
	msg.Data = body
	id, _ := ctx.Value(requestIDKey{}).(string)
	if id == "" {
		id = nuid.Next()
	}
	msg.Header.Set("Request-Id", id)
	msg.Header.Set(messages.HeaderStreamWindow, strconv.Itoa(streamWindow))
	if err := c.nc.PublishMsg(msg); err != nil {
		c.replies.close(call)
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	if !r.receive() {
		r.Close()
		if errors.Is(r.err, ErrNoWorker) {
			return nil, fmt.Errorf("%s: %w", subject, ErrNoWorker)
		}
		return nil, r.err
	}
	return r, nil
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
			r.err = fmt.Errorf("%s: decode answer: %w", r.subject, err)
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
}

// grant tells the worker that every message received has been read.
func (r *Rows) grant() bool {
	if err := r.c.nc.Publish(r.credit, []byte(`{"ack":`+strconv.FormatInt(r.seq, 10)+`}`)); err != nil {
		r.err = fmt.Errorf("%s: grant credit to the stream: %w", r.subject, err)
		return false
	}
	return true
}

// receive reads the next message into rows, or the last one's totals.
func (r *Rows) receive() bool {
	m, err := r.nextMsg()
	if err != nil {
		r.err = err
		return false
	}
	if r.seq == 0 {
		if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
			r.err = ErrNoWorker
			return false
		}
		r.id, r.credit = m.Header.Get(messages.HeaderStreamID), m.Header.Get(messages.HeaderStreamCredit)
		if r.id == "" {
			return r.whole(m)
		}
	}
	r.seq++
	if m.Header.Get(messages.HeaderStreamID) != r.id || m.Header.Get(messages.HeaderStreamSeq) != strconv.FormatInt(r.seq, 10) {
		r.err = fmt.Errorf("%s: %w: expected message %d of stream %s, got message %s of stream %s", r.subject, ErrStreamBroken,
			r.seq, r.id, m.Header.Get(messages.HeaderStreamSeq), m.Header.Get(messages.HeaderStreamID))
		return false
	}
	if m.Header.Get(messages.HeaderStreamEnd) == "true" {
		return r.end(m)
	}
	var chunk messages.StreamChunk
	if err := json.Unmarshal(m.Data, &chunk); err != nil {
		r.err = fmt.Errorf("%s: decode message %d of the answer: %w", r.subject, r.seq, err)
		return false
	}
	if r.seq == 1 {
		r.columns = chunk.Columns
	}
	if r.rows, err = splitRows(chunk.Rows); err != nil {
		r.err = fmt.Errorf("%s: decode message %d of the answer: %w", r.subject, r.seq, err)
		return false
	}
	r.next = 0
	return true
}

// whole takes an answer that came as one message.
func (r *Rows) whole(m *nats.Msg) bool {
	r.done = true
	if err := answerError(m); err != nil {
		r.err = err
		return false
	}
	var res Result
	if err := json.Unmarshal(m.Data, &res); err != nil {
		r.err = fmt.Errorf("%s: decode answer: %w", r.subject, err)
		return false
	}
	r.columns, r.tag, r.trunc = res.Columns, CommandTag{command: res.Command, rowsAffected: res.RowsAffected}, res.Truncated
	if r.trunc && !r.capped {
		r.err = fmt.Errorf("%s: %w", r.subject, ErrTruncated)
		return false
	}
	r.plain, r.unsplit = &res, res.Rows
	return true
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

// end takes a stream's last message: its totals, or its error.
func (r *Rows) end(m *nats.Msg) bool {
	r.done, r.rows, r.next = true, nil, 0
	if err := answerError(m); err != nil {
		r.err = err
		return false
	}
	var e messages.StreamEnd
	if err := json.Unmarshal(m.Data, &e); err != nil {
		r.err = fmt.Errorf("%s: decode the end of the answer: %w", r.subject, err)
		return false
	}
	r.tag, r.trunc = CommandTag{command: e.Command, rowsAffected: e.RowsAffected}, e.Truncated
	switch {
	case e.RowCount != r.read:
		r.err = fmt.Errorf("%s: %w: the worker sent %d rows, %d arrived", r.subject, ErrStreamBroken, e.RowCount, r.read)
		return false
	case r.trunc && !r.capped:
		r.err = fmt.Errorf("%s: %w", r.subject, ErrTruncated)
		return false
	}
	return true
}

// nextMsg waits for the next message of the answer, until the context ends
// or, when it has no deadline, for the client's timeout.
func (r *Rows) nextMsg() (*nats.Msg, error) {
	ctx := r.ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.c.timeout)
		defer cancel()
	}
	select {
	case m := <-r.call.msgs:
		return m, nil
	case <-ctx.Done():
		if r.call.lost.Load() {
			return nil, fmt.Errorf("%s: %w: messages arrived past the window", r.subject, ErrStreamBroken)
		}
		return nil, fmt.Errorf("%s: %w", r.subject, ctx.Err())
	}
}

// answerError is the error an answer carries, or nil.
func answerError(m *nats.Msg) error {
	code := m.Header.Get("Nats-Service-Error-Code")
	if code == "" {
		return nil
	}
	var eb messages.ErrorBody
	if json.Unmarshal(m.Data, &eb) == nil && eb.Error != nil {
		return eb.Error
	}
	status, _ := strconv.Atoi(code)
	return &Error{Code: messages.CodeInternal, Status: status, Message: m.Header.Get("Nats-Service-Error")}
}

// splitRows splits a JSON array of rows into its elements, without copying
// them. rows has been checked as JSON already.
func splitRows(rows json.RawMessage) ([]json.RawMessage, error) {
	rows = bytes.TrimSpace(rows)
	if len(rows) == 0 || string(rows) == "null" {
		return nil, nil
	}
	if len(rows) < 2 || rows[0] != '[' || rows[len(rows)-1] != ']' {
		return nil, errors.New("rows are not a JSON array")
	}
	var out []json.RawMessage
	depth, start, inString := 0, -1, false
	body := rows[1 : len(rows)-1]
	for i := 0; i < len(body); i++ {
		c := body[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case ',':
			if depth == 0 {
				out = append(out, bytes.TrimSpace(body[start:i]))
				start = -1
				continue
			}
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		}
		if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		out = append(out, bytes.TrimSpace(body[start:]))
	}
	return out, nil
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
