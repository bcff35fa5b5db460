package pgjson

import "errors"

// DeclaredType is the parameter type sent with a statement. Numbers,
// booleans, UUIDs, dates and times are sent as the caller wrote them, with
// no type: the server types them where the statement runs, so a column
// whose type changed since the description was cached (int4 to int8, date
// to timestamptz) still gets the caller's exact value. Every other value is
// sent with the type it was written for (text, bytea from base64, JSON,
// arrays, vectors), so that a column of another type now makes the server
// refuse it rather than take it as something else.
func DeclaredType(t *Type) uint32 {
	switch t.Kind {
	case KindBool, KindInt2, KindInt4, KindInt8, KindOID, KindFloat4, KindFloat8, KindNumeric, KindUUID, KindDate, KindTimestamp, KindTimestamptz:
		return 0
	}
	return t.OID
}

// ErrTooLarge stops encoding a row once the answer passes its bound.
var ErrTooLarge = errors.New("answer too large")

// RowFormat says how AppendRow writes a row.
type RowFormat struct {
	// Arrays writes the row as an array in column order, not an object.
	Arrays bool
	// SafeNumbers writes numeric values, and int8 values past
	// ±MaxSafeInteger, as strings (AppendSafeValue).
	SafeNumbers bool
	// Limit, when above 0, bounds the answer in bytes (ErrTooLarge).
	Limit int
}

// AppendRow writes one row. With f.Limit > 0 it stops with ErrTooLarge as
// soon as the answer would pass f.Limit bytes, before encoding a value that
// could not fit: a request never holds much more than its bound in answer
// bytes, whatever one value's size.
func AppendRow(buf []byte, values [][]byte, types []*Type, names [][]byte, f RowFormat) ([]byte, error) {
	var err error
	if f.Arrays {
		buf = append(buf, '[')
	} else {
		buf = append(buf, '{')
	}
	for i, v := range values {
		if f.Limit > 0 && len(buf)+minEncodedLen(types[i], v) > f.Limit {
			return buf, ErrTooLarge
		}
		if i > 0 {
			buf = append(buf, ',')
		}
		if !f.Arrays {
			buf = append(buf, names[i]...)
			buf = append(buf, ':')
		}
		if buf, err = appendValue(buf, types[i], v, f.SafeNumbers); err != nil {
			return buf, err
		}
		if f.Limit > 0 && len(buf) > f.Limit {
			return buf, ErrTooLarge
		}
	}
	if f.Arrays {
		return append(buf, ']'), nil
	}
	return append(buf, '}'), nil
}

// minEncodedLen is a lower bound of the JSON size of a value: text-like
// values and bytea never shrink when encoded; binary numbers, arrays and
// vectors shrink by at most 8 to 1 (an int4 element is 8 bytes on the wire and
// can print as one digit and a comma).
func minEncodedLen(t *Type, v []byte) int {
	switch {
	case !t.Binary() && t.Kind != KindArray, t.Kind == KindText, t.Kind == KindJSON, t.Kind == KindJSONB, t.Kind == KindBytea:
		return len(v)
	}
	return len(v) / 8
}
