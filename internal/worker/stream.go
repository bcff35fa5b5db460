package worker

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Streamed answers (docs/protocol.md, "Streamed results"). A caller that
// sends the Stream-Window header reads streams: a query whose rows do not fit
// one message then reaches it as data messages on its reply inbox, then a
// last message with the totals or the error. The worker sends at most
// Stream-Window data messages past the caller's credit, which the caller
// grants on a subject of the stream's own (<prefix>db.stream.<id>), and
// reads no more rows from PostgreSQL while it waits: a stream holds one
// chunk (about the max payload) in the worker, whatever the result's size.
// A caller that grants no credit for StreamCreditTimeout has the stream
// abandoned: the statement is cancelled and the last message is TIMEOUT.

// StreamCreditTimeoutDefault is Config.StreamCreditTimeout's default.
const StreamCreditTimeoutDefault = 10 * time.Second

// stream is one streamed answer, from its first message to its last. Its
// methods run on the request's goroutine.
type stream struct {
	nc      *nats.Conn
	reply   string // the caller's inbox
	reqID   string
	id      string
	credit  string // the subject the caller grants credit on
	window  int64
	timeout time.Duration // the longest wait for credit
	cancel  context.CancelFunc

	sub     *nats.Subscription // on credit, from the first message
	credits chan *nats.Msg
	seq     int64 // data messages sent
	acked   int64 // data messages the caller has read
	// stopped is why the worker gave the stream up; cancelled says the
	// caller asked it to stop.
	stopped   error
	cancelled bool
}

// execute runs a db.execute request with run: one answer, or a stream when
// the caller reads streams. The executor and interactive transactions alike
// are run through it.
func (w *Worker) execute(ctx context.Context, r *request, run func(context.Context, pgjson.Output) ([]byte, error)) ([]byte, error) {
	out := pgjson.Output{MaxBytes: r.maxAnswer}
	st, err := w.newStream(r)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return run(ctx, out)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st.cancel = cancel
	defer st.close()
	r.stream = st
	out.Emit = func(chunk []byte) error { return st.send(ctx, chunk) }
	answer, err := run(ctx, out)
	switch {
	case st.cancelled:
		return nil, nil // the caller stopped reading: nothing more is sent
	case st.stopped != nil:
		return nil, st.stopped
	}
	return answer, err
}

// newStream returns the stream of r when its caller reads streams (and r
// may be answered at all), or nil.
func (w *Worker) newStream(r *request) (*stream, error) {
	v := r.header.Get(messages.HeaderStreamWindow)
	if v == "" || r.answerTo == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 1 {
		return nil, messages.BadRequest(messages.HeaderStreamWindow, "the %s header must be a whole number from 1, got %q", messages.HeaderStreamWindow, v)
	}
	id := newStreamID()
	return &stream{nc: w.deps.NATS, reply: r.answerTo, reqID: r.id, id: id, credit: w.cfg.Subjects.StreamCredit(id),
		window: min(n, messages.StreamWindowMax), timeout: w.cfg.StreamCreditTimeout}, nil
}

// newStreamID returns 130 random bits in 26 base32 characters: a stream's
// credit subject cannot be guessed, so no one else can steer it.
func newStreamID() string {
	var b [17]byte
	_, _ = rand.Read(b[:])
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])[:26]
}

// send publishes one chunk of rows as the next data message, once the
// caller's credit allows it. An error stops the stream and cancels the
// statement.
func (s *stream) send(ctx context.Context, chunk []byte) error {
	if s.stopped != nil {
		return s.stopped
	}
	msg := &nats.Msg{Subject: s.reply, Header: s.header(s.seq + 1), Data: chunk}
	if s.seq == 0 {
		// Listen for credit before the caller can know where to send it.
		s.credits = make(chan *nats.Msg, 2*messages.StreamWindowMax)
		sub, err := s.nc.ChanSubscribe(s.credit, s.credits)
		if err != nil {
			return s.stop(messages.Wrap(messages.CodeUnavailable, err, "the answer could not be streamed"))
		}
		s.sub = sub
		msg.Header.Set(messages.HeaderStreamCredit, s.credit)
		msg.Header.Set(messages.HeaderStreamWindow, strconv.FormatInt(s.window, 10))
	}
	if err := s.waitForCredit(ctx); err != nil {
		return s.stop(err)
	}
	if err := s.nc.PublishMsg(msg); err != nil {
		return s.stop(messages.Wrap(messages.CodeUnavailable, err, "the answer could not be streamed"))
	}
	s.seq++
	return nil
}

// header returns the headers of the stream's message seq.
func (s *stream) header(seq int64) nats.Header {
	return nats.Header{
		RequestIDHeader:          []string{s.reqID},
		messages.HeaderStreamID:  []string{s.id},
		messages.HeaderStreamSeq: []string{strconv.FormatInt(seq, 10)},
	}
}

// errStreamCancelled stops a stream whose caller asked for it.
var errStreamCancelled = errors.New("the caller cancelled the stream")

// waitForCredit returns once the next data message is within the window, or
// with the reason it never will be: the caller cancelled, granted nothing for
// the credit timeout, or ctx ended.
func (s *stream) waitForCredit(ctx context.Context) error {
	var timer *time.Timer
	for {
		// Credit already received counts first, and a cancel is seen even
		// while the window is open.
		for more := true; more; {
			select {
			case m := <-s.credits:
				s.grant(m)
			default:
				more = false
			}
		}
		switch {
		case s.cancelled:
			return errStreamCancelled
		case s.seq < s.acked+s.window:
			return nil
		}
		if timer == nil {
			timer = time.NewTimer(s.timeout)
			defer timer.Stop()
		}
		select {
		case m := <-s.credits:
			s.grant(m)
		case <-timer.C:
			return messages.Errorf(messages.CodeTimeout, "the stream was abandoned: no credit from the caller within %s (%d messages sent, %d read)",
				s.timeout, s.seq, s.acked)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// grant applies one credit message. One that does not parse is ignored:
// credit is cumulative, so the next one makes up for it.
func (s *stream) grant(m *nats.Msg) {
	var c messages.StreamCredit
	if json.Unmarshal(m.Data, &c) != nil {
		return
	}
	if c.Cancel {
		s.cancelled = true
	}
	if c.Ack > s.acked {
		s.acked = min(c.Ack, s.seq) // never credit for messages not sent
	}
}

// stop gives the stream up for err and cancels the statement.
func (s *stream) stop(err error) error {
	if s.stopped == nil {
		s.stopped = err
		s.cancel()
	}
	return err
}

// close stops listening for credit.
func (s *stream) close() {
	if s.sub != nil {
		_ = s.sub.Unsubscribe()
	}
}

// finish makes reply, the request's answer, the last message of the stream
// when one was sent, and reports whether it is to be sent: a stream the
// caller cancelled ends with nothing more. A nil stream or one that never
// began leaves reply as the one answer.
func (s *stream) finish(reply *nats.Msg) bool {
	switch {
	case s == nil || s.seq == 0:
		return true
	case s.cancelled:
		return false
	}
	for k, v := range s.header(s.seq + 1) {
		reply.Header[k] = v
	}
	reply.Header.Set(messages.HeaderStreamEnd, "true")
	return true
}
