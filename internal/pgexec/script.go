package pgexec

import (
	"context"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/sqltext"
)

// script runs several statements, each parsed on its own by the server, in
// one transaction, and answers their command tags. A script of one statement
// that PostgreSQL refuses in a transaction block (25001: CREATE INDEX
// CONCURRENTLY, VACUUM) runs alone. A script never runs in read-only mode.
func (s *session) script(ctx context.Context, sql string, buf []byte) ([]byte, error) {
	sc := sqltext.Scan(sql)
	if err := sqltext.Check("sql", sc, true); err != nil {
		return buf, err
	}
	tags := make([]pgconn.CommandTag, 0, len(sc.Statements))
	last := len(sc.Statements) - 1
	for i, st := range sc.Statements {
		text := sql[st.Start:st.End]
		// The COMMIT is sent only once the last statement's result was read,
		// so that nothing found wrong on this side hides a committed write.
		tag, err := s.scriptStatement(ctx, text, i == 0, false)
		// A statement PostgreSQL refuses in a transaction block runs alone;
		// never a DO or CALL, which could raise 25001 on purpose and then,
		// alone, commit part of its work.
		if err != nil && last == 0 && pgerr.SQLState(err) == "25001" && !s.broken && !txControlCapable[st.Keyword] {
			if err = s.finish(ctx, false); err == nil && !s.broken {
				tag, err = s.scriptAlone(ctx, text)
			}
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
	if !s.reset { // a statement that ran alone has reset the session already
		if err := s.finish(ctx, true); err != nil {
			return buf, err
		}
	}
	var written int64
	buf = append(buf, `{"commands":[`...)
	lastTag := ""
	for i, tag := range tags {
		if i > 0 {
			buf = append(buf, ',')
		}
		lastTag = tag.String()
		buf = pgjson.AppendString(buf, lastTag)
		written += writtenRows(tag)
	}
	buf = append(buf, `],"command":`...)
	buf = pgjson.AppendString(buf, lastTag)
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
		s.sendBegin(p, false)
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
		err = s.readBegin(p)
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
	return tag, err
}
