package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// ErrNoRows is returned by Row.Scan and CollectOneRow when there is no row,
// as pgx.ErrNoRows is.
var ErrNoRows = errors.New("no rows in result set")

// Row is the answer of QueryRow. Its error, if any, is deferred to Scan.
type Row struct {
	res *Result
	err error
}

// Scan decodes the row into dest, as CollectOneRow does: a pointer to a
// struct (fields matched to columns by their json tags, or by name without
// regard to case), a map or any; or, when the row has one column, a pointer
// to that column's value (an int, a string, a time.Time, a slice...). It
// returns ErrNoRows when there is no row, and the request's error when it
// failed.
func (r *Row) Scan(dest any) error {
	if r.err != nil {
		return r.err
	}
	raw, ok := oneRow(r.res)
	if !ok {
		return ErrNoRows
	}
	return decodeRow(raw, dest)
}

// CollectRows decodes every row of res into a T, as Row.Scan decodes one
// row: T is a struct, a map or any, or the type of a lone column. It takes
// res with the error of the call that made it, so calls chain:
//
//	users, err := client.CollectRows[User](c.Query(ctx, "SELECT id, email FROM users", nil))
//
// The rows are res.Rows, or res.Row for the answer of an Insert or a
// Statement run with QueryRow. An empty result is an empty slice.
func CollectRows[T any](res *Result, err error) ([]T, error) {
	if err != nil {
		return nil, err
	}
	if res == nil {
		return []T{}, nil
	}
	if len(res.Rows) == 0 || isNull(res.Rows) {
		if raw, ok := oneRow(res); ok {
			var v T
			if err := decodeRow(raw, &v); err != nil {
				return nil, err
			}
			return []T{v}, nil
		}
		return []T{}, nil
	}
	out := []T{}
	if wholeRow(reflect.TypeFor[T](), rowsAreArrays(res.Rows)) {
		if err := json.Unmarshal(res.Rows, &out); err != nil {
			return nil, fmt.Errorf("collect rows into %s: %w", reflect.TypeFor[T](), err)
		}
		return out, nil
	}
	var rows []json.RawMessage
	if err := json.Unmarshal(res.Rows, &rows); err != nil {
		return nil, fmt.Errorf("collect rows: %w", err)
	}
	out = make([]T, len(rows))
	for i, raw := range rows {
		if err := decodeRow(raw, &out[i]); err != nil {
			return nil, fmt.Errorf("row %d: %w", i, err)
		}
	}
	return out, nil
}

// CollectOneRow decodes the first row of res into a T, as CollectRows does,
// and returns ErrNoRows when there is none:
//
//	u, err := client.CollectOneRow[User](c.Insert(ctx, "users", map[string]any{"email": "ada@example.com"}))
func CollectOneRow[T any](res *Result, err error) (T, error) {
	var v T
	if err != nil {
		return v, err
	}
	raw, ok := oneRow(res)
	if !ok {
		return v, ErrNoRows
	}
	return v, decodeRow(raw, &v)
}

// oneRow returns res's single row (Row), or else its first row (Rows[0]).
func oneRow(res *Result) (json.RawMessage, bool) {
	if res == nil {
		return nil, false
	}
	if len(res.Row) > 0 && !isNull(res.Row) {
		return res.Row, true
	}
	if len(res.Rows) == 0 || isNull(res.Rows) {
		return nil, false
	}
	// Splitting every row to keep the first costs a copy of the rows; a
	// caller wanting one row mostly asks QueryRow, whose answer is in Row.
	var rows []json.RawMessage
	if json.Unmarshal(res.Rows, &rows) != nil || len(rows) == 0 {
		return nil, false
	}
	return rows[0], true
}

func isNull(b []byte) bool { return string(bytes.TrimSpace(b)) == "null" }

var (
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
)

// wholeRow reports whether a row decodes into a t as a whole, rather than
// its lone column into t. arrayRow says the row is an array (row_format
// "array") rather than an object.
func wholeRow(t reflect.Type, arrayRow bool) bool {
	if t == nil || t == rawMessageType {
		return true
	}
	switch t.Kind() {
	case reflect.Interface, reflect.Map:
		return true
	case reflect.Struct:
		return !reflect.PointerTo(t).Implements(unmarshalerType) // time.Time is a value
	case reflect.Slice, reflect.Array:
		return arrayRow
	}
	return false
}

// firstByte returns the first byte of b that is not JSON white space, or 0.
func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// rowsAreArrays reports whether the rows of rows (a JSON array of rows) are
// arrays.
func rowsAreArrays(rows []byte) bool {
	rows = bytes.TrimLeft(rows, " \t\r\n")
	return len(rows) > 0 && rows[0] == '[' && firstByte(rows[1:]) == '['
}

// decodeRow decodes one row into dest, whole or its lone column.
func decodeRow(raw json.RawMessage, dest any) error {
	t := reflect.TypeOf(dest)
	if t == nil || t.Kind() != reflect.Pointer {
		return fmt.Errorf("scan into %T: need a pointer", dest)
	}
	if wholeRow(t.Elem(), firstByte(raw) == '[') {
		return json.Unmarshal(raw, dest)
	}
	col, err := loneColumn(raw)
	if err != nil {
		return fmt.Errorf("scan into %s: %w", t.Elem(), err)
	}
	return json.Unmarshal(col, dest)
}

// loneColumn returns the value of a row of one column.
func loneColumn(raw json.RawMessage) (json.RawMessage, error) {
	if firstByte(raw) == '[' {
		var cols []json.RawMessage
		if err := json.Unmarshal(raw, &cols); err != nil {
			return nil, err
		}
		if len(cols) != 1 {
			return nil, fmt.Errorf("the row has %d columns, not one", len(cols))
		}
		return cols[0], nil
	}
	var cols map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cols); err != nil {
		return nil, err
	}
	for _, v := range cols {
		if len(cols) == 1 {
			return v, nil
		}
	}
	return nil, fmt.Errorf("the row has %d columns, not one", len(cols))
}
