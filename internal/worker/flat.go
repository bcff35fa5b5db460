package worker

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// A fast path for the small, flat bodies of state.ratelimit and state.lock,
// the worker's cheapest requests, where encoding/json's strict decoder (a
// reflective walk over a scan of the body) was half the worker's time, and
// for db.execute's common form (sql, params and options). It takes only
// what it can decode exactly as messages.DecodeStrict would: an object whose
// names are each a field's own (spelled exactly, each once), whose values
// are strings without escapes in ASCII, integers, numbers, true and false,
// and, for a json.RawMessage, an object or array in valid JSON and UTF-8.
// Anything else (escapes, null, other case, an unknown or repeated field,
// a malformed body) goes to DecodeStrict, which decodes it or says what is
// wrong. FuzzFlatDecode checks that whatever it takes, DecodeStrict takes
// too, with the same result.

// fastDecode decodes data into v when v is a request with a fast path and
// data is plain enough; it reports whether it did.
func fastDecode(data []byte, v any) bool {
	switch req := v.(type) {
	case *messages.RateLimitRequest:
		var r messages.RateLimitRequest
		if !decodeFlat(data, []flatField{{name: "key", str: &r.Key}, {name: "limit", i64: &r.Limit},
			{name: "window_ms", i64: &r.WindowMS}, {name: "window_seconds", f64: &r.WindowSeconds}, {name: "cost", i64: &r.Cost}}) {
			return false
		}
		*req = r
		return true
	case *messages.LockRequest:
		var r messages.LockRequest
		if !decodeFlat(data, []flatField{{name: "op", str: &r.Op}, {name: "key", str: &r.Key}, {name: "owner", str: &r.Owner},
			{name: "lease", str: &r.Lease}, {name: "ttl_ms", i64: &r.TTLMS}, {name: "ttl_seconds", f64: &r.TTLSeconds}, {name: "wait_ms", i64: &r.WaitMS}}) {
			return false
		}
		*req = r
		return true
	case *messages.ExecuteRequest:
		var r messages.ExecuteRequest
		if !decodeFlat(data, []flatField{{name: "op", str: (*string)(&r.Op)}, {name: "sql", str: &r.SQL}, {name: "params", raw: &r.Params},
			{name: "max_rows", int: &r.MaxRows}, {name: "timeout_ms", int: &r.TimeoutMS}, {name: "read_only", b: &r.ReadOnly},
			{name: "row_format", str: &r.RowFormat}, {name: "query", str: &r.Query}, {name: "table", str: &r.Table}, {name: "where", str: &r.Where},
			{name: "where_params", raw: &r.WhereParams}, {name: "all_rows", b: &r.AllRows}, {name: "isolation", str: &r.Isolation},
			{name: "deferrable", b: &r.Deferrable}, {name: "safe_numbers", pb: &r.SafeNumbers}}) {
			return false
		}
		*req = r
		return true
	}
	return false
}

// flatField is a field of a flat request: its JSON name and where its value
// goes: a string, an *int64, an *int, a *float64, a bool, a *bool or a raw
// value.
type flatField struct {
	name string
	str  *string
	i64  **int64
	int  **int
	f64  **float64
	b    *bool
	pb   **bool
	raw  *json.RawMessage
}

// decodeFlat decodes a flat JSON object into fields (at most 64), or reports
// false, having perhaps set some of them.
func decodeFlat(data []byte, fields []flatField) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return skipSpace(data, i+1) == len(data)
	}
	var seen uint64
	for {
		name, j, ok := plainString(data, i)
		if !ok {
			return false
		}
		f := -1
		for n := range fields {
			if string(name) == fields[n].name {
				f = n
				break
			}
		}
		if f < 0 || seen&(1<<f) != 0 {
			return false
		}
		seen |= 1 << f
		i = skipSpace(data, j)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		switch fd := &fields[f]; {
		case fd.str != nil:
			s, j, ok := plainString(data, i)
			if !ok {
				return false
			}
			*fd.str, i = string(s), j
		case fd.i64 != nil:
			n, j, ok := plainInt(data, i)
			if !ok {
				return false
			}
			*fd.i64, i = &n, j
		case fd.int != nil:
			n, j, ok := plainInt(data, i)
			if !ok {
				return false
			}
			v := int(n) // 18 digits fit a 64-bit int
			*fd.int, i = &v, j
		case fd.b != nil || fd.pb != nil:
			var v bool
			switch {
			case bytes.HasPrefix(data[i:], []byte("true")):
				v, i = true, i+4
			case bytes.HasPrefix(data[i:], []byte("false")):
				v, i = false, i+5
			default:
				return false
			}
			if fd.b != nil {
				*fd.b = v
			} else {
				*fd.pb = &v
			}
		case fd.raw != nil:
			j := compositeEnd(data, i)
			if j < 0 || !json.Valid(data[i:j]) || !utf8.Valid(data[i:j]) {
				return false
			}
			*fd.raw, i = append(json.RawMessage(nil), data[i:j]...), j
		default:
			j := numberEnd(data, i)
			if j < 0 {
				return false
			}
			x, err := strconv.ParseFloat(string(data[i:j]), 64)
			if err != nil {
				return false
			}
			*fd.f64, i = &x, j
		}
		i = skipSpace(data, i)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case '}':
			return skipSpace(data, i+1) == len(data)
		case ',':
			i = skipSpace(data, i+1)
		default:
			return false
		}
	}
}

// compositeEnd returns the end of the object or array at i (its closing
// bracket matched, strings and their escapes skipped), or -1. It does not
// validate what is between: json.Valid does.
func compositeEnd(data []byte, i int) int {
	if i >= len(data) || data[i] != '{' && data[i] != '[' {
		return -1
	}
	depth := 0
	for ; i < len(data); i++ {
		switch data[i] {
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				return i + 1
			}
		case '"':
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
		}
	}
	return -1
}

// skipSpace skips JSON white space from i.
func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a string at i that has no escapes and only printable
// ASCII, and returns its bytes and the index after it.
func plainString(data []byte, i int) ([]byte, int, bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			return data[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// plainInt reads an integer of at most 18 digits (it cannot overflow) at i,
// in JSON's form (no leading zero, no fraction, no exponent).
func plainInt(data []byte, i int) (int64, int, bool) {
	neg := i < len(data) && data[i] == '-'
	if neg {
		i++
	}
	start := i
	var n int64
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		n = n*10 + int64(data[i]-'0')
		i++
	}
	digits := i - start
	if digits == 0 || digits > 18 || digits > 1 && data[start] == '0' {
		return 0, 0, false
	}
	if i < len(data) && (data[i] == '.' || data[i] == 'e' || data[i] == 'E') {
		return 0, 0, false
	}
	if neg {
		n = -n
	}
	return n, i, true
}

// numberEnd returns the end of a JSON number at i, or -1.
func numberEnd(data []byte, i int) int {
	digits := func() int {
		start := i
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
		return i - start
	}
	if i < len(data) && data[i] == '-' {
		i++
	}
	first := i
	if n := digits(); n == 0 || n > 1 && data[first] == '0' {
		return -1
	}
	if i < len(data) && data[i] == '.' {
		i++
		if digits() == 0 {
			return -1
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if digits() == 0 {
			return -1
		}
	}
	return i
}
