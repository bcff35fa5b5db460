package pgexec

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// many runs one statement once per item of params_list, as one pipelined
// batch in one transaction: all items apply or none.
func (s *session) many(ctx context.Context, req *messages.ExecuteRequest, sh shape, buf []byte) ([]byte, error) {
	sc := scanSQL(req.SQL)
	if err := s.checkStatements(sc, false); err != nil {
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
	// An explicit transaction (not the batch's implicit one), so that an
	// answer found TOO_LARGE, or any failure, rolls every item back.
	var out []byte
	err := s.inTx(ctx, true, func() error {
		var err error
		out, err = s.batch(ctx, items, sh, buf)
		return err
	})
	return out, err
}

func (s *session) batch(ctx context.Context, items []boundSQL, sh shape, buf []byte) ([]byte, error) {
	batch := &pgconn.Batch{}
	types := make(map[uint32]*typeInfo)
	for i, b := range items {
		sd, _, err := s.describe(ctx, b.sql)
		if err != nil {
			return buf, withIndex(err, i)
		}
		args, err := s.encodeArgs(ctx, sd, b, "params_list")
		if err != nil {
			return buf, withIndex(err, i)
		}
		for oid, t := range args.types {
			types[oid] = t
		}
		batch.ExecPrepared(sd.Name, args.values, nil, args.formats)
	}
	mrr := s.pg.ExecBatch(ctx, batch)
	start := len(buf)
	buf = append(buf, `{"results":[`...)
	var total int64
	i := 0
	var firstErr error
	for mrr.NextResult() {
		if firstErr != nil {
			_, _ = mrr.ResultReader().Close()
			continue
		}
		if i > 0 {
			buf = append(buf, ',')
		}
		var tag pgconn.CommandTag
		var err error
		buf, tag, err = s.readResult(mrr.ResultReader(), types, sh, buf)
		if err != nil {
			firstErr = withIndex(err, i)
		}
		total += tag.RowsAffected()
		i++
	}
	if err := mrr.Close(); err != nil && firstErr == nil {
		firstErr = withIndex(err, min(i, len(items)-1))
	}
	if firstErr != nil {
		return buf[:start], firstErr
	}
	buf = append(buf, `],"rows_affected":`...)
	buf = strconv.AppendInt(buf, total, 10)
	return append(buf, '}'), nil
}

// script runs several statements with the simple protocol, as one implicit
// transaction, and answers their command tags.
func (s *session) script(ctx context.Context, sql string, buf []byte) ([]byte, error) {
	sc := scanSQL(sql)
	if err := s.checkStatements(sc, true); err != nil {
		return buf, err
	}
	var tags []pgconn.CommandTag
	err := s.inTx(ctx, s.readOnly, func() error {
		// Rows a script's SELECTs return are read and dropped, never held.
		mrr := s.pg.Exec(ctx, sql)
		for mrr.NextResult() {
			rr := mrr.ResultReader()
			for rr.NextRow() {
			}
			if tag, err := rr.Close(); err == nil {
				s.noteTag(tag)
				tags = append(tags, tag)
			}
		}
		return mrr.Close()
	})
	if err != nil {
		return buf, err
	}
	var total int64
	buf = append(buf, `{"commands":[`...)
	last := ""
	for i, tag := range tags {
		if i > 0 {
			buf = append(buf, ',')
		}
		last = tag.String()
		buf = appendJSONString(buf, last)
		total += tag.RowsAffected()
	}
	buf = append(buf, `],"command":`...)
	buf = appendJSONString(buf, last)
	buf = append(buf, `,"rows_affected":`...)
	buf = strconv.AppendInt(buf, total, 10)
	return append(buf, '}'), nil
}

// tx runs statements in one transaction; the first failure rolls back all and
// names its index.
func (s *session) tx(ctx context.Context, req *messages.ExecuteRequest, sh shape, buf []byte) ([]byte, error) {
	if err := s.begin(ctx); err != nil {
		return buf, err
	}
	start := len(buf)
	buf = append(buf, `{"results":[`...)
	var total int64
	for i, st := range req.Statements {
		if i > 0 {
			buf = append(buf, ',')
		}
		ssh := sh
		ssh.one = st.Op == messages.OpOne
		var tag pgconn.CommandTag
		var err error
		buf, tag, err = s.run(ctx, st.SQL, st.Params, ssh, buf)
		if err != nil {
			s.rollback()
			return buf[:start], withIndex(err, i)
		}
		total += tag.RowsAffected()
	}
	if err := s.commit(ctx); err != nil {
		return buf[:start], err
	}
	buf = append(buf, `],"rows_affected":`...)
	buf = strconv.AppendInt(buf, total, 10)
	return append(buf, '}'), nil
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
	out, _, err := s.exec(ctx, b, sh, buf)
	return out, err
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
	out, _, err := s.exec(ctx, b, sh, buf)
	return out, err
}

// withIndex records which statement or item failed.
func withIndex(err error, i int) error {
	me := AsError(err)
	cp := *me
	cp.FailedIndex = &i
	return &cp
}
