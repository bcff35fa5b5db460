package pgexec

import (
	"context"
	"encoding/json"
	"sort"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/sqltext"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/table"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// insert inserts one row: identifiers checked against the catalog and quoted,
// values bound by the columns' types.
func (s *session) insert(ctx context.Context, req *messages.ExecuteRequest, sh shape, buf []byte) ([]byte, error) {
	t, err := table.Resolve(ctx, s.pg, req.Table)
	if err != nil {
		return buf, err
	}
	cols := sortedKeys(req.Data)
	sql, err := t.InsertSQL(cols, req.Returning)
	if err != nil {
		return buf, err
	}
	b := sqltext.Bound{SQL: sql, Args: make([]json.RawMessage, len(cols)), Names: cols}
	for i, col := range cols {
		b.Args[i] = req.Data[col]
	}
	sh.One = true
	return s.statement(ctx, b, "INSERT", sh, buf)
}

// update sets data on the rows matching where (SQL with :name placeholders
// bound from where_params).
func (s *session) update(ctx context.Context, req *messages.ExecuteRequest, sh shape, buf []byte) ([]byte, error) {
	t, err := table.Resolve(ctx, s.pg, req.Table)
	if err != nil {
		return buf, err
	}
	cols := sortedKeys(req.Data)
	var where sqltext.Bound
	if req.Where != "" {
		sc := sqltext.Scan(req.Where)
		if len(sc.Statements) > 1 {
			return buf, messages.BadRequest("where", "where must be one condition, not several statements")
		}
		if err := sqltext.CheckParamCount("where_params", len(cols)+sc.Named); err != nil {
			return buf, err
		}
		if where, err = sqltext.BindScanned(req.Where, sc, req.WhereParams, len(cols)); err != nil {
			return buf, err
		}
	}
	sql, err := t.UpdateSQL(cols, where.SQL)
	if err != nil {
		return buf, err
	}
	b := sqltext.Bound{SQL: sql, Args: make([]json.RawMessage, 0, len(cols)+len(where.Args)), Names: append(append([]string(nil), cols...), where.Names...)}
	for _, col := range cols {
		b.Args = append(b.Args, req.Data[col])
	}
	b.Args = append(b.Args, where.Args...)
	sh.TagOnly = true
	return s.statement(ctx, b, "UPDATE", sh, buf)
}

// withIndex records which statement or item failed.
func withIndex(err error, i int) error {
	me := pgerr.AsError(err)
	cp := *me
	cp.FailedIndex = &i
	return &cp
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
