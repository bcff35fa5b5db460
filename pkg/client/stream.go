package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// The receiving side of an answer that may be streamed (docs/protocol.md,
// "Streamed results"): the request sent with Stream-Window, each message
// checked against the stream's id and sequence, credit granted as messages
// are read, and the last message's totals or error.

// openRows sends req to subject (with its prefix) as a caller that reads
// streams, and reads the first message. Errors name the request as name, as
// sendAs's do (a transaction's subject holds its secret id).
func (c *Client) openRows(ctx context.Context, subject, name string, req *messages.ExecuteRequest) (*Rows, error) {
	c.defaults(req)
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("%s: encode request: %w", name, err)
	}
	inbox, call, err := c.replies.open()
	if err != nil {
		return nil, fmt.Errorf("%s: subscribe to answers: %w", name, err)
	}
	r := &Rows{c: c, ctx: ctx, name: name, call: call, capped: req.MaxRows != nil}
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
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if !r.receive() {
		r.Close()
		if errors.Is(r.err, ErrNoWorker) {
			return nil, fmt.Errorf("%s: %w", name, ErrNoWorker)
		}
		return nil, r.err
	}
	return r, nil
}

// grant tells the worker that every message received has been read.
func (r *Rows) grant() bool {
	if err := r.c.nc.Publish(r.credit, []byte(`{"ack":`+strconv.FormatInt(r.seq, 10)+`}`)); err != nil {
		r.err = fmt.Errorf("%s: grant credit to the stream: %w", r.name, err)
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
		r.err = fmt.Errorf("%s: %w: expected message %d of stream %s, got message %s of stream %s", r.name, ErrStreamBroken,
			r.seq, r.id, m.Header.Get(messages.HeaderStreamSeq), m.Header.Get(messages.HeaderStreamID))
		return false
	}
	if m.Header.Get(messages.HeaderStreamEnd) == "true" {
		return r.end(m)
	}
	var chunk messages.StreamChunk
	if err := json.Unmarshal(m.Data, &chunk); err != nil {
		r.err = fmt.Errorf("%s: decode message %d of the answer: %w", r.name, r.seq, err)
		return false
	}
	if r.seq == 1 {
		r.columns = chunk.Columns
	}
	if r.rows, err = splitRows(chunk.Rows); err != nil {
		r.err = fmt.Errorf("%s: decode message %d of the answer: %w", r.name, r.seq, err)
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
		r.err = fmt.Errorf("%s: decode answer: %w", r.name, err)
		return false
	}
	r.columns, r.tag, r.trunc = res.Columns, CommandTag{command: res.Command, rowsAffected: res.RowsAffected}, res.Truncated
	if r.trunc && !r.capped {
		r.err = fmt.Errorf("%s: %w", r.name, ErrTruncated)
		return false
	}
	r.plain, r.unsplit = &res, res.Rows
	return true
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
		r.err = fmt.Errorf("%s: decode the end of the answer: %w", r.name, err)
		return false
	}
	r.tag, r.trunc = CommandTag{command: e.Command, rowsAffected: e.RowsAffected}, e.Truncated
	switch {
	case e.RowCount != r.read:
		r.err = fmt.Errorf("%s: %w: the worker sent %d rows, %d arrived", r.name, ErrStreamBroken, e.RowCount, r.read)
		return false
	case r.trunc && !r.capped:
		r.err = fmt.Errorf("%s: %w", r.name, ErrTruncated)
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
			return nil, fmt.Errorf("%s: %w: messages arrived past the window", r.name, ErrStreamBroken)
		}
		return nil, fmt.Errorf("%s: %w", r.name, ctx.Err())
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
