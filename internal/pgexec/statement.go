package pgexec

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pooler"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/sqltext"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// readKeywords start statements that return rows without writing.
var readKeywords = map[string]bool{"SELECT": true, "VALUES": true, "TABLE": true, "SHOW": true}

// txControlCapable start the only statements that can commit or roll back
// from inside (a DO block, a procedure), which a request therefore runs in a
// transaction of its own, where PostgreSQL refuses that.
var txControlCapable = map[string]bool{"DO": true, "CALL": true}

// bindOne checks that sql is one statement that leaves transactions alone,
// and binds its params.
func bindOne(field, sql string, params json.RawMessage) (sqltext.Bound, string, error) {
	sc := sqltext.Scan(sql)
	if err := sqltext.Check(field, sc, false); err != nil {
		return sqltext.Bound{}, "", err
	}
	b, err := sqltext.BindScanned(sql, sc, params, 0)
	return b, sc.Statements[0].Keyword, err
}

// single runs op query or one.
func (s *session) single(ctx context.Context, req *messages.ExecuteRequest, sh shape, buf []byte) ([]byte, error) {
	b, keyword, err := bindOne("sql", req.SQL, req.Params)
	if err != nil {
		return buf, err
	}
	return s.statement(ctx, b, keyword, sh, buf)
}

// statement runs one bound statement as a request of its own. A read-only
// session runs it in a READ ONLY transaction that is rolled back. A DO block
// or CALL runs in a transaction of the worker's that is committed, so that it
// cannot commit part of its work and still answer an error; any other
// statement is atomic on its own and autocommits. A write that returns rows
// (INSERT ... RETURNING, a data-modifying WITH, EXPLAIN ANALYZE) is committed
// only once its answer is known to fit, so an answer found TOO_LARGE rolls it
// back. A statement whose cached description went stale is described and
// sent again, once, when it did not take effect. (What PostgreSQL refuses in
// a transaction block, VACUUM or CREATE INDEX CONCURRENTLY, autocommits here
// already; a DO or CALL that fails with 25001 is not run again alone, where
// it could commit part of its work.)
func (s *session) statement(ctx context.Context, b sqltext.Bound, keyword string, sh shape, buf []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		sd, cached, err := s.describe(ctx, b.SQL, true)
		if err != nil {
			return buf, err
		}
		args, err := s.encodeArgs(ctx, sd, b, "params")
		if err != nil {
			return buf, err
		}
		how := stmtInTx
		switch {
		case s.readOnly, s.held:
		case !readKeywords[keyword] && len(sd.Fields) > 0:
			how = stmtDecideAfter
		case !txControlCapable[keyword] && s.c.pooler != pooler.Transaction:
			// Only DO and CALL can end a transaction from inside; anything
			// else autocommits whole or not at all, and saves BEGIN and COMMIT.
			// (Through a pooler the transaction carries the statement timeout.)
			how = stmtAlone
		}
		out, err := s.runStatement(ctx, sd, args, how, sh, buf)
		if err == nil || s.broken {
			return out, err
		}
		switch {
		case how == stmtInTx && !s.readOnly && !s.held && !txControlCapable[keyword] && pgerr.SQLState(err) == "25001":
			// Refused in a transaction block before it ran (VACUUM): alone,
			// capped by the context's cancel.
			return s.runStatement(ctx, sd, args, stmtAlone, sh, buf)
		case attempt > 0:
			return out, err
		case cached && planChanged(err):
			s.cache.Remove(b.SQL)
			// Send it again only if it did not take effect: refused before it
			// ran (08P01), or run in a transaction that was rolled back. A
			// statement that autocommitted (or a committed DO or CALL) may
			// have written: the caller decides whether to send it again.
			if !errors.Is(err, errStale) || how == stmtDecideAfter || s.readOnly {
				continue
			}
			return out, err
		default:
			return out, err
		}
	}
}

// How runStatement runs a statement.
const (
	stmtInTx        = iota // in our transaction, its end sent with it: one round trip
	stmtDecideAfter        // in our transaction, committed once the answer is read
	stmtAlone              // on its own, outside any transaction block
)

// runStatement runs a described statement in one pipeline, or two when a
// write must be read before it is committed.
func (s *session) runStatement(ctx context.Context, sd *pgconn.StatementDescription, args encodedArgs, how int, sh shape, buf []byte) ([]byte, error) {
	s.reset = false
	p := s.pg.StartPipeline(ctx)
	if how != stmtAlone {
		s.sendBegin(p, true)
	}
	p.SendQueryParams(sd.SQL, args.values, args.oids, nil, args.formats)
	p.SendPipelineSync()
	var err error
	if how == stmtDecideAfter {
		err = p.Flush()
	} else {
		err = s.sendEnd(p, true)
	}
	if err != nil {
		s.broken = true
		return buf, err
	}
	want := byte('I')
	if how != stmtAlone {
		want = 'T'
		err = s.readBegin(p)
	}
	if err == nil {
		buf, _, err = s.readStatement(p, args, sh, buf)
	}
	err = s.readSync(p, want, err)
	if s.broken {
		_ = p.Close()
		return buf, err
	}
	if how != stmtDecideAfter {
		if endErr := s.readEnd(p, err == nil); err == nil {
			err = endErr
		}
		return buf, err
	}
	if cerr := p.Close(); cerr != nil && err == nil {
		s.broken = true
		return buf, cerr
	}
	if endErr := s.finish(ctx, err == nil); err == nil {
		err = endErr
	}
	return buf, err
}

// readStatement reads one statement's result from a pipeline and writes it.
func (s *session) readStatement(p *pgconn.Pipeline, a encodedArgs, sh shape, buf []byte) ([]byte, pgconn.CommandTag, error) {
	res, err := p.GetResults()
	if err != nil {
		return buf, pgconn.CommandTag{}, err
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		s.broken = true
		return buf, pgconn.CommandTag{}, errOutOfStep
	}
	return s.readResult(rr, a, sh, buf)
}
