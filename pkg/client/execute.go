package client

import (
	"context"
	"encoding/json"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Result is the answer of db.execute. CollectRows and CollectOneRow decode
// its rows; ScanRows decodes them all into a slice.
type Result = messages.ExecuteResult

// CommandTag is what a statement did, as pgconn.CommandTag says it: its
// command tag ("INSERT 0 1", "UPDATE 3") and the rows it affected.
type CommandTag struct {
	command      string
	rowsAffected int64
}

// String is the command tag.
func (t CommandTag) String() string { return t.command }

// RowsAffected is the number of rows the statement affected.
func (t CommandTag) RowsAffected() int64 { return t.rowsAffected }

// Statement is one statement of a Tx.
type Statement struct {
	SQL  string
	Args Params
	// QueryRow runs the statement as QueryRow does (op "one"): its result
	// holds the first row only, in Row.
	QueryRow bool
	// ExpectRows, when set, is the number of rows the statement must write
	// or return; any other count rolls the whole Tx back and fails it with
	// an *Error (CONFLICT) naming the statement in FailedIndex. Expect(1)
	// makes one.
	ExpectRows *int64
}

// Expect returns n as a Statement.ExpectRows.
func Expect(n int64) *int64 { return &n }

// Execute sends any db.execute request, after applying opts. The typed
// methods cover every op; Execute is for what they do not name, such as a
// named query ({"query": "active_users"}). Its answer is one message, as
// the protocol gives it: past the worker's DB_MAX_ROWS it says Truncated,
// past the max payload it is TOO_LARGE (QueryStream has neither bound).
func (c *Client) Execute(ctx context.Context, req *messages.ExecuteRequest, opts ...QueryOption) (*Result, error) {
	if err := applyQuery(req, opts); err != nil {
		return nil, err
	}
	c.defaults(req)
	var res Result
	if err := c.do(ctx, subjects.DBExecute, req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// applyQuery applies opts to req.
func applyQuery(req *messages.ExecuteRequest, opts []QueryOption) error {
	for _, o := range opts {
		if err := o.applyQuery(req); err != nil {
			return err
		}
	}
	return nil
}

// execFunc sends a db.execute body: to db.execute (Client.Execute), or to
// an interactive transaction (Tx.Execute). The SQL methods of both are built
// on it.
type execFunc func(ctx context.Context, req *messages.ExecuteRequest, opts ...QueryOption) (*Result, error)

// statement runs one statement of op with args.
func (exec execFunc) statement(ctx context.Context, op messages.Op, sql string, args Params, opts []QueryOption) (*Result, error) {
	raw, err := encodeParams(args)
	if err != nil {
		return nil, err
	}
	return exec(ctx, &messages.ExecuteRequest{Op: op, SQL: sql, Params: raw}, opts...)
}

// queryRow, exec, many, insert and update are the methods of the same names
// on Client and Tx; Query is built on QueryStream (rows.go).

func (exec execFunc) queryRow(ctx context.Context, sql string, args Params, opts []QueryOption) *Row {
	res, err := exec.statement(ctx, messages.OpOne, sql, args, opts)
	return &Row{res: res, err: err}
}

func (exec execFunc) exec(ctx context.Context, sql string, args Params, opts []QueryOption) (CommandTag, error) {
	res, err := exec.statement(ctx, messages.OpQuery, sql, args, append([]QueryOption{WithMaxRows(0)}, opts...))
	if err != nil {
		return CommandTag{}, err
	}
	return CommandTag{command: res.Command, rowsAffected: res.RowsAffected}, nil
}

func (exec execFunc) many(ctx context.Context, sql string, argsList []Params, opts []QueryOption) (*Result, error) {
	list := make([]json.RawMessage, len(argsList))
	for i, a := range argsList {
		raw, err := encodeParams(a)
		if err != nil {
			return nil, err
		}
		list[i] = raw
	}
	return exec(ctx, &messages.ExecuteRequest{Op: messages.OpMany, SQL: sql, ParamsList: list}, opts...)
}

func (exec execFunc) insert(ctx context.Context, table string, data map[string]any, opts []QueryOption) (*Result, error) {
	enc, err := encodeData(data)
	if err != nil {
		return nil, err
	}
	return exec(ctx, &messages.ExecuteRequest{Op: messages.OpInsert, Table: table, Data: enc}, opts...)
}

func (exec execFunc) update(ctx context.Context, table string, data map[string]any, where string, args NamedArgs, opts []QueryOption) (CommandTag, error) {
	enc, err := encodeData(data)
	if err != nil {
		return CommandTag{}, err
	}
	raw, err := encodeParams(args)
	if err != nil {
		return CommandTag{}, err
	}
	res, err := exec(ctx, &messages.ExecuteRequest{Op: messages.OpUpdate, Table: table, Data: enc, Where: where, WhereParams: raw}, opts...)
	if err != nil {
		return CommandTag{}, err
	}
	return CommandTag{command: res.Command, rowsAffected: res.RowsAffected}, nil
}

// Query runs one statement and returns all its rows, however many: an
// answer too large for one message is streamed (QueryStream) and gathered
// here, so it holds them all in memory. WithMaxRows caps them, and Truncated
// then says when rows were cut; no other cap applies, and an answer cut
// without one (by an older worker's DB_MAX_ROWS) is ErrTruncated, never
// returned short. args may be nil.
func (c *Client) Query(ctx context.Context, sql string, args Params, opts ...QueryOption) (*Result, error) {
	rows, err := c.QueryStream(ctx, sql, args, opts...)
	if err != nil {
		return nil, err
	}
	return rows.collect()
}

// QueryRow runs one statement for its first row. Errors are deferred to the
// Row's Scan, which returns ErrNoRows when there is no row:
//
//	var email string
//	err := c.QueryRow(ctx, "SELECT email FROM users WHERE id = $1", client.Args{7}).Scan(&email)
func (c *Client) QueryRow(ctx context.Context, sql string, args Params, opts ...QueryOption) *Row {
	return execFunc(c.Execute).queryRow(ctx, sql, args, opts)
}

// Exec runs one statement for what it does, not for rows: no row is sent
// back, even by a statement that returns some.
func (c *Client) Exec(ctx context.Context, sql string, args Params, opts ...QueryOption) (CommandTag, error) {
	return execFunc(c.Execute).exec(ctx, sql, args, opts)
}

// Many runs one statement once per item of argsList, as one pipelined batch
// in one transaction: every item applies or none, and a failure's *Error
// names the item in FailedIndex. Results holds one Query answer per item.
func (c *Client) Many(ctx context.Context, sql string, argsList []Params, opts ...QueryOption) (*Result, error) {
	return execFunc(c.Execute).many(ctx, sql, argsList, opts)
}

// Script runs any number of statements, without parameters, in one
// transaction; the answer's Commands holds every command tag.
func (c *Client) Script(ctx context.Context, sql string, opts ...QueryOption) (*Result, error) {
	return c.Execute(ctx, &messages.ExecuteRequest{Op: messages.OpScript, SQL: sql}, opts...)
}

// Tx runs statements in one transaction, one round trip each; a failure
// rolls back all of them and its *Error names the statement in FailedIndex.
// Results holds one answer per statement.
func (c *Client) Tx(ctx context.Context, statements []Statement, opts ...QueryOption) (*Result, error) {
	req := &messages.ExecuteRequest{Op: messages.OpTx, Statements: make([]messages.Statement, len(statements))}
	for i, s := range statements {
		raw, err := encodeParams(s.Args)
		if err != nil {
			return nil, err
		}
		req.Statements[i] = messages.Statement{SQL: s.SQL, Params: raw, ExpectRows: s.ExpectRows}
		if s.QueryRow {
			req.Statements[i].Op = messages.OpOne
		}
	}
	return c.Execute(ctx, req, opts...)
}

// Insert inserts one row of data (column: value) into table and returns it
// in Row: every column, or those of WithReturning. CollectOneRow decodes it.
func (c *Client) Insert(ctx context.Context, table string, data map[string]any, opts ...QueryOption) (*Result, error) {
	return execFunc(c.Execute).insert(ctx, table, data, opts)
}

// Update sets data on the rows of table matching where (one SQL condition
// with :name placeholders bound from args) and says how many it changed. An
// empty where is refused by the worker unless WithAllRows is given.
func (c *Client) Update(ctx context.Context, table string, data map[string]any, where string, args NamedArgs, opts ...QueryOption) (CommandTag, error) {
	return execFunc(c.Execute).update(ctx, table, data, where, args, opts)
}
