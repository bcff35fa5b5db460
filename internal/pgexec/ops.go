package pgexec

import (
	"context"
	"encoding/json"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

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
