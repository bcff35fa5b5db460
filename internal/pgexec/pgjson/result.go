package pgjson

import (
	"errors"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Shape says how a result is written.
type Shape struct {
	One      bool // write "row" (the first row or null) instead of "rows"
	Arrays   bool // rows as arrays in column order
	MaxRows  int  // rows past it are read and dropped, and "truncated" is true
	TagOnly  bool // write only rows_affected and command
	MaxBytes int  // past it the result is TOO_LARGE (0: no bound), or streamed with Emit
	// SafeNumbers writes numeric, and int8 past ±MaxSafeInteger, as strings.
	SafeNumbers bool
	// Emit takes the rows in chunks once they pass MaxBytes (Output.Emit);
	// ignored with One or TagOnly.
	Emit func(chunk []byte) error
}

// WriteResult reads one result and writes it as a JSON object: columns and
// rows (or row), then rows_affected, command and truncated. types holds the
// type of each column. On error buf is returned as it was given, with the
// result read to its end. With sh.Emit set, rows past sh.MaxBytes leave in
// chunks and the object written is the stream's totals (Output.Emit).
func WriteResult(rr *pgconn.ResultReader, types []*Type, sh Shape, buf []byte) ([]byte, pgconn.CommandTag, error) {
	start := len(buf)
	fields := rr.FieldDescriptions()
	colTypes := types
	if sh.TagOnly {
		tag, err := rr.Close()
		if err != nil {
			return buf, tag, err
		}
		buf = append(buf, `{"rows_affected":`...)
		buf = strconv.AppendInt(buf, tag.RowsAffected(), 10)
		buf = append(buf, `,"command":`...)
		buf = AppendString(buf, tag.String())
		return append(buf, '}'), tag, nil
	}
	// Column names as JSON strings, encoded once for every row.
	names := make([][]byte, len(fields))
	for i, f := range fields {
		names[i] = AppendString(nil, f.Name)
	}
	buf = append(buf, `{"columns":[`...)
	for i := range fields {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"name":`...)
		buf = append(buf, names[i]...)
		buf = append(buf, `,"type":`...)
		buf = AppendString(buf, colTypes[i].Name)
		buf = append(buf, '}')
	}
	buf = append(buf, ']')
	if sh.One {
		buf = append(buf, `,"row":`...)
	} else {
		buf = append(buf, `,"rows":[`...)
	}
	rf := RowFormat{Arrays: sh.Arrays, SafeNumbers: sh.SafeNumbers, Limit: sh.MaxBytes}
	count, truncated, tooLarge := 0, false, false
	var encErr, emitErr error
	var ch *chunker
	if sh.Emit != nil && !sh.One && sh.MaxBytes > 0 {
		ch = &chunker{emit: sh.Emit, start: start}
	}
	inChunk := 0 // rows written since the start of the answer or of the chunk
	for rr.NextRow() {
		if tooLarge || encErr != nil || emitErr != nil {
			continue // drain
		}
		if (sh.One && count >= 1) || (!sh.One && count >= sh.MaxRows) {
			truncated = !sh.One
			continue
		}
		rowStart := len(buf)
		if inChunk > 0 {
			buf = append(buf, ',')
		}
		buf, encErr = AppendRow(buf, rr.Values(), colTypes, names, rf)
		if ch != nil && inChunk > 0 && errors.Is(encErr, ErrTooLarge) {
			// The chunk is full: send it, and begin the next with this row.
			if buf, emitErr = ch.flush(buf[:rowStart], true); emitErr != nil {
				continue
			}
			buf, encErr = AppendRow(buf, rr.Values(), colTypes, names, rf)
			inChunk = 0
		}
		count++
		inChunk++
		if errors.Is(encErr, ErrTooLarge) {
			tooLarge, encErr = true, nil
		}
	}
	tag, err := rr.Close()
	switch {
	case emitErr != nil:
		return buf[:start], tag, emitErr
	case err != nil:
		return buf[:start], tag, err
	case encErr != nil:
		return buf[:start], tag, messages.Errorf(messages.CodeInternal, "encode result: %v", encErr)
	case tooLarge && ch != nil && ch.chunks > 0:
		return buf[:start], tag, messages.Errorf(messages.CodeTooLarge, "row %d would exceed %d bytes on its own, the most one message of the stream carries", count, sh.MaxBytes)
	case tooLarge:
		return buf[:start], tag, messages.Errorf(messages.CodeTooLarge, "the answer would exceed %d bytes; lower max_rows or select fewer columns", sh.MaxBytes)
	}
	rowsEnd := len(buf)
	if sh.One {
		if count == 0 {
			buf = append(buf, "null"...)
		}
	} else {
		buf = append(buf, ']')
	}
	buf = append(buf, `,"rows_affected":`...)
	buf = strconv.AppendInt(buf, tag.RowsAffected(), 10)
	buf = append(buf, `,"command":`...)
	buf = AppendString(buf, tag.String())
	if !sh.One {
		buf = append(buf, `,"truncated":`...)
		buf = strconv.AppendBool(buf, truncated)
	}
	buf = append(buf, '}')
	if ch == nil || ch.chunks == 0 && len(buf) <= sh.MaxBytes {
		return buf, tag, nil
	}
	// Streamed: the last rows leave as a chunk, and the answer is the totals.
	if buf, err = ch.flush(buf[:rowsEnd], false); err != nil {
		return buf[:start], tag, err
	}
	return appendTotals(buf[:start], count, tag.RowsAffected(), tag.String(), truncated), tag, nil
}
