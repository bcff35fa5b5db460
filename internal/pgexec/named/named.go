// Package named reads the named-queries file (DB_NAMED_QUERIES): the
// statements callers run by name, {"query":"active_users","params":{...}},
// and, with ad-hoc SQL disabled, the worker's allowlist.
package named

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"

	"go.yaml.in/yaml/v3"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/sqltext"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Query is a statement callers run by name.
type Query struct {
	SQL string `yaml:"sql"`
	// Op is query (default) or one.
	Op messages.Op `yaml:"op"`
	// ReadOnly runs it in a READ ONLY transaction whatever the request says.
	ReadOnly bool `yaml:"read_only"`
}

var queryNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Load reads a named-queries file:
//
//	queries:
//	  active_users:
//	    sql: SELECT id, email FROM users WHERE active = :active
//	    read_only: true
//	  user_by_id:
//	    sql: SELECT * FROM users WHERE id = :id
//	    op: one
func Load(path string) (map[string]Query, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("named queries: %w", err)
	}
	defer f.Close()
	return Parse(f)
}

// Parse reads named queries and checks each: a valid name, one
// statement, a known op.
func Parse(r io.Reader) (map[string]Query, error) {
	var file struct {
		Queries map[string]Query `yaml:"queries"`
	}
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("named queries: %w", err)
	}
	for name, q := range file.Queries {
		if !queryNameRE.MatchString(name) {
			return nil, fmt.Errorf("named query %q: names are [A-Za-z0-9_.-]+", name)
		}
		if n := len(sqltext.Scan(q.SQL).Statements); n != 1 {
			return nil, fmt.Errorf("named query %q: sql must hold one statement, has %d", name, n)
		}
		switch q.Op {
		case "":
			q.Op = messages.OpQuery
		case messages.OpQuery, messages.OpOne:
		default:
			return nil, fmt.Errorf("named query %q: op must be query or one, got %q", name, q.Op)
		}
		file.Queries[name] = q
	}
	return file.Queries, nil
}

// Resolve turns a request naming a query of queries into the query's
// statement, and reports whether the query is read-only. With namedOnly (the
// allowlist) it refuses a request that names none.
func Resolve(queries map[string]Query, namedOnly bool, req *messages.ExecuteRequest) (*messages.ExecuteRequest, bool, error) {
	if req.Query == "" {
		if namedOnly {
			return nil, false, messages.Errorf(messages.CodeForbidden, "ad-hoc SQL is disabled by configuration; run a named query: {\"query\":\"<name>\",\"params\":{...}}")
		}
		return req, false, nil
	}
	q, ok := queries[req.Query]
	if !ok {
		return nil, false, messages.Errorf(messages.CodeNotFound, "no named query %q", req.Query)
	}
	if req.SQL != "" || len(req.Statements) > 0 || req.Table != "" || (req.Op != "" && req.Op != q.Op) {
		return nil, false, messages.BadRequest("query", "a named query takes only params and the common fields (max_rows, timeout_ms, read_only, row_format, safe_numbers)")
	}
	cp := *req
	cp.Op, cp.SQL = q.Op, q.SQL
	return &cp, q.ReadOnly, nil
}
