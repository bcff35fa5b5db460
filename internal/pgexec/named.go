package pgexec

import (
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// resolveNamed turns a request naming a query into the query's statement,
// and refuses ad-hoc SQL when the executor allows only named queries.
func (e *Executor) resolveNamed(req *messages.ExecuteRequest) (*messages.ExecuteRequest, bool, error) {
	if req.Query == "" {
		if e.cfg.NamedOnly {
			return nil, false, messages.Errorf(messages.CodeForbidden, "ad-hoc SQL is disabled by configuration; run a named query: {\"query\":\"<name>\",\"params\":{...}}")
		}
		return req, false, nil
	}
	q, ok := e.cfg.NamedQueries[req.Query]
	if !ok {
		return nil, false, messages.Errorf(messages.CodeNotFound, "no named query %q", req.Query)
	}
	if req.SQL != "" || len(req.Statements) > 0 || req.Table != "" || (req.Op != "" && req.Op != q.Op) {
		return nil, false, messages.BadRequest("query", "a named query takes only params and the common fields (max_rows, timeout_ms, read_only, row_format)")
	}
	cp := *req
	cp.Op, cp.SQL = q.Op, q.SQL
	return &cp, q.ReadOnly, nil
}
