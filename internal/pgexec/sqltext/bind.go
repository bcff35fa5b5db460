package sqltext

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Bound is a statement rewritten to $n placeholders with its arguments in
// number order, still as raw JSON.
type Bound struct {
	SQL   string
	Args  []json.RawMessage
	Names []string // what each $n was called in the request: "id", "$2", "?1"
}

// Bind matches params against the placeholders of sql. An object binds :name,
// an array binds $n or, when the SQL has no $n, ? in order. offset shifts the
// numbers given to :name and ? (update puts its data columns first).
func Bind(sql string, params json.RawMessage, offset int) (Bound, error) {
	sc := Scan(sql)
	return BindScanned(sql, sc, params, offset)
}

// MaxParams is the protocol's limit on a statement's parameters: Bind counts
// them in an int16.
const MaxParams = 65535

// CheckParamCount refuses more parameters than the protocol carries.
func CheckParamCount(field string, n int) error {
	if n > MaxParams {
		return messages.BadRequest(field, "the statement has %d parameters; PostgreSQL takes at most %d", n, MaxParams)
	}
	return nil
}

func BindScanned(sql string, sc Scanned, params json.RawMessage, offset int) (Bound, error) {
	b, err := bindParams(sql, sc, params, offset)
	if err == nil {
		err = CheckParamCount("params", offset+len(b.Args))
	}
	return b, err
}

func bindParams(sql string, sc Scanned, params json.RawMessage, offset int) (Bound, error) {
	params = bytes.TrimSpace(params)
	switch {
	case len(params) == 0 || string(params) == "null":
		if sc.Named > 0 {
			for _, p := range sc.Placeholders {
				if p.Style == Named {
					return Bound{}, messages.BadRequest(p.Name, "missing parameter :%s", p.Name)
				}
			}
		}
		return Bound{SQL: sql}, nil
	case params[0] == '{':
		var m map[string]json.RawMessage
		if err := json.Unmarshal(params, &m); err != nil {
			return Bound{}, messages.BadRequest("params", "params: %v", err)
		}
		if sc.Positional > 0 {
			return Bound{}, messages.BadRequest("params", "params is an object but the SQL uses $n placeholders; pass an array")
		}
		out, names := Rewrite(sql, sc.Placeholders, Named, offset)
		b := Bound{SQL: out, Names: names, Args: make([]json.RawMessage, len(names))}
		for i, name := range names {
			v, ok := m[name]
			if !ok {
				return Bound{}, messages.BadRequest(name, "missing parameter :%s", name)
			}
			b.Args[i] = v
		}
		if len(m) > len(names) {
			for name := range m {
				if !contains(names, name) {
					return Bound{}, messages.BadRequest(name, "unused parameter %q: the SQL has no :%s", name, name)
				}
			}
		}
		return b, nil
	case params[0] == '[':
		var list []json.RawMessage
		if err := json.Unmarshal(params, &list); err != nil {
			return Bound{}, messages.BadRequest("params", "params: %v", err)
		}
		if sc.Positional > 0 {
			if offset != 0 {
				return Bound{}, messages.BadRequest("where", "where uses $n placeholders; use :name with where_params")
			}
			used := make([]bool, len(list))
			for _, p := range sc.Placeholders {
				if p.Style != Positional {
					continue
				}
				if p.Index < 1 || p.Index > len(list) {
					return Bound{}, messages.BadRequest("$"+strconv.Itoa(p.Index), "missing parameter $%d: params has %d values", p.Index, len(list))
				}
				used[p.Index-1] = true
			}
			names := make([]string, len(list))
			for i := range list {
				if !used[i] {
					return Bound{}, messages.BadRequest("$"+strconv.Itoa(i+1), "unused parameter $%d: the SQL never uses it", i+1)
				}
				names[i] = "$" + strconv.Itoa(i+1)
			}
			return Bound{SQL: sql, Args: list, Names: names}, nil
		}
		if sc.Question != len(list) {
			return Bound{}, messages.BadRequest("params", "params has %d values but the SQL has %d ? placeholders", len(list), sc.Question)
		}
		out, names := Rewrite(sql, sc.Placeholders, Question, offset)
		return Bound{SQL: out, Args: list, Names: names}, nil
	default:
		return Bound{}, messages.BadRequest("params", "params must be a JSON object or array")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
