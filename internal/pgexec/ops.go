package pgexec

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// readKeywords start statements that return rows without writing.
var readKeywords = map[string]bool{"SELECT": true, "VALUES": true, "TABLE": true, "SHOW": true}

// checkStatements checks that sc holds statements (one unless multi) and
// none that begins or ends a transaction.
func checkStatements(field string, sc scanned, multi bool) error {
	if len(sc.statements) == 0 {
		return messages.BadRequest(field, "sql holds no statement")
	}
	if !multi && len(sc.statements) > 1 {
		return messages.BadRequest(field, "sql holds %d statements; op query takes one (use op script or tx)", len(sc.statements))
	}
	for _, st := range sc.statements {
		if err := checkTxControl(field, st); err != nil {
			return err
		}
	}
	return nil
}

// bindOne checks that sql is one statement that leaves transactions alone,
// and binds its params.
func bindOne(field, sql string, params json.RawMessage) (boundSQL, string, error) {
	sc := scanSQL(sql)
	if err := checkStatements(field, sc, false); err != nil {
		return boundSQL{}, "", err
	}
	b, err := bindScanned(sql, sc, params, 0)
	return b, sc.statements[0].keyword, err
}

// single runs op query or one.
func (s *session) single(ctx context.Context, req *messages.ExecuteRequest, sh shape, buf []byte) ([]byte, error) {
	b, keyword, err := bindOne("sql", req.SQL, req.Params)
	if err != nil {
		return buf, err
	}
	return s.statement(ctx, b, keyword, sh, buf)
}

// statement runs one bound statement as a request of its own, inside a
// transaction of the worker's: READ ONLY and rolled back for a read-only
// session, committed otherwise, so that a procedure or DO block cannot commit
// part of its work and still answer an error. A write that returns rows
// (INSERT ... RETURNING, a data-modifying WITH, EXPLAIN ANALYZE) is committed
// only once its answer is known to fit, so an answer found TOO_LARGE rolls it
// back. Two refusals the server makes before a statement runs are retried,
// once: a cached statement whose table changed under it is prepared again,
// and a statement PostgreSQL refuses in a transaction block (25001: VACUUM,
// CREATE INDEX CONCURRENTLY) runs alone.
func (s *session) statement(ctx context.Context, b boundSQL, keyword string, sh shape, buf []byte) ([]byte, error) {
	alone := false
	for attempt := 0; ; attempt++ {
		sd, cached, err := s.describe(ctx, b.sql)
		if err != nil {
			return buf, err
		}
		args, err := s.encodeArgs(ctx, sd, b, "params")
		if err != nil {
			return buf, err
		}
		how := stmtInTx
		switch {
		case alone:
			how = stmtAlone
		case !s.readOnly && !readKeywords[keyword] && len(sd.Fields) > 0:
			how = stmtDecideAfter
		}
		out, err := s.runStatement(ctx, sd, args, how, sh, buf)
		if err == nil || attempt > 0 || s.broken {
			return out, err
		}
		switch {
		case cached && planChanged(err):
			s.cache.remove(b.sql)
		case !s.readOnly && !alone && sqlState(err) == "25001":
			alone = true
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
		s.sendBegin(p)
	}
	p.SendQueryPrepared(sd.Name, args.values, nil, args.formats)
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
		err = readBegin(p)
	}
	if err == nil {
		buf, _, err = s.readStatement(p, args.types, sh, buf)
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

// sqlState is the SQLSTATE of a PostgreSQL error, or "".
func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// readStatement reads one statement's result from a pipeline and writes it.
func (s *session) readStatement(p *pgconn.Pipeline, types map[uint32]*typeInfo, sh shape, buf []byte) ([]byte, pgconn.CommandTag, error) {
	res, err := p.GetResults()
	if err != nil {
		return buf, pgconn.CommandTag{}, err
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		s.broken = true
		return buf, pgconn.CommandTag{}, errOutOfStep
	}
	return s.readResult(rr, types, sh, buf)
}

// many runs one statement once per item of params_list, pipelined in one
// transaction: all items apply or none.
func (s *session) many(ctx context.Context, req *messages.ExecuteRequest, sh shape, buf []byte) ([]byte, error) {
	sc := scanSQL(req.SQL)
	if err := checkStatements("sql", sc, false); err != nil {
		return buf, err
	}
	items := make([]boundSQL, len(req.ParamsList))
	for i, p := range req.ParamsList {
		b, err := bindScanned(req.SQL, sc, p, 0)
		if err != nil {
			return buf, withIndex(err, i)
		}
		items[i] = b
	}
	// Every item binds the same text; describe it once.
	sd, _, err := s.describe(ctx, items[0].sql)
	if err != nil {
		return buf, err
	}
	args := make([]encodedArgs, len(items))
	for i, b := range items {
		if args[i], err = s.encodeArgs(ctx, sd, b, "params_list"); err != nil {
			return buf, withIndex(err, i)
		}
	}
	s.reset = false
	p := s.pg.StartPipeline(ctx)
	s.sendBegin(p)
	for _, a := range args {
		p.SendQueryPrepared(sd.Name, a.values, nil, a.formats)
	}
	p.SendPipelineSync()
	if s.readOnly {
		err = s.sendEnd(p, false)
	} else {
		err = p.Flush()
	}
	if err != nil {
		s.broken = true
		return buf, err
	}
	start := len(buf)
	buf = append(buf, `{"results":[`...)
	var written int64
	failed := -1
	err = readBegin(p)
	for i := 0; i < len(args) && err == nil; i++ {
		if i > 0 {
			buf = append(buf, ',')
		}
		var tag pgconn.CommandTag
		buf, tag, err = s.readStatement(p, args[i].types, sh, buf)
		if err != nil {
			failed = i
		}
		written += writtenRows(tag)
	}
	err = s.readSync(p, 'T', err)
	if !s.broken {
		if s.readOnly {
			if endErr := s.readEnd(p, false); err == nil {
				err = endErr
			}
		} else {
			_ = p.Close()
			if endErr := s.finish(ctx, err == nil); err == nil {
				err = endErr
			}
		}
	} else {
		_ = p.Close()
	}
	if err != nil {
		if failed >= 0 {
			err = withIndex(err, failed)
		}
		return buf[:start], err
	}
	buf = append(buf, `],"rows_affected":`...)
	buf = strconv.AppendInt(buf, written, 10)
	return append(buf, '}'), nil
}

// script runs several statements, each parsed on its own by the server, in
// one transaction, and answers their command tags. A script of one statement
// that PostgreSQL refuses in a transaction block (25001: CREATE INDEX
// CONCURRENTLY, VACUUM) runs alone. A script never runs in read-only mode.
func (s *session) script(ctx context.Context, sql string, buf []byte) ([]byte, error) {
	sc := scanSQL(sql)
	if err := checkStatements("sql", sc, true); err != nil {
		return buf, err
	}
	tags := make([]pgconn.CommandTag, 0, len(sc.statements))
	last := len(sc.statements) - 1
	for i, st := range sc.statements {
		text := sql[st.start:st.end]
		tag, err := s.scriptStatement(ctx, text, i == 0, i == last)
		if err != nil && last == 0 && sqlState(err) == "25001" && !s.broken {
			tag, err = s.scriptAlone(ctx, text)
		}
		if err != nil {
			if !s.broken && !s.reset {
				_ = s.finish(ctx, false)
			}
			if last > 0 {
				err = withIndex(err, i)
			}
			return buf, err
		}
		tags = append(tags, tag)
	}
	var written int64
	buf = append(buf, `{"commands":[`...)
	lastTag := ""
	for i, tag := range tags {
		if i > 0 {
			buf = append(buf, ',')
		}
		lastTag = tag.String()
		buf = appendJSONString(buf, lastTag)
		written += writtenRows(tag)
	}
	buf = append(buf, `],"command":`...)
	buf = appendJSONString(buf, lastTag)
	buf = append(buf, `,"rows_affected":`...)
	buf = strconv.AppendInt(buf, written, 10)
	return append(buf, '}'), nil
}

// scriptStatement runs one statement of a script with the extended protocol
// (the server refuses a text that holds two): the first opens the script's
// transaction, the last commits it and resets the session, in the same round
// trip.
func (s *session) scriptStatement(ctx context.Context, text string, first, last bool) (pgconn.CommandTag, error) {
	s.reset = false
	p := s.pg.StartPipeline(ctx)
	if first {
		s.sendBegin(p)
	}
	p.SendQueryParams(text, nil, nil, nil, nil)
	p.SendPipelineSync()
	var err error
	if last {
		err = s.sendEnd(p, true)
	} else {
		err = p.Flush()
	}
	if err != nil {
		s.broken = true
		return pgconn.CommandTag{}, err
	}
	if first {
		err = readBegin(p)
	}
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = s.readDiscard(p)
	}
	err = s.readSync(p, 'T', err)
	if s.broken {
		_ = p.Close()
		return tag, err
	}
	if last {
		if endErr := s.readEnd(p, err == nil); err == nil {
			err = endErr
		}
		return tag, err
	}
	if cerr := p.Close(); cerr != nil && err == nil {
		s.broken = true
		err = cerr
	}
	return tag, err
}

// scriptAlone runs a script's one statement outside any transaction block,
// after PostgreSQL refused it inside one (before running it), then resets
// the session.
func (s *session) scriptAlone(ctx context.Context, text string) (pgconn.CommandTag, error) {
	s.reset = false
	p := s.pg.StartPipeline(ctx)
	p.SendQueryParams(text, nil, nil, nil, nil)
	p.SendPipelineSync()
	if err := s.sendEnd(p, false); err != nil {
		s.broken = true
		return pgconn.CommandTag{}, err
	}
	tag, err := s.readDiscard(p)
	err = s.readSync(p, 'I', err)
	if s.broken {
		_ = p.Close()
		return tag, err
	}
	if endErr := s.readEnd(p, false); err == nil {
		err = endErr
	}
	return tag, err
}

// readDiscard reads one statement's result, dropping its rows (a script's
// rows are never held), and returns its command tag.
func (s *session) readDiscard(p *pgconn.Pipeline) (pgconn.CommandTag, error) {
	res, err := p.GetResults()
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		s.broken = true
		return pgconn.CommandTag{}, errOutOfStep
	}
	for rr.NextRow() {
	}
	tag, err := rr.Close()
	s.noteTag(tag)
	return tag, err
}

// tx runs statements in one transaction, one round trip each so that the
// server's transaction status is checked before the next one runs. The first
// failure rolls back all and names its index.
func (s *session) tx(ctx context.Context, req *messages.ExecuteRequest, sh shape, buf []byte) ([]byte, error) {
	bound := make([]boundSQL, len(req.Statements))
	for i, st := range req.Statements {
		b, _, err := bindOne("statements["+strconv.Itoa(i)+"].sql", st.SQL, st.Params)
		if err != nil {
			return buf, withIndex(err, i)
		}
		bound[i] = b
	}
	start := len(buf)
	for attempt := 0; ; attempt++ {
		out, failed, cached, err := s.txRun(ctx, req, bound, sh, buf)
		if err == nil {
			return out, nil
		}
		if !s.broken {
			_ = s.finish(ctx, false)
		}
		// A cached statement whose table changed under it is refused before
		// it runs; the transaction is rolled back, so all of it may run again.
		if failed >= 0 && cached && planChanged(err) && attempt == 0 && !s.broken {
			s.cache.remove(bound[failed].sql)
			continue
		}
		if failed >= 0 {
			err = withIndex(err, failed)
		}
		return buf[:start], err
	}
}

// txRun runs a tx's statements and commits. On failure it returns the index
// of the failing statement (-1 for the commit) and whether that statement
// came from the cache; the caller rolls back.
func (s *session) txRun(ctx context.Context, req *messages.ExecuteRequest, bound []boundSQL, sh shape, buf []byte) (out []byte, failed int, cached bool, err error) {
	buf = append(buf, `{"results":[`...)
	var written int64
	for i, b := range bound {
		if i > 0 {
			buf = append(buf, ',')
		}
		ssh := sh
		ssh.one = req.Statements[i].Op == messages.OpOne
		var tag pgconn.CommandTag
		buf, tag, cached, err = s.txStatement(ctx, b, i == 0, ssh, buf)
		if err != nil {
			return buf, i, cached, err
		}
		written += writtenRows(tag)
	}
	if err := s.finish(ctx, true); err != nil {
		return buf, -1, false, err
	}
	buf = append(buf, `],"rows_affected":`...)
	buf = strconv.AppendInt(buf, written, 10)
	return append(buf, '}'), -1, false, nil
}

// txStatement runs one statement of a tx, opening the transaction first when
// begin is set.
func (s *session) txStatement(ctx context.Context, b boundSQL, begin bool, sh shape, buf []byte) ([]byte, pgconn.CommandTag, bool, error) {
	var tag pgconn.CommandTag
	sd, cached, err := s.describe(ctx, b.sql)
	if err != nil {
		return buf, tag, false, err
	}
	args, err := s.encodeArgs(ctx, sd, b, "params")
	if err != nil {
		return buf, tag, cached, err
	}
	s.reset = false
	p := s.pg.StartPipeline(ctx)
	if begin {
		s.sendBegin(p)
	}
	p.SendQueryPrepared(sd.Name, args.values, nil, args.formats)
	if err := p.Sync(); err != nil {
		s.broken = true
		return buf, tag, cached, err
	}
	if begin {
		err = readBegin(p)
	}
	if err == nil {
		buf, tag, err = s.readStatement(p, args.types, sh, buf)
	}
	err = s.readSync(p, 'T', err)
	if cerr := p.Close(); cerr != nil && err == nil {
		s.broken = true
		err = cerr
	}
	return buf, tag, cached, err
}

// insert inserts one row: identifiers checked against the catalog and quoted,
// values bound by the columns' types.
func (s *session) insert(ctx context.Context, req *messages.ExecuteRequest, sh shape, buf []byte) ([]byte, error) {
	t, err := resolveTable(ctx, s.pg, req.Table)
	if err != nil {
		return buf, err
	}
	cols := sortedKeys(req.Data)
	sql, err := t.insertSQL(cols, req.Returning)
	if err != nil {
		return buf, err
	}
	b := boundSQL{sql: sql, args: make([]json.RawMessage, len(cols)), names: cols}
	for i, col := range cols {
		b.args[i] = req.Data[col]
	}
	sh.one = true
	return s.statement(ctx, b, "INSERT", sh, buf)
}

// update sets data on the rows matching where (SQL with :name placeholders
// bound from where_params).
func (s *session) update(ctx context.Context, req *messages.ExecuteRequest, sh shape, buf []byte) ([]byte, error) {
	t, err := resolveTable(ctx, s.pg, req.Table)
	if err != nil {
		return buf, err
	}
	cols := sortedKeys(req.Data)
	var where boundSQL
	if req.Where != "" {
		sc := scanSQL(req.Where)
		if len(sc.statements) > 1 {
			return buf, messages.BadRequest("where", "where must be one condition, not several statements")
		}
		if err := checkParamCount("where_params", len(cols)+sc.named); err != nil {
			return buf, err
		}
		if where, err = bindScanned(req.Where, sc, req.WhereParams, len(cols)); err != nil {
			return buf, err
		}
	}
	sql, err := t.updateSQL(cols, where.sql)
	if err != nil {
		return buf, err
	}
	b := boundSQL{sql: sql, args: make([]json.RawMessage, 0, len(cols)+len(where.args)), names: append(append([]string(nil), cols...), where.names...)}
	for _, col := range cols {
		b.args = append(b.args, req.Data[col])
	}
	b.args = append(b.args, where.args...)
	sh.tagOnly = true
	return s.statement(ctx, b, "UPDATE", sh, buf)
}

// withIndex records which statement or item failed.
func withIndex(err error, i int) error {
	me := AsError(err)
	cp := *me
	cp.FailedIndex = &i
	return &cp
}
