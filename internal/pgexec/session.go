package pgexec

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pooler"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/stmtcache"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// A request holds one pooled connection for its whole life, and leaves it as
// it found it. Every request is one or more pipelines of the extended protocol,
// one statement per Parse, so the server itself refuses a text that holds more
// than one statement, whatever the lexer made of it. The last pipeline ends
// with the reset (statement.go, batch.go and script.go pick the shape):
//
//	read-only:        BEGIN READ ONLY; SET LOCAL statement_timeout; stmt; Sync;
//	                  ROLLBACK; DISCARD ALL; SET seed; Sync
//	read-write:       stmt; Sync; DISCARD ALL; SET seed; Sync   (as DO or CALL behind a
//	                  transaction pooler, whose sessions carry no statement_timeout)
//	DO or CALL:       BEGIN; SET LOCAL ...; stmt; Sync; COMMIT; Sync; DISCARD ALL; SET seed; Sync
//	write with rows:  BEGIN; SET LOCAL ...; stmt; Sync (rows read and checked); then as below
//	tx, many, script: BEGIN [options]; set_config(...); stmt; Sync, a pipeline per statement
//	                  (many: one); then COMMIT; Sync; DISCARD ALL; SET seed; Sync, or ROLLBACK; DISCARD ALL; ...
//
// Behind a transaction pooler SET LOCAL is set_config(...) of every setting (pooler.LocalSettings).
//
// A read-only request always rolls back: PostgreSQL's READ ONLY refuses table
// writes, and the rollback undoes what READ ONLY lets through (large objects,
// NOTIFY, set_config(..., false), LISTEN).
//
// The reset is DISCARD ALL: the session authorization and role, every setting
// (back to the startup parameters the worker connected with), prepared
// statements, cursors, LISTEN, advisory locks, cached plans, temporary objects
// and sequence state; then SET seed (setseed() with no plan to make) to a value
// of the worker's, as DISCARD ALL leaves random()'s state. The reset shares
// ROLLBACK's segment; a COMMIT, which can fail, has one of its own. DISCARD ALL
// is cheap because the worker keeps no prepared statement on the server: it
// sends every statement unnamed, with the description it cached (package
// stmtcache), so there is nothing a request could drop or replace. It refuses
// to run inside a transaction: after it the server must report the connection
// idle, and anything else (a statement left a transaction open) closes it.
//
// Behind a transaction pooler the end of the transaction and the reset are
// sent in one write, and PgBouncer keeps the server connection linked while
// the client has a Sync unanswered: the reset runs where the request ran.
//
// The transaction status byte of every ReadyForQuery is checked against what
// the request expects, so a transaction-control statement that slipped past
// the keyword check (txcontrol.go) is caught before a later statement runs.

// resetSQL is the reset; see above.
const resetSQL = "DISCARD ALL"

// session is one request's hold on a connection.
type session struct {
	e        *Executor
	c        *Client // the pool conn came from: the executor's, or its read pool
	conn     *pgxpool.Conn
	pg       *pgconn.PgConn
	cache    *stmtcache.LRU
	readOnly bool
	timeout  time.Duration
	out      pgjson.Output

	inTx   bool   // a transaction of ours is open
	held   bool   // the transaction is the caller's, held across requests (tx.go)
	begin  string // the BEGIN of an op tx with options; "" is BEGIN [READ ONLY]
	reset  bool   // the reset ran and found the connection clean
	broken bool   // close the connection instead of reusing it
	commit bool   // sendEnd sent COMMIT, a Sync after it
}

// release ends whatever the request left open (a transaction of ours, the
// reset when the request stopped before its last pipeline) and returns the
// connection to the pool, or closes it when it could not be made clean.
func (s *session) release() {
	if !s.reset && !s.broken && !s.pg.IsClosed() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.finish(ctx, false)
		cancel()
	}
	if !s.reset || s.broken {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.conn.Conn().Close(ctx)
		cancel()
	}
	s.conn.Release()
}

// sendBegin queues the opening of the request's transaction: READ ONLY when
// the session is, with the request's statement timeout as a server-side cap
// (pooler.LocalSettings: one is a transaction of one statement). In a held
// transaction (tx.go) it queues only the timeout.
func (s *session) sendBegin(p *pgconn.Pipeline, one bool) {
	if !s.held {
		begin := cmp.Or(s.begin, "BEGIN")
		if s.readOnly && s.begin == "" {
			begin = "BEGIN READ ONLY"
		}
		p.SendQueryParams(begin, nil, nil, nil, nil)
	}
	sql, args := pooler.LocalSettings(s.c.pooler, s.timeout, one && !s.held)
	p.SendQueryParams(sql, args, nil, nil, nil)
	s.inTx = true
}

// readBegin reads the results sendBegin queued.
func (s *session) readBegin(p *pgconn.Pipeline) error {
	n := 2
	if s.held {
		n = 1
	}
	for range n {
		if err := readTag(p); err != nil {
			return err
		}
	}
	return nil
}

// readTag reads one result whose rows do not matter and returns its error.
func readTag(p *pgconn.Pipeline) error {
	res, err := p.GetResults()
	if err != nil {
		return err
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		return errOutOfStep
	}
	_, err = rr.Close()
	return err
}

// readSync reads up to and including the next ReadyForQuery, skipping the
// results an earlier error made the server skip, and checks the transaction
// status against want ('T' in our transaction, 'I' outside one). A failed
// transaction ('E') is what an error inside ours leaves, and is accepted
// when err (the error already met) is set.
func (s *session) readSync(p *pgconn.Pipeline, want byte, err error) error {
	for {
		res, gerr := p.GetResults()
		if gerr != nil {
			var pe *pgconn.PgError
			if !errors.As(gerr, &pe) {
				s.broken = true
				if err != nil {
					return err
				}
				return gerr
			}
			if err == nil {
				err = gerr
			}
			continue
		}
		switch r := res.(type) {
		case *pgconn.PipelineSync:
			st := s.pg.TxStatus()
			if st == want || (st == 'E' && want == 'T' && err != nil) {
				return err
			}
			s.broken = true
			return txControlSlipped(err)
		case *pgconn.ResultReader:
			_, _ = r.Close()
		case nil:
			s.broken = true
			return errors.New("pgexec: pipeline out of step: no ReadyForQuery")
		}
	}
}

// txControlSlipped is the answer when the server's status byte shows that a
// statement opened or ended a transaction the keyword check did not see.
func txControlSlipped(err error) error {
	if err != nil {
		return err
	}
	return messages.BadRequest("sql", "a statement began or ended a transaction; transaction control is not allowed in a request")
}

// sendEnd queues the end of our transaction (ROLLBACK unless commit and not
// read-only) and the reset, and flushes; a held one (tx.go) only flushes.
func (s *session) sendEnd(p *pgconn.Pipeline, commit bool) error {
	if s.held {
		return p.Flush()
	}
	s.commit = s.inTx && commit && !s.readOnly
	if s.commit {
		p.SendQueryParams("COMMIT", nil, nil, nil, nil)
		p.SendPipelineSync() // DISCARD ALL must run even when the COMMIT fails
	} else if s.inTx {
		p.SendQueryParams("ROLLBACK", nil, nil, nil, nil)
	}
	p.SendQueryParams(resetSQL, nil, nil, nil, nil)
	// Else a caller that called setseed() would know the next one's random().
	p.SendQueryParams(seedSQL(), nil, nil, nil, nil)
	return p.Sync()
}

// readEnd reads what sendEnd queued. The transaction's own outcome is
// returned as err: a COMMIT that the server turned into a ROLLBACK (the
// transaction had failed) is an error. A failed reset breaks the connection,
// and is not the request's error.
func (s *session) readEnd(p *pgconn.Pipeline, commit bool) error {
	if s.held {
		if err := p.Close(); err != nil {
			s.broken = true
			return err
		}
		return nil
	}
	var txErr error
	if s.inTx {
		s.inTx = false
		res, err := p.GetResults()
		switch {
		case err != nil:
			txErr = err
		default:
			rr, ok := res.(*pgconn.ResultReader)
			if !ok {
				s.broken = true
				return errors.New("pgexec: pipeline out of step: expected the end of the transaction")
			}
			tag, err := rr.Close()
			switch {
			case err != nil:
				txErr = err
			case commit && !s.readOnly && tag.String() != "COMMIT":
				txErr = messages.Errorf(messages.CodeSQL, "the transaction was rolled back by a statement in it")
			}
		}
		if s.commit {
			if err := s.readSync(p, 'I', txErr); err != nil && txErr == nil {
				txErr = err
			}
		} else if txErr != nil {
			s.broken = true // the ROLLBACK failed: the server skipped the reset
		}
		if s.broken {
			_ = p.Close()
			return txErr
		}
	}
	s.readReset(p)
	if err := p.Close(); err != nil {
		s.broken = true
		if txErr == nil {
			var pe *pgconn.PgError
			if !errors.As(err, &pe) {
				txErr = err
			}
		}
	}
	return txErr
}

// readReset reads the reset: the connection is reused only if it ran, idle.
func (s *session) readReset(p *pgconn.Pipeline) {
	for range 2 { // DISCARD ALL, SET seed
		if err := readTag(p); err != nil {
			s.broken = true
		}
	}
	res, err := p.GetResults()
	if _, ok := res.(*pgconn.PipelineSync); err != nil || !ok || s.pg.TxStatus() != 'I' {
		s.broken = true
	}
	s.reset = !s.broken
}

// finish ends the request in a pipeline of its own: the end of our
// transaction when one is open (COMMIT when commit is true), and the reset.
func (s *session) finish(ctx context.Context, commit bool) error {
	if s.held {
		return nil
	}
	p := s.pg.StartPipeline(ctx)
	if err := s.sendEnd(p, commit); err != nil {
		s.broken = true
		return err
	}
	return s.readEnd(p, commit)
}

// errOutOfStep is a pipeline that answered something other than what was
// sent; the connection is closed.
var errOutOfStep = errors.New("pgexec: pipeline out of step with the server")

// seedSQL is SET seed to a value in [-1, 1] from a source callers cannot
// predict.
func seedSQL() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	f := float64(binary.BigEndian.Uint64(b[:])>>11)/float64(1<<53)*2 - 1
	return "SET seed = " + strconv.FormatFloat(f, 'f', -1, 64)
}
