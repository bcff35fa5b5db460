package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Result is the answer of db.execute; ScanRows decodes its rows.
type Result = messages.ExecuteResult

// Execute sends any db.execute request.
func (c *Client) Execute(ctx context.Context, req *messages.ExecuteRequest) (*Result, error) {
	var res Result
	if err := c.do(ctx, "db.execute", req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func params(p any) (json.RawMessage, error) {
	if p == nil {
		return nil, nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode params: %w", err)
	}
	return b, nil
}

// Query runs one statement. params is a map (for :name placeholders), a
// slice (for $n or ?) or nil.
func (c *Client) Query(ctx context.Context, sql string, p any) (*Result, error) {
	raw, err := params(p)
	if err != nil {
		return nil, err
	}
	return c.Execute(ctx, &messages.ExecuteRequest{Op: messages.OpQuery, SQL: sql, Params: raw})
}

// QueryOne runs one statement and decodes its first row into dest. It
// reports false, leaving dest alone, when there is no row.
func (c *Client) QueryOne(ctx context.Context, dest any, sql string, p any) (bool, error) {
	raw, err := params(p)
	if err != nil {
		return false, err
	}
	res, err := c.Execute(ctx, &messages.ExecuteRequest{Op: messages.OpOne, SQL: sql, Params: raw})
	if err != nil {
		return false, err
	}
	if len(res.Row) == 0 || string(res.Row) == "null" {
		return false, nil
	}
	return true, json.Unmarshal(res.Row, dest)
}

// Insert inserts one row and returns it (the returning columns; all by default).
func (c *Client) Insert(ctx context.Context, table string, data map[string]any, returning ...string) (map[string]any, error) {
	req := &messages.ExecuteRequest{Op: messages.OpInsert, Table: table, Data: map[string]json.RawMessage{}, Returning: returning}
	for k, v := range data {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", k, err)
		}
		req.Data[k] = b
	}
	res, err := c.Execute(ctx, req)
	if err != nil {
		return nil, err
	}
	var row map[string]any
	if len(res.Row) > 0 {
		if err := json.Unmarshal(res.Row, &row); err != nil {
			return nil, err
		}
	}
	return row, nil
}

// Update sets data on the rows matching where (SQL with :name placeholders
// bound from whereParams) and returns how many it changed. An empty where is
// refused by the worker; use Execute with AllRows to update every row.
func (c *Client) Update(ctx context.Context, table string, data map[string]any, where string, whereParams map[string]any) (int64, error) {
	req := &messages.ExecuteRequest{Op: messages.OpUpdate, Table: table, Data: map[string]json.RawMessage{}, Where: where}
	for k, v := range data {
		b, err := json.Marshal(v)
		if err != nil {
			return 0, fmt.Errorf("encode %s: %w", k, err)
		}
		req.Data[k] = b
	}
	var err error
	if req.WhereParams, err = params(whereParams); err != nil {
		return 0, err
	}
	res, err := c.Execute(ctx, req)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected, nil
}

// Statement is one statement of a transaction.
type Statement = messages.Statement

// Tx runs statements in one transaction; a failure rolls back all of them
// and its *Error names the statement in FailedIndex.
func (c *Client) Tx(ctx context.Context, statements ...Statement) (*Result, error) {
	return c.Execute(ctx, &messages.ExecuteRequest{Op: messages.OpTx, Statements: statements})
}
