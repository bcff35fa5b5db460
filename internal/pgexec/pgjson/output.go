package pgjson

import (
	"math"
	"strconv"
)

// Output is where a request's answer goes and how large it may grow.
type Output struct {
	// MaxBytes bounds an answer: past it a result is TOO_LARGE, or, for a
	// query with Emit set, streamed. 0 means no bound (and no stream).
	MaxBytes int
	// Emit, when set, lets a query's rows (not one, many, tx, insert or
	// update) leave in chunks instead of one answer, once they pass
	// MaxBytes. Each chunk is a JSON object of its own, at most about
	// MaxBytes: {"columns":[...],"rows":[...]} first, then {"rows":[...]};
	// the answer returned after a stream is the totals,
	// {"row_count":N,"rows_affected":N,"command":"...","truncated":false}.
	// A result that fits MaxBytes is answered whole, as without Emit.
	//
	// Emit must be done with chunk when it returns (the buffer is reused).
	// An error from it stops the encoding: the rest of the result is read
	// and dropped, and the error is the result's. A request with Emit set
	// has no default row cap: max_rows is the caller's alone.
	Emit func(chunk []byte) error
}

// RowCap is the row cap of a request whose cap is otherwise capRows: none
// when the answer may be streamed, where max_rows is the caller's alone.
func (o Output) RowCap(capRows int) int {
	if o.Emit != nil {
		return math.MaxInt
	}
	return capRows
}

// chunker splits a result's rows into the chunks of a stream (see
// Output.Emit). buf[start:] holds the chunk being written.
type chunker struct {
	emit   func([]byte) error
	start  int
	chunks int // chunks emitted
	rows   int // rows in the chunk being written
}

// flush closes the chunk in buf[start:], hands it to emit and starts the
// next one ({"rows":[) when more follow.
func (c *chunker) flush(buf []byte, more bool) ([]byte, error) {
	buf = append(buf, "]}"...)
	err := c.emit(buf[c.start:])
	c.chunks++
	c.rows = 0
	buf = buf[:c.start]
	if more {
		buf = append(buf, `{"rows":[`...)
	}
	return buf, err
}

// appendTotals writes the answer that ends a stream.
func appendTotals(buf []byte, rows int, rowsAffected int64, command string, truncated bool) []byte {
	buf = append(buf, `{"row_count":`...)
	buf = strconv.AppendInt(buf, int64(rows), 10)
	buf = append(buf, `,"rows_affected":`...)
	buf = strconv.AppendInt(buf, rowsAffected, 10)
	buf = append(buf, `,"command":`...)
	buf = AppendString(buf, command)
	buf = append(buf, `,"truncated":`...)
	buf = strconv.AppendBool(buf, truncated)
	return append(buf, '}')
}
