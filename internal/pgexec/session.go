package pgexec

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// A request holds one pooled connection for its whole life, and leaves it as
// it found it. Every request is one or more pipelines of the extended protocol,
// one statement per Parse, so the server itself refuses a text that holds more
// than one statement, whatever the lexer made of it. The last pipeline ends
// with the reset:
//
//	read-only:        BEGIN READ ONLY; set_config(statement_timeout, local); stmt; Sync;
//	                  ROLLBACK; reset; Sync
//	write, no rows:   stmt; Sync; reset; Sync
//	write in a tx:    BEGIN; set_config(...); stmt; Sync     (rows read, size checked)
//	                  COMMIT or ROLLBACK; reset; Sync
//
// A read-only request always rolls back: PostgreSQL's READ ONLY refuses table
// writes, and the rollback undoes what READ ONLY lets through (large objects,
// NOTIFY, set_config(..., false), LISTEN).
//
// The reset is RESET SESSION AUTHORIZATION (which also resets the role),
// RESET ALL (back to the startup parameters the worker connected with),
// DISCARD SEQUENCES and pg_advisory_unlock_all(), then one check for what those
// cannot undo cheaply: temporary objects, SQL-level prepared statements (a
// caller could also replace one of the worker's own by name), held cursors and
// LISTEN. When the check finds any, the connection is closed rather than
// reused. After a read-only request, whose rollback already undid the rest,
// the reset is only the advisory unlock and the prepared-statement check.
// The reset statements are parsed afresh every time (unnamed), so no request
// can replace them. After the reset the server must report the
// connection idle; anything else closes it.
//
// The transaction status byte of every ReadyForQuery is checked against what
// the request expects, so a transaction-control statement that slipped past
// the keyword check (txcontrol.go) is caught before a later statement runs.

// preparedSQL counts the connection's prepared statements: those made with
// SQL (PREPARE, also inside DO or a function), and the worker's own (named
// dbw_...), which a request could have dropped (DEALLOCATE inside DO).
const preparedSQL = `(SELECT count(*) FILTER (WHERE from_sql) AS from_sql,
	        count(*) FILTER (WHERE NOT from_sql AND name LIKE 'dbw\_%') AS own
	 FROM pg_catalog.pg_prepared_statements) p`

// resetSQL are the unnamed statements of the reset, in order. The last one
// answers whether the connection must be closed: its columns are the
// advisory unlock, whether other session state is left (temporary objects,
// held cursors, LISTEN), and the prepared-statement counts.
var resetSQL = []string{
	"RESET SESSION AUTHORIZATION",
	"RESET ALL",
	"DISCARD SEQUENCES",
	`SELECT pg_catalog.pg_advisory_unlock_all(),
	   pg_catalog.pg_my_temp_schema() <> 0
	   OR EXISTS (SELECT FROM pg_catalog.pg_cursors WHERE is_holdable)
	   OR EXISTS (SELECT FROM pg_catalog.pg_listening_channels()),
	   p.from_sql, p.own
	 FROM ` + preparedSQL,
}

// readOnlyResetSQL is the reset after a read-only request. Its ROLLBACK has
// already undone settings, the role, LISTEN and held cursors, and READ ONLY
// refused temporary objects and nextval: what is left is what no rollback
// undoes, session advisory locks and prepared statements.
var readOnlyResetSQL = []string{
	`SELECT pg_catalog.pg_advisory_unlock_all(), false, p.from_sql, p.own FROM ` + preparedSQL,
}

// The worker's own transaction statements, prepared once per connection. A
// caller that replaces one by name is caught: the replacement is an SQL-level
// prepared statement (the reset's check closes the connection), and none can
// be made to end a transaction (PREPARE takes only SELECT and DML), which the
// status bytes would show.
const (
	stmtBegin         = "dbw_begin"
	stmtBeginReadOnly = "dbw_begin_ro"
	stmtTimeout       = "dbw_timeout"
	stmtCommit        = "dbw_commit"
	stmtRollback      = "dbw_rollback"
)

var houseStatements = [...]struct{ name, sql string }{
	{stmtBegin, "BEGIN"},
	{stmtBeginReadOnly, "BEGIN READ ONLY"},
	{stmtTimeout, "SELECT pg_catalog.set_config('statement_timeout', $1, true)"},
	{stmtCommit, "COMMIT"},
	{stmtRollback, "ROLLBACK"},
}

// session is one request's hold on a connection.
type session struct {
	e        *Executor
	conn     *pgxpool.Conn
	pg       *pgconn.PgConn
	cache    *stmtCache
	readOnly bool
	timeout  time.Duration
	maxBytes int

	inTx   bool // a transaction of ours is open
	reset  bool // the reset ran and found the connection clean
	broken bool // close the connection instead of reusing it
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

// prepareHouse prepares the worker's transaction statements on a connection
// that has not seen them, in one round trip.
func (s *session) prepareHouse(ctx context.Context) error {
	if s.cache.house {
		return nil
	}
	p := s.pg.StartPipeline(ctx)
	for _, h := range houseStatements {
		p.SendPrepare(h.name, h.sql, nil)
	}
	if err := p.Sync(); err != nil {
		return err
	}
	if err := drain(p); err != nil {
		s.broken = true
		return err
	}
	s.cache.house = true
	return nil
}

// drain reads every result left in a pipeline and closes it, returning the
// first error.
func drain(p *pgconn.Pipeline) error {
	var first error
	for {
		res, err := p.GetResults()
		if err != nil {
			var pe *pgconn.PgError
			if !errors.As(err, &pe) {
				_ = p.Close()
				return err
			}
			if first == nil {
				first = err
			}
			continue
		}
		if res == nil {
			break
		}
		if rr, ok := res.(*pgconn.ResultReader); ok {
			if _, err := rr.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	if err := p.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

// sendBegin queues the opening of the request's transaction: READ ONLY when
// the session is, with the request's statement timeout as a server-side cap.
func (s *session) sendBegin(p *pgconn.Pipeline) {
	name := stmtBegin
	if s.readOnly {
		name = stmtBeginReadOnly
	}
	p.SendQueryPrepared(name, nil, nil, nil)
	p.SendQueryPrepared(stmtTimeout, [][]byte{strconv.AppendInt(nil, max(s.timeout.Milliseconds(), 1), 10)}, nil, nil)
	s.inTx = true
}

// readBegin reads the results sendBegin queued.
func readBegin(p *pgconn.Pipeline) error {
	for range 2 {
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

// sendEnd queues the end of our transaction (ROLLBACK when commit is false or
// the session is read-only) and the reset, then flushes.
func (s *session) sendEnd(p *pgconn.Pipeline, commit bool) error {
	if s.inTx {
		if commit && !s.readOnly {
			p.SendQueryPrepared(stmtCommit, nil, nil, nil)
		} else {
			p.SendQueryPrepared(stmtRollback, nil, nil, nil)
		}
	}
	for _, q := range s.resetStatements() {
		p.SendQueryParams(q, nil, nil, nil, nil)
	}
	return p.Sync()
}

// readEnd reads what sendEnd queued. The transaction's own outcome is
// returned as err: a COMMIT that the server turned into a ROLLBACK (the
// transaction had failed) is an error. A failed reset marks the connection
// broken but is not the request's error.
func (s *session) readEnd(p *pgconn.Pipeline, commit bool) error {
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

// readReset reads the reset's results and decides whether the connection may
// be reused.
func (s *session) readReset(p *pgconn.Pipeline) {
	stmts := s.resetStatements()
	for i := range stmts {
		res, err := p.GetResults()
		if err != nil {
			s.broken = true
			break
		}
		rr, ok := res.(*pgconn.ResultReader)
		if !ok {
			s.broken = true
			break
		}
		if i == len(stmts)-1 {
			own := strconv.Itoa(s.cache.ownStatements())
			for rr.NextRow() {
				// Clean: no other state, no SQL-level prepared statement, and
				// exactly the worker's own statements.
				if v := rr.Values(); len(v) != 4 || string(v[1]) != "f" || string(v[2]) != "0" || string(v[3]) != own {
					s.broken = true
				}
			}
		}
		if _, err := rr.Close(); err != nil {
			s.broken = true
		}
	}
	res, err := p.GetResults()
	if _, ok := res.(*pgconn.PipelineSync); err != nil || !ok || s.pg.TxStatus() != 'I' {
		s.broken = true
	}
	s.reset = !s.broken
}

// resetStatements are the reset for this session: the short one for a
// read-only session, whose statements all ran in our READ ONLY transactions
// (script, the one op that could run outside one, is refused), and those
// always roll back.
func (s *session) resetStatements() []string {
	if s.readOnly {
		return readOnlyResetSQL
	}
	return resetSQL
}

// finish ends the request in a pipeline of its own: the end of our
// transaction when one is open (COMMIT when commit is true), and the reset.
func (s *session) finish(ctx context.Context, commit bool) error {
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

// noteTag closes the connection after a statement that dropped the worker's
// own prepared statements (DEALLOCATE, DISCARD), rather than reuse it with a
// statement cache that no longer matches.
func (s *session) noteTag(tag pgconn.CommandTag) {
	if t := tag.String(); strings.HasPrefix(t, "DEALLOCATE") || strings.HasPrefix(t, "DISCARD") {
		s.broken = true
	}
}
