package pipeline

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// guardSQL opens a request's statement: it reseeds random() with $1 (DISCARD
// ALL leaves random()'s state) and sets the statement_timeout of the
// transaction to what is left until $2, the deadline in milliseconds since
// the epoch by the server's clock, or fails (22023, "deadline passed") when
// nothing is left. Every name is schema-qualified, operators too.
const guardSQL = `SELECT pg_catalog.setseed($1::float8), pg_catalog.set_config('statement_timeout', ` +
	`CASE WHEN ms OPERATOR(pg_catalog.>=) 1 THEN ms::text ELSE 'deadline passed' END, true) ` +
	`FROM (SELECT ($2::float8 OPERATOR(pg_catalog.-) (pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) ` +
	`OPERATOR(pg_catalog.*) 1000))::int8 AS ms) AS left_ms`

// clockSQL reads the server's clock in milliseconds since the epoch.
const clockSQL = `SELECT pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) OPERATOR(pg_catalog.*) 1000`

// clockRefresh is how often the offset between the clocks is measured again.
const clockRefresh = time.Minute

// Steps of a request's segment, in the order of their results.
const (
	stepRollback = iota // the read-only transaction of the segment before
	stepDiscard
	stepBegin
	stepGuard
	stepStmt
)

// send runs batch on pg and reports whether the connection must be closed.
// Every request is answered, or marked to retry, by the time it returns.
func (c *Coalescer) send(ctx context.Context, pg *pgconn.PgConn, batch []*Request) (broken bool) {
	offset, err := c.clockOffset(ctx, pg)
	if err != nil {
		for _, r := range batch {
			r.retry = true
			r.answer(nil, nil)
		}
		return true
	}
	live := c.prepare(ctx, pg, batch)
	if len(live) == 0 {
		return pg.IsClosed()
	}
	p := pg.StartPipeline(ctx)
	prevRO := false
	for _, r := range live {
		if prevRO {
			p.SendQueryParams("ROLLBACK", nil, nil, nil, nil)
		}
		p.SendQueryParams("DISCARD ALL", nil, nil, nil, nil)
		if r.ReadOnly {
			p.SendQueryParams("BEGIN READ ONLY", nil, nil, nil, nil)
		}
		deadline := float64(r.Deadline.Add(offset).UnixMicro()) / 1000
		p.SendQueryParams(guardSQL, [][]byte{RandomSeed(), strconv.AppendFloat(nil, deadline, 'f', 3, 64)}, nil, nil, nil)
		p.SendQueryParams(r.sd.SQL, r.args.Values, r.args.OIDs, nil, r.args.Formats)
		p.SendPipelineSync()
		prevRO = r.ReadOnly
	}
	if prevRO {
		p.SendQueryParams("ROLLBACK", nil, nil, nil, nil)
	}
	p.SendQueryParams("DISCARD ALL", nil, nil, nil, nil)
	p.SendQueryParams("SELECT pg_catalog.setseed($1)", [][]byte{RandomSeed()}, nil, nil, nil)
	if err := p.Sync(); err != nil {
		// What reached the server is unknown: some statements may have run.
		for _, r := range live {
			r.answer(nil, err)
		}
		_ = p.Close()
		return true
	}
	var prev *Request // a read-only request answered once its ROLLBACK is read
	prevRO = false
	for i, r := range live {
		steps := []int{stepDiscard, stepGuard, stepStmt}
		if r.ReadOnly {
			steps = []int{stepDiscard, stepBegin, stepGuard, stepStmt}
		}
		if prevRO {
			steps = append([]int{stepRollback}, steps...)
		}
		failed, err := c.segment(p, r, prev, steps)
		if err != nil {
			lost(live[i:], prev, err)
			_ = p.Close()
			return true
		}
		if prev != nil {
			prev.answer(prev.buf, prev.err)
			prev = nil
		}
		if failed == stepRollback || failed == stepDiscard || failed == stepBegin {
			// The server skipped r: the connection was not clean.
			r.retry, r.err, broken = true, nil, true
		} else if st, want := pg.TxStatus(), txWant(r); st != want && !(st == 'E' && want == 'T' && r.err != nil) {
			broken = true
			if r.err == nil {
				r.buf, r.err = nil, errTxControl
			}
		}
		if r.ReadOnly && !r.retry {
			prev = r
		} else {
			r.answer(r.buf, r.err)
		}
		prevRO = r.ReadOnly
	}
	// The batch's own end: the last read-only transaction, and the reset.
	steps := []int{stepDiscard, stepGuard}
	if prevRO {
		steps = append([]int{stepRollback}, steps...)
	}
	failed, err := c.segment(p, nil, prev, steps)
	if prev != nil {
		if err != nil && prev.err == nil {
			prev.buf, prev.err = nil, err
		}
		prev.answer(prev.buf, prev.err)
	}
	if cerr := p.Close(); err != nil || cerr != nil || failed >= 0 || pg.TxStatus() != 'I' {
		return true
	}
	return broken
}

// lost answers the requests of a batch whose connection broke while rest[0]
// was read (by its own error when it had one, such as a row over the
// message bound): prev, whose result was read, gets it (the server rolls
// its transaction back as the connection ends); read-only requests after
// rest[0] did not take effect and take the ordinary path; the others may
// have run, and get err.
func lost(rest []*Request, prev *Request, err error) {
	if prev != nil {
		prev.answer(prev.buf, prev.err)
	}
	rest[0].answer(nil, cmp.Or(rest[0].err, err))
	for _, r := range rest[1:] {
		r.retry = r.ReadOnly
		r.answer(nil, err)
	}
}

// segment reads one segment's results, up to and including its Sync: the
// steps that were sent, in order. r (nil for the batch's end) gets its
// statement's answer or error, prev the error of its ROLLBACK. It returns
// the step that failed (-1: none), and an error only when the connection
// is lost.
func (c *Coalescer) segment(p *pgconn.Pipeline, r, prev *Request, steps []int) (failed int, lost error) {
	failed = -1
	for _, step := range steps {
		res, err := p.GetResults()
		var rr *pgconn.ResultReader
		if err == nil {
			var ok bool
			if rr, ok = res.(*pgconn.ResultReader); !ok {
				return failed, errors.New("pipeline: out of step with the server")
			}
			if step == stepStmt {
				r.buf, _, err = ReadResult(rr, r.args, r.Shape, nil)
			} else {
				_, err = rr.Close()
			}
		}
		if err == nil {
			continue
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) && !(step == stepStmt && rr != nil) {
			return failed, err
		}
		failed = step
		switch {
		case step == stepRollback:
			if prev != nil && prev.err == nil {
				prev.buf, prev.err = nil, err
			}
		case r == nil:
		case step == stepGuard && pe != nil && pe.Code == "22023" && strings.Contains(pe.Message, "deadline passed"):
			r.err = ErrDeadline
		case step == stepStmt:
			r.buf, r.err = nil, err
			c.stale(r, err)
		case step == stepGuard:
			r.err = err
		}
		if step != stepStmt || pe != nil {
			break // the server skips the rest of the segment
		}
	}
	res, err := p.GetResults()
	if err != nil {
		return failed, err
	}
	if _, ok := res.(*pgconn.PipelineSync); !ok {
		return failed, errors.New("pipeline: out of step with the server: no ReadyForQuery")
	}
	return failed, nil
}

// stale handles a statement whose cached description no longer matches:
// the description is dropped, and the request is sent again on the
// ordinary path when it did not take effect (refused before it ran, 08P01,
// or rolled back because it was read-only). One that autocommitted keeps
// its error: it may have written, and the caller decides.
func (c *Coalescer) stale(r *Request, err error) {
	var pe *pgconn.PgError
	refused := errors.As(err, &pe) && pe.Code == "08P01"
	if !r.cached || !(refused || errors.Is(err, pgerr.ErrStale)) {
		return
	}
	c.dropDescription(r.sd.SQL)
	if refused || r.ReadOnly {
		r.retry, r.err = true, nil
	}
}

// prepare describes (once per statement, on this clean connection) and
// encodes every request, answering those that fail, and returns the rest.
func (c *Coalescer) prepare(ctx context.Context, pg *pgconn.PgConn, batch []*Request) []*Request {
	live := batch[:0:0]
	for _, r := range batch {
		if r.sd = c.description(r.Bound.SQL); r.sd != nil {
			r.cached = true
		} else {
			sd, err := pg.Prepare(ctx, "", r.Bound.SQL, nil)
			if err != nil {
				r.answer(nil, err)
				continue
			}
			c.putDescription(sd)
			r.sd = sd
		}
		args, err := Encode(ctx, c.cfg.Types, pg, r.sd, r.Bound, "params")
		if err != nil {
			r.answer(nil, err)
			continue
		}
		r.args = args
		live = append(live, r)
	}
	return live
}

// clockOffset returns the server's clock minus the worker's, measured on pg
// at most clockRefresh ago.
func (c *Coalescer) clockOffset(ctx context.Context, pg *pgconn.PgConn) (time.Duration, error) {
	c.clockMu.Lock()
	defer c.clockMu.Unlock()
	if !c.offsetAt.IsZero() && time.Since(c.offsetAt) < clockRefresh {
		return c.offset, nil
	}
	t0 := time.Now()
	res := pg.ExecParams(ctx, clockSQL, nil, nil, nil, nil).Read()
	t1 := time.Now()
	if res.Err != nil {
		return 0, res.Err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		return 0, errors.New("pipeline: the server's clock: no value")
	}
	ms, err := strconv.ParseFloat(string(res.Rows[0][0]), 64)
	if err != nil {
		return 0, err
	}
	mid := t0.Add(t1.Sub(t0) / 2)
	c.offset = time.Duration(ms*1e6) - time.Duration(mid.UnixNano())
	c.offsetAt = t1
	return c.offset, nil
}

// txWant is the transaction status a request's segment must leave: inside
// its READ ONLY transaction, or outside any.
func txWant(r *Request) byte {
	if r.ReadOnly {
		return 'T'
	}
	return 'I'
}

// errTxControl answers a statement after which the server reported another
// transaction status than the request's.
var errTxControl = messages.BadRequest("sql", "a statement began or ended a transaction; transaction control is not allowed in a request")

// RandomSeed is a seed for setseed, in [-1, 1], from a source callers cannot
// predict.
func RandomSeed() []byte {
	var b [8]byte
	_, _ = rand.Read(b[:])
	f := float64(binary.BigEndian.Uint64(b[:])>>11)/float64(1<<53)*2 - 1
	return strconv.AppendFloat(nil, f, 'f', -1, 64)
}
