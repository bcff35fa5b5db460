package messages

import "encoding/json"

// Op is the op of a db.execute request, or of one statement of a "tx".
type Op string

// Ops of db.execute. An empty op is OpQuery.
const (
	OpQuery  Op = "query"
	OpOne    Op = "one"
	OpMany   Op = "many"
	OpScript Op = "script"
	OpTx     Op = "tx"
	OpInsert Op = "insert"
	OpUpdate Op = "update"
)

// Row formats of db.execute answers.
const (
	RowFormatObject = "object"
	RowFormatArray  = "array"
)

// ExecuteRequest is the body of a db.execute request.
type ExecuteRequest struct {
	Op  Op     `json:"op,omitempty"`
	SQL string `json:"sql,omitempty"`
	// Query names a configured named query to run instead of SQL.
	Query string `json:"query,omitempty"`
	// Params is a JSON object (binds :name) or array (binds $n or ?).
	Params json.RawMessage `json:"params,omitempty"`
	// ParamsList holds one Params per item of a "many" request.
	ParamsList []json.RawMessage `json:"params_list,omitempty"`
	Statements []Statement       `json:"statements,omitempty"`

	Table       string                     `json:"table,omitempty"`
	Data        map[string]json.RawMessage `json:"data,omitempty"`
	Returning   []string                   `json:"returning,omitempty"`
	Where       string                     `json:"where,omitempty"`
	WhereParams json.RawMessage            `json:"where_params,omitempty"`
	AllRows     bool                       `json:"all_rows,omitempty"`

	MaxRows   *int   `json:"max_rows,omitempty"`
	TimeoutMS *int   `json:"timeout_ms,omitempty"`
	ReadOnly  bool   `json:"read_only,omitempty"`
	RowFormat string `json:"row_format,omitempty"`
	// SafeNumbers, when true, answers numeric values, and int8 values past
	// ±(2^53−1), as JSON strings of their exact digits (for callers whose
	// JSON numbers are float64, such as JavaScript); nil takes the worker's
	// default (DB_SAFE_NUMBERS, normally false).
	SafeNumbers *bool `json:"safe_numbers,omitempty"`

	// Isolation and Deferrable open an op "tx" transaction (with ReadOnly):
	// Isolation* levels, "" for the database's default.
	Isolation  string `json:"isolation,omitempty"`
	Deferrable bool   `json:"deferrable,omitempty"`
}

// Statement is one statement of a "tx" request.
type Statement struct {
	SQL    string          `json:"sql"`
	Params json.RawMessage `json:"params,omitempty"`
	// Op is "query" (default) or "one"; it shapes the statement's result.
	Op Op `json:"op,omitempty"`
	// ExpectRows, when set, is the number of rows the statement must write
	// (or return): any other count rolls back the whole tx, answered
	// CONFLICT with the statement's index.
	ExpectRows *int64 `json:"expect_rows,omitempty"`
}

// Column describes one result column.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// ExecuteResult is the answer of db.execute. Which fields are set depends on
// the op; docs/protocol.md lists them. Rows and Row are raw JSON: objects, or
// arrays with row_format "array".
type ExecuteResult struct {
	Columns      []Column        `json:"columns,omitempty"`
	Rows         json.RawMessage `json:"rows,omitempty"`
	Row          json.RawMessage `json:"row,omitempty"`
	RowsAffected int64           `json:"rows_affected"`
	Command      string          `json:"command,omitempty"`
	Commands     []string        `json:"commands,omitempty"`
	Truncated    bool            `json:"truncated,omitempty"`
	// Results holds one answer per statement (tx) or item (many).
	Results []ExecuteResult `json:"results,omitempty"`
}

// ScanRows decodes Rows into dest, a pointer to a slice (of structs with json
// tags, or of maps); no rows decode as an empty slice.
func (r *ExecuteResult) ScanRows(dest any) error {
	if len(r.Rows) == 0 {
		return json.Unmarshal([]byte("[]"), dest)
	}
	return json.Unmarshal(r.Rows, dest)
}
