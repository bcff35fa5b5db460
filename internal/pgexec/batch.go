package pgexec

import (
	"context"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/sqltext"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// many runs one statement once per item of params_list, pipelined in one
// transaction: all items apply or none.
func (s *session) many(ctx context.Context, req *messages.ExecuteRequest, sh shape, buf []byte) ([]byte, error) {
	sc := sqltext.Scan(req.SQL)
	if err := sqltext.Check("sql", sc, false); err != nil {
		return buf, err
	}
	items := make([]sqltext.Bound, len(req.ParamsList))
	for i, p := range req.ParamsList {
		b, err := sqltext.BindScanned(req.SQL, sc, p, 0)
		if err != nil {
			return buf, withIndex(err, i)
		}
		items[i] = b
	}
	for attempt := 0; ; attempt++ {
		out, cached, err := s.manyRun(ctx, items, sh, buf)
		// A cached description that went stale: the transaction rolled
		// back, so every item may run again.
		if err != nil && cached && planChanged(err) && attempt == 0 && !s.broken {
			s.cache.Remove(items[0].SQL)
			continue
		}
		return out, err
	}
}

// manyRun runs the items of a many in one pipeline and transaction, and
// reports whether their description came from the cache.
func (s *session) manyRun(ctx context.Context, items []sqltext.Bound, sh shape, buf []byte) ([]byte, bool, error) {
	// Every item binds the same text; describe it once.
	sd, cached, err := s.describe(ctx, items[0].SQL, true)
	if err != nil {
		return buf, false, err
	}
	args := make([]encodedArgs, len(items))
	for i, b := range items {
		if args[i], err = s.encodeArgs(ctx, sd, b, "params_list"); err != nil {
			return buf, cached, withIndex(err, i)
		}
	}
	s.reset = false
	p := s.pg.StartPipeline(ctx)
	s.sendBegin(p, false)
	for _, a := range args {
		p.SendQueryParams(sd.SQL, a.values, a.oids, nil, a.formats)
	}
	p.SendPipelineSync()
	if s.readOnly {
		err = s.sendEnd(p, false)
	} else {
		err = p.Flush()
	}
	if err != nil {
		s.broken = true
		return buf, cached, err
	}
	start := len(buf)
	buf = append(buf, `{"results":[`...)
	var written int64
	failed := -1
	err = s.readBegin(p)
	for i := 0; i < len(args) && err == nil; i++ {
		if i > 0 {
			buf = append(buf, ',')
		}
		var tag pgconn.CommandTag
		buf, tag, err = s.readStatement(p, args[i], sh, buf)
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
		if failed >= 0 && !planChanged(err) {
			err = withIndex(err, failed)
		}
		return buf[:start], cached, err
	}
	buf = append(buf, `],"rows_affected":`...)
	buf = strconv.AppendInt(buf, written, 10)
	return append(buf, '}'), cached, nil
}

// tx runs statements in one transaction, one round trip each so that the
// server's transaction status is checked before the next one runs. The first
// failure rolls back all and names its index.
func (s *session) tx(ctx context.Context, req *messages.ExecuteRequest, sh shape, buf []byte) ([]byte, error) {
	bound := make([]sqltext.Bound, len(req.Statements))
	for i, st := range req.Statements {
		b, _, err := bindOne("statements["+strconv.Itoa(i)+"].sql", st.SQL, st.Params)
		if err != nil {
			return buf, withIndex(err, i)
		}
		bound[i] = b
	}
	if req.Isolation != "" || req.Deferrable {
		begin, err := sqltext.Begin(req.Isolation, s.readOnly, req.Deferrable)
		if err != nil {
			return buf, err
		}
		s.begin = begin
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
			s.cache.Remove(bound[failed].SQL)
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
func (s *session) txRun(ctx context.Context, req *messages.ExecuteRequest, bound []sqltext.Bound, sh shape, buf []byte) (out []byte, failed int, cached bool, err error) {
	buf = append(buf, `{"results":[`...)
	var written int64
	for i, b := range bound {
		if i > 0 {
			buf = append(buf, ',')
		}
		ssh := sh
		ssh.One = req.Statements[i].Op == messages.OpOne
		var tag pgconn.CommandTag
		buf, tag, cached, err = s.txStatement(ctx, b, i == 0, ssh, buf)
		if err != nil {
			return buf, i, cached, err
		}
		if want := req.Statements[i].ExpectRows; want != nil && tag.RowsAffected() != *want {
			return buf, i, cached, messages.Errorf(messages.CodeConflict, "statement %d: %s, expected %d rows; the tx is rolled back", i, tag, *want)
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
func (s *session) txStatement(ctx context.Context, b sqltext.Bound, begin bool, sh shape, buf []byte) ([]byte, pgconn.CommandTag, bool, error) {
	var tag pgconn.CommandTag
	sd, cached, err := s.describe(ctx, b.SQL, begin)
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
		s.sendBegin(p, false)
	}
	p.SendQueryParams(sd.SQL, args.values, args.oids, nil, args.formats)
	if err := p.Sync(); err != nil {
		s.broken = true
		return buf, tag, cached, err
	}
	if begin {
		err = s.readBegin(p)
	}
	if err == nil {
		buf, tag, err = s.readStatement(p, args, sh, buf)
	}
	err = s.readSync(p, 'T', err)
	if cerr := p.Close(); cerr != nil && err == nil {
		s.broken = true
		err = cerr
	}
	return buf, tag, cached, err
}

// writtenRows is the number of rows a statement wrote: the count of INSERT,
// UPDATE, DELETE and MERGE, and 0 for anything else (a SELECT's count is rows
// read, even with FOR UPDATE).
func writtenRows(tag pgconn.CommandTag) int64 {
	if tag.Insert() || tag.Update() || tag.Delete() || strings.HasPrefix(tag.String(), "MERGE ") {
		return tag.RowsAffected()
	}
	return 0
}
