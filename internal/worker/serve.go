package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"

	"github.com/jeeves-avionics/dbworker/internal/metrics"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// RequestIDHeader carries a caller's request id, echoed on the answer. A
// Nats-Msg-Id header is used when it is absent.
const RequestIDHeader = "Request-Id"

// endpoint is one request-reply subject, its lane and its handler. A handler
// returns the JSON answer or an error; the answer path maps the error to the
// protocol with asError.
type endpoint struct {
	name, subject, description string
	lane                       string // laneDB when empty
	handle                     func(ctx context.Context, r *request) ([]byte, error)
	// asError maps the handler's errors to the protocol: the AsError of the
	// domain it serves. Defaults to pgerr.AsError.
	asError func(error) *messages.Error
	// requests records its answers in the metrics (set by dispatch).
	requests *metrics.EndpointRequests
}

// request is what a handler sees of one NATS request.
type request struct {
	data    []byte
	subject string // the subject it was sent to
	reply   string // its reply subject
	id      string
	op      string // set by the handler for the log line
	// maxAnswer is the largest answer the connection can carry.
	maxAnswer int
	header    nats.Header
	// answerTo is where the answer goes: the reply subject, or "" when there
	// is none or the reply policy refuses it (reply.go).
	answerTo string
	// stream, when the answer is streamed (stream.go), makes the answer its
	// last message.
	stream *stream
}

// decode reads the body into v with messages.DecodeStrict: unknown fields,
// trailing data, invalid UTF-8 and wrong types are BAD_REQUEST. An empty body
// decodes as {}.
func (r *request) decode(v any) error {
	data := bytes.TrimSpace(r.data)
	if len(data) == 0 {
		data = []byte("{}")
	}
	if fastDecode(data, v) {
		return nil
	}
	return messages.DecodeStrict(data, v)
}

// dispatch returns the micro handler of an endpoint. It never blocks: the
// request gets a slot of its lane or a place in the lane's queue, and a
// goroutine of its own; or, with the lane full or the request too large, it
// is answered at once.
func (w *Worker) dispatch(ep endpoint) micro.HandlerFunc {
	l := w.lanes[cmpOr(ep.lane, laneDB)]
	ep.requests = w.cfg.Metrics.Endpoint(ep.name)
	return func(req micro.Request) {
		t := ticket{received: time.Now(), lane: l}
		w.inFlight.Add(1)
		w.cfg.Metrics.InFlight(1)
		if n := len(req.Data()); n > w.cfg.MaxRequestBytes {
			t.refused = messages.Errorf(messages.CodeTooLarge, "request is %d bytes; the limit is %d", n, w.cfg.MaxRequestBytes)
		} else if t.queued, t.refused = l.admit(n); t.refused != nil {
			t.refused = messages.Errorf(messages.CodeUnavailable, "the worker is busy: its %s lane has %d requests running and %d waiting; retry later",
				l.name, cap(l.slots), l.queued.Load())
		}
		if t.refused != nil {
			defer w.cfg.Metrics.InFlight(-1)
			defer w.inFlight.Add(-1)
			w.serve(ep, req, t)
			return
		}
		w.running.Add(1)
		w.goPool.goServe(w.ctx.Done(), func() {
			defer w.running.Done()
			defer w.cfg.Metrics.InFlight(-1)
			defer w.inFlight.Add(-1)
			w.serve(ep, req, t)
		})
	}
}

// ticket is a request's admission: when it arrived, its lane, whether it
// waits for a slot, or why it was refused.
type ticket struct {
	received time.Time
	lane     *lane
	queued   bool
	refused  error
}

// run takes the request's slot (waiting for one when queued, at most until
// its deadline), then calls the handler, under the deadline for lanes that
// run under it. A request that cannot start in time is TIMEOUT.
func (w *Worker) run(ep endpoint, r *request, t ticket) ([]byte, error) {
	l := t.lane
	if !t.queued && !l.deadline {
		// It has its slot and runs under the worker's context: its
		// deadline would bound nothing, so no timer is made.
		defer l.leave()
		return ep.handle(w.ctx, r)
	}
	timeout := w.timeoutOf(r.data)
	ctx, cancel := context.WithDeadline(w.ctx, t.received.Add(timeout))
	defer cancel()
	if t.queued {
		if err := l.wait(ctx, len(r.data)); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return nil, messages.Errorf(messages.CodeTimeout, "no free slot in the worker's %s lane within the request's timeout of %s",
					l.name, timeout)
			}
			return nil, messages.Wrap(messages.CodeUnavailable, err, "request cancelled: the worker is shutting down")
		}
	}
	defer l.leave()
	if !l.deadline {
		ctx = w.ctx
	}
	return ep.handle(ctx, r)
}

// timeoutOf returns a request's timeout: its timeout_ms when it names a
// positive one (capped by MaxTimeout), else DefaultTimeout. A bad value is
// left for the handler to refuse.
func (w *Worker) timeoutOf(data []byte) time.Duration {
	if !bytes.Contains(data, []byte(`"timeout_ms"`)) {
		return w.cfg.DefaultTimeout
	}
	var peek struct {
		TimeoutMS int64 `json:"timeout_ms"`
	}
	if json.Unmarshal(data, &peek) != nil || peek.TimeoutMS <= 0 {
		return w.cfg.DefaultTimeout
	}
	if peek.TimeoutMS >= w.cfg.MaxTimeout.Milliseconds() { // compare before multiplying: no overflow
		return w.cfg.MaxTimeout
	}
	return time.Duration(peek.TimeoutMS) * time.Millisecond
}

// ids makes request ids: nuid.Next is one generator behind a lock, that
// the goroutines answering requests would contend for; a generator per P
// is not. Each has a random prefix of its own, as nuid's global one does.
var ids = sync.Pool{New: func() any { return nuid.New() }}

func nextID() string {
	g := ids.Get().(*nuid.NUID)
	id := g.Next()
	ids.Put(g)
	return id
}

// serve handles one request and answers it, whatever happens: a panic becomes
// an INTERNAL answer and a log line.
func (w *Worker) serve(ep endpoint, req micro.Request, t ticket) {
	start := t.received
	h := req.Headers()
	r := &request{data: req.Data(), subject: req.Subject(), reply: req.Reply(), maxAnswer: w.maxAnswer(), header: nats.Header(h)}
	r.id = h.Get(RequestIDHeader)
	if r.id == "" {
		r.id = h.Get("Nats-Msg-Id")
	}
	if r.id == "" {
		r.id = nextID()
	}
	if w.mayAnswer(req, r.id) {
		r.answerTo = req.Reply()
	}
	var answer []byte
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				w.log.Error().Str("subject", w.cfg.Subjects.Redact(req.Subject())).Str("request_id", r.id).
					Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Msg("handler panicked")
				err = messages.Wrap(messages.CodeInternal, fmt.Errorf("handler panicked: %v", p), "internal error")
			}
		}()
		if t.refused != nil {
			err = t.refused
			return
		}
		answer, err = w.run(ep, r, t)
	}()
	if err == nil && len(answer) > r.maxAnswer {
		err = messages.Errorf(messages.CodeTooLarge, "the answer is %d bytes; the server's max payload is %d", len(answer), r.maxAnswer)
	}
	// The answer is published here rather than with req.Respond: micro reads
	// the request's error state when its handler returns, which races with an
	// answer sent later from the pool.
	reply := &nats.Msg{Subject: req.Reply(), Header: nats.Header{RequestIDHeader: []string{r.id}}, Data: answer}
	var me *messages.Error
	if err != nil {
		me = ep.protocolError(err)
		reply.Data, _ = json.Marshal(messages.ErrorBody{Error: me})
		reply.Header.Set(micro.ErrorCodeHeader, strconv.Itoa(me.Status))
		reply.Header.Set(micro.ErrorHeader, oneLine(me.Message))
	}
	err = nil
	if r.answerTo != "" && r.stream.finish(reply) {
		err = w.deps.NATS.PublishMsg(reply)
	}
	took := time.Since(start)
	w.stats.record(ep.name, me, took)
	code := "OK"
	if me != nil {
		code = string(me.Code)
	}
	ep.requests.Record(code, took.Seconds())
	w.logRequest(ep, req, r, me, err, time.Since(start))
}

func (w *Worker) logRequest(ep endpoint, req micro.Request, r *request, me *messages.Error, respondErr error, took time.Duration) {
	var ev *zerolog.Event
	switch {
	case respondErr != nil:
		ev = w.log.Error().Err(respondErr)
	case me == nil:
		ev = w.log.Debug()
	case me.Status >= 500:
		ev = w.log.Error()
	default:
		ev = w.log.Warn()
	}
	if !ev.Enabled() {
		return
	}
	ev = ev.Str("subject", w.cfg.Subjects.Redact(req.Subject())).Str("endpoint", ep.name).Str("request_id", r.id).Float64("duration_ms", float64(took.Microseconds())/1000)
	if r.op != "" {
		ev = ev.Str("op", r.op)
	}
	if s := r.stream; s != nil && s.seq > 0 {
		ev = ev.Str("stream_id", s.id).Int64("stream_messages", s.seq)
	}
	if me != nil {
		ev = ev.Str("code", string(me.Code)).Int("status", me.Status).Str("error", me.Message)
		if me.SQLState != "" {
			ev = ev.Str("sqlstate", me.SQLState)
		}
		if cause := logCause(me); cause != nil {
			ev = ev.AnErr("cause", cause)
		}
	}
	switch {
	case respondErr != nil:
		ev.Msg("could not answer")
	case me != nil:
		ev.Msg("request failed")
	default:
		ev.Msg("request")
	}
}

// maxAnswer is the largest body that fits the server's max payload, with room
// for the headers.
func (w *Worker) maxAnswer() int {
	return int(w.deps.NATS.MaxPayload()) - 512
}

// oneLine makes an error message fit a header.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > 512 {
		s = s[:512]
	}
	if s == "" {
		s = "error"
	}
	return s
}
