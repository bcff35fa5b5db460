package pgjson

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/x448/float16"
)

var errShortValue = errors.New("malformed binary value")

// pgEpoch is 2000-01-01, the origin of PostgreSQL's binary dates and timestamps.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	timestampLayout   = "2006-01-02T15:04:05.999999"
	timestamptzLayout = "2006-01-02T15:04:05.999999Z07:00"
	dateLayout        = "2006-01-02"
)

// AppendValue appends one column value, received in t's format, as JSON.
func AppendValue(b []byte, t *Type, v []byte) ([]byte, error) {
	return appendValue(b, t, v, false)
}

// AppendSafeValue is AppendValue with safe numbers (the request option
// safe_numbers, safe.go): numeric values, and int8 values past ±(2^53−1),
// are written as JSON strings of their exact digits, at any depth of an
// array. Nothing else changes; json and jsonb stay the caller's JSON.
func AppendSafeValue(b []byte, t *Type, v []byte) ([]byte, error) {
	return appendValue(b, t, v, true)
}

func appendValue(b []byte, t *Type, v []byte, safe bool) ([]byte, error) {
	if v == nil {
		return append(b, "null"...), nil
	}
	if !t.Binary() {
		if t.Kind == KindArray {
			return appendTextArray(b, v, arrayDelim(t.Elem))
		}
		return AppendString(b, v), nil
	}
	switch t.Kind {
	case KindBool:
		if len(v) != 1 {
			return b, errShortValue
		}
		if v[0] != 0 {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case KindInt2:
		if len(v) != 2 {
			return b, errShortValue
		}
		return strconv.AppendInt(b, int64(int16(binary.BigEndian.Uint16(v))), 10), nil
	case KindInt4:
		if len(v) != 4 {
			return b, errShortValue
		}
		return strconv.AppendInt(b, int64(int32(binary.BigEndian.Uint32(v))), 10), nil
	case KindInt8:
		if len(v) != 8 {
			return b, errShortValue
		}
		return appendInt8(b, int64(binary.BigEndian.Uint64(v)), safe), nil
	case KindOID:
		if len(v) != 4 {
			return b, errShortValue
		}
		return strconv.AppendUint(b, uint64(binary.BigEndian.Uint32(v)), 10), nil
	case KindFloat4:
		if len(v) != 4 {
			return b, errShortValue
		}
		return AppendFloat(b, float64(math.Float32frombits(binary.BigEndian.Uint32(v))), 32), nil
	case KindFloat8:
		if len(v) != 8 {
			return b, errShortValue
		}
		return AppendFloat(b, math.Float64frombits(binary.BigEndian.Uint64(v)), 64), nil
	case KindNumeric:
		if safe {
			return appendQuotedNumeric(b, v)
		}
		return appendNumeric(b, v)
	case KindText:
		return AppendString(b, v), nil
	case KindJSON:
		return appendEmbeddedJSON(b, v), nil
	case KindJSONB:
		if len(v) < 1 || v[0] != 1 {
			return b, errShortValue
		}
		return appendEmbeddedJSON(b, v[1:]), nil
	case KindBytea:
		b = append(b, '"')
		n := len(b)
		b = append(b, make([]byte, base64.StdEncoding.EncodedLen(len(v)))...)
		base64.StdEncoding.Encode(b[n:], v)
		return append(b, '"'), nil
	case KindUUID:
		if len(v) != 16 {
			return b, errShortValue
		}
		return appendUUID(b, v), nil
	case KindDate:
		if len(v) != 4 {
			return b, errShortValue
		}
		switch days := int32(binary.BigEndian.Uint32(v)); days {
		case math.MaxInt32:
			return append(b, `"infinity"`...), nil
		case math.MinInt32:
			return append(b, `"-infinity"`...), nil
		default:
			b = append(b, '"')
			b = pgEpoch.AddDate(0, 0, int(days)).AppendFormat(b, dateLayout)
			return append(b, '"'), nil
		}
	case KindTimestamp, KindTimestamptz:
		if len(v) != 8 {
			return b, errShortValue
		}
		switch us := int64(binary.BigEndian.Uint64(v)); us {
		case math.MaxInt64:
			return append(b, `"infinity"`...), nil
		case math.MinInt64:
			return append(b, `"-infinity"`...), nil
		default:
			// time.Unix normalises a negative remainder (dates before 2000).
			ts := time.Unix(946684800+us/1e6, (us%1e6)*1e3).UTC()
			layout := timestampLayout
			if t.Kind == KindTimestamptz {
				layout = timestamptzLayout
			}
			b = append(b, '"')
			b = ts.AppendFormat(b, layout)
			return append(b, '"'), nil
		}
	case KindVector:
		return appendVector(b, v)
	case KindHalfvec:
		return appendHalfvec(b, v)
	case KindSparsevec:
		return appendSparsevec(b, v)
	case KindArray:
		return appendBinaryArray(b, t.Elem, v, safe)
	}
	return AppendString(b, v), nil
}

// appendEmbeddedJSON embeds a json or jsonb value as is. PostgreSQL only
// stores valid JSON, but an answer must never be broken: anything else is
// sent as a string.
func appendEmbeddedJSON(b, v []byte) []byte {
	if json.Valid(v) {
		return append(b, v...)
	}
	return AppendString(b, v)
}

func appendUUID(b []byte, u []byte) []byte {
	b = append(b, '"')
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexLower[c>>4], hexLower[c&0xf])
	}
	return append(b, '"')
}

// appendBinaryArray decodes PostgreSQL's binary array format into nested JSON
// arrays of the element encoding.
func appendBinaryArray(b []byte, elem *Type, v []byte, safe bool) ([]byte, error) {
	if len(v) < 12 {
		return b, errShortValue
	}
	ndim := int(int32(binary.BigEndian.Uint32(v)))
	if ndim == 0 {
		return append(b, "[]"...), nil
	}
	if ndim < 0 || ndim > 6 || len(v) < 12+8*ndim {
		return b, errShortValue
	}
	dims := make([]int, ndim)
	for i := range dims {
		dims[i] = int(int32(binary.BigEndian.Uint32(v[12+8*i:])))
	}
	rest := v[12+8*ndim:]
	var err error
	b, rest, err = appendArrayDim(b, elem, dims, rest, safe)
	if err != nil {
		return b, err
	}
	if len(rest) != 0 {
		return b, errShortValue
	}
	return b, nil
}

func appendArrayDim(b []byte, elem *Type, dims []int, v []byte, safe bool) ([]byte, []byte, error) {
	b = append(b, '[')
	for i := 0; i < dims[0]; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		if len(dims) > 1 {
			var err error
			if b, v, err = appendArrayDim(b, elem, dims[1:], v, safe); err != nil {
				return b, v, err
			}
			continue
		}
		if len(v) < 4 {
			return b, v, errShortValue
		}
		n := int(int32(binary.BigEndian.Uint32(v)))
		v = v[4:]
		if n < 0 {
			b = append(b, "null"...)
			continue
		}
		if n > len(v) {
			return b, v, errShortValue
		}
		var err error
		if b, err = appendValue(b, elem, v[:n:n], safe); err != nil {
			return b, v, err
		}
		v = v[n:]
	}
	return append(b, ']'), v, nil
}

// arrayDelim returns the element separator of an array's text form: ';' for
// box (and a domain over it), the one built-in type whose typdelim is not ','.
func arrayDelim(elem *Type) byte {
	if elem != nil && elem.BaseName() == "box" {
		return ';'
	}
	return ','
}

// appendTextArray parses PostgreSQL's text array form ({a,"b c",NULL,{...}})
// into nested JSON arrays of strings. A leading dimension decoration such as
// [0:2]= is dropped. delim is the element type's delimiter.
func appendTextArray(b []byte, v []byte, delim byte) ([]byte, error) {
	if len(v) > 0 && v[0] == '[' {
		i := 0
		for i < len(v) && v[i] != '=' {
			i++
		}
		if i == len(v) {
			return b, errShortValue
		}
		v = v[i+1:]
	}
	out, rest, err := parseTextArray(b, v, delim)
	if err != nil || len(rest) != 0 {
		return b, errShortValue
	}
	return out, nil
}

func parseTextArray(b []byte, v []byte, delim byte) ([]byte, []byte, error) {
	if len(v) == 0 || v[0] != '{' {
		return b, v, errShortValue
	}
	v = v[1:]
	b = append(b, '[')
	first := true
	for {
		if len(v) == 0 {
			return b, v, errShortValue
		}
		if v[0] == '}' {
			return append(b, ']'), v[1:], nil
		}
		if !first {
			if v[0] != delim {
				return b, v, errShortValue
			}
			v = v[1:]
			if len(v) == 0 {
				return b, v, errShortValue
			}
			b = append(b, ',')
		}
		first = false
		switch v[0] {
		case '{':
			var err error
			if b, v, err = parseTextArray(b, v, delim); err != nil {
				return b, v, err
			}
		case '"':
			var s []byte
			i := 1
			for ; i < len(v) && v[i] != '"'; i++ {
				if v[i] == '\\' && i+1 < len(v) {
					i++
				}
				s = append(s, v[i])
			}
			if i >= len(v) {
				return b, v, errShortValue
			}
			b = AppendString(b, s)
			v = v[i+1:]
		default:
			i := 0
			for i < len(v) && v[i] != delim && v[i] != '}' {
				i++
			}
			if tok := v[:i]; len(tok) == 4 && (tok[0]|0x20) == 'n' && (tok[1]|0x20) == 'u' && (tok[2]|0x20) == 'l' && (tok[3]|0x20) == 'l' {
				b = append(b, "null"...)
			} else {
				b = AppendString(b, tok)
			}
			v = v[i:]
		}
	}
}

// appendVector decodes pgvector's binary vector: uint16 dim, uint16 unused,
// then dim float32s.
func appendVector(b []byte, v []byte) ([]byte, error) {
	if len(v) < 4 {
		return b, errShortValue
	}
	dim := int(binary.BigEndian.Uint16(v))
	if len(v) != 4+4*dim {
		return b, errShortValue
	}
	b = append(b, '[')
	for i := 0; i < dim; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendFloat(b, float64(math.Float32frombits(binary.BigEndian.Uint32(v[4+4*i:]))), 32)
	}
	return append(b, ']'), nil
}

// appendHalfvec decodes pgvector's binary halfvec: uint16 dim, uint16 unused,
// then dim IEEE half floats.
func appendHalfvec(b []byte, v []byte) ([]byte, error) {
	if len(v) < 4 {
		return b, errShortValue
	}
	dim := int(binary.BigEndian.Uint16(v))
	if len(v) != 4+2*dim {
		return b, errShortValue
	}
	b = append(b, '[')
	for i := 0; i < dim; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendFloat(b, float64(float16.Frombits(binary.BigEndian.Uint16(v[4+2*i:])).Float32()), 32)
	}
	return append(b, ']'), nil
}

// appendSparsevec decodes pgvector's binary sparsevec: int32 dim, int32 nnz,
// int32 unused, nnz int32 indices (from 0), nnz float32 values.
func appendSparsevec(b []byte, v []byte) ([]byte, error) {
	if len(v) < 12 {
		return b, errShortValue
	}
	dim := int32(binary.BigEndian.Uint32(v))
	nnz := int(int32(binary.BigEndian.Uint32(v[4:])))
	if nnz < 0 || len(v) != 12+8*nnz {
		return b, errShortValue
	}
	b = append(b, `{"dim":`...)
	b = strconv.AppendInt(b, int64(dim), 10)
	b = append(b, `,"indices":[`...)
	for i := 0; i < nnz; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(int32(binary.BigEndian.Uint32(v[12+4*i:]))), 10)
	}
	b = append(b, `],"values":[`...)
	vals := v[12+4*nnz:]
	for i := 0; i < nnz; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendFloat(b, float64(math.Float32frombits(binary.BigEndian.Uint32(vals[4*i:]))), 32)
	}
	return append(b, "]}"...), nil
}
