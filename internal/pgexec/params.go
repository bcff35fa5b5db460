package pgexec

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// boundSQL is a statement rewritten to $n placeholders with its arguments in
// number order, still as raw JSON.
type boundSQL struct {
	sql   string
	args  []json.RawMessage
	names []string // what each $n was called in the request: "id", "$2", "?1"
}

// bind matches params against the placeholders of sql. An object binds :name,
// an array binds $n or, when the SQL has no $n, ? in order. offset shifts the
// numbers given to :name and ? (update puts its data columns first).
func bind(sql string, params json.RawMessage, offset int) (boundSQL, error) {
	sc := scanSQL(sql)
	return bindScanned(sql, sc, params, offset)
}

// maxParams is the protocol's limit on a statement's parameters: Bind counts
// them in an int16.
const maxParams = 65535

// checkParamCount refuses more parameters than the protocol carries.
func checkParamCount(field string, n int) error {
	if n > maxParams {
		return messages.BadRequest(field, "the statement has %d parameters; PostgreSQL takes at most %d", n, maxParams)
	}
	return nil
}

func bindScanned(sql string, sc scanned, params json.RawMessage, offset int) (boundSQL, error) {
	b, err := bindParams(sql, sc, params, offset)
	if err == nil {
		err = checkParamCount("params", offset+len(b.args))
	}
	return b, err
}

func bindParams(sql string, sc scanned, params json.RawMessage, offset int) (boundSQL, error) {
	params = bytes.TrimSpace(params)
	switch {
	case len(params) == 0 || string(params) == "null":
		if sc.named > 0 {
			for _, p := range sc.placeholders {
				if p.kind == phNamed {
					return boundSQL{}, messages.BadRequest(p.name, "missing parameter :%s", p.name)
				}
			}
		}
		return boundSQL{sql: sql}, nil
	case params[0] == '{':
		var m map[string]json.RawMessage
		if err := json.Unmarshal(params, &m); err != nil {
			return boundSQL{}, messages.BadRequest("params", "params: %v", err)
		}
		if sc.positional > 0 {
			return boundSQL{}, messages.BadRequest("params", "params is an object but the SQL uses $n placeholders; pass an array")
		}
		out, names := rewrite(sql, sc.placeholders, phNamed, offset)
		b := boundSQL{sql: out, names: names, args: make([]json.RawMessage, len(names))}
		for i, name := range names {
			v, ok := m[name]
			if !ok {
				return boundSQL{}, messages.BadRequest(name, "missing parameter :%s", name)
			}
			b.args[i] = v
		}
		if len(m) > len(names) {
			for name := range m {
				if !contains(names, name) {
					return boundSQL{}, messages.BadRequest(name, "unused parameter %q: the SQL has no :%s", name, name)
				}
			}
		}
		return b, nil
	case params[0] == '[':
		var list []json.RawMessage
		if err := json.Unmarshal(params, &list); err != nil {
			return boundSQL{}, messages.BadRequest("params", "params: %v", err)
		}
		if sc.positional > 0 {
			if offset != 0 {
				return boundSQL{}, messages.BadRequest("where", "where uses $n placeholders; use :name with where_params")
			}
			used := make([]bool, len(list))
			for _, p := range sc.placeholders {
				if p.kind != phPositional {
					continue
				}
				if p.index < 1 || p.index > len(list) {
					return boundSQL{}, messages.BadRequest("$"+strconv.Itoa(p.index), "missing parameter $%d: params has %d values", p.index, len(list))
				}
				used[p.index-1] = true
			}
			names := make([]string, len(list))
			for i := range list {
				if !used[i] {
					return boundSQL{}, messages.BadRequest("$"+strconv.Itoa(i+1), "unused parameter $%d: the SQL never uses it", i+1)
				}
				names[i] = "$" + strconv.Itoa(i+1)
			}
			return boundSQL{sql: sql, args: list, names: names}, nil
		}
		if sc.question != len(list) {
			return boundSQL{}, messages.BadRequest("params", "params has %d values but the SQL has %d ? placeholders", len(list), sc.question)
		}
		out, names := rewrite(sql, sc.placeholders, phQuestion, offset)
		return boundSQL{sql: out, args: list, names: names}, nil
	default:
		return boundSQL{}, messages.BadRequest("params", "params must be a JSON object or array")
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

// jsonKind classifies a raw JSON value by its first byte.
func jsonKind(raw json.RawMessage) byte {
	if len(raw) == 0 {
		return 0
	}
	switch c := raw[0]; c {
	case 'n':
		return 'n'
	case 't', 'f':
		return 'b'
	case '"':
		return 's'
	case '{':
		return 'o'
	case '[':
		return 'a'
	default:
		return 'd' // digit or minus: a number
	}
}

var kindNames = map[byte]string{'n': "null", 'b': "a boolean", 's': "a string", 'o': "an object", 'a': "an array", 'd': "a number"}

// encodeParam converts one JSON argument to the text form PostgreSQL parses
// for parameter type t. A nil result binds NULL.
func encodeParam(t *typeInfo, name string, raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if jsonKind(raw) == 'n' {
		return nil, nil
	}
	v, err := textForm(t, raw)
	if err != nil {
		return nil, messages.BadRequest(name, "parameter %s (%s): %s", displayName(name), t.name, err.Error())
	}
	return v, nil
}

func displayName(name string) string {
	if strings.HasPrefix(name, "$") || strings.HasPrefix(name, "?") {
		return name
	}
	return ":" + name
}

type paramError string

func (e paramError) Error() string { return string(e) }

func wrongType(want string, raw json.RawMessage) error {
	return paramError("expected " + want + ", got " + kindNames[jsonKind(raw)])
}

// textForm renders a non-null JSON value as the text input of type t.
func textForm(t *typeInfo, raw json.RawMessage) ([]byte, error) {
	k := jsonKind(raw)
	switch t.kind {
	case kBool:
		switch k {
		case 'b':
			return raw, nil // true / false
		case 's':
			return unquote(raw)
		}
		return nil, wrongType("a boolean", raw)
	case kInt2, kInt4, kInt8, kOID:
		var s []byte
		switch k {
		case 'd':
			s = raw
		case 's':
			u, err := unquote(raw)
			if err != nil {
				return nil, err
			}
			s = bytes.TrimSpace(u)
		default:
			return nil, wrongType("an integer", raw)
		}
		bits := map[kind]int{kInt2: 16, kInt4: 32, kInt8: 64, kOID: 33}[t.kind]
		n, err := strconv.ParseInt(string(s), 10, bits)
		if err != nil || t.kind == kOID && (n < 0 || n > math.MaxUint32) {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange || t.kind == kOID && err == nil {
				return nil, paramError(string(s) + " is out of range for " + t.name)
			}
			return nil, paramError("expected an integer, got " + truncate(string(s)))
		}
		return s, nil
	case kFloat4, kFloat8, kNumeric:
		switch k {
		case 'd':
			return raw, nil
		case 's':
			return unquote(raw) // "NaN", "Infinity" or exact digits
		}
		return nil, wrongType("a number", raw)
	case kJSON, kJSONB:
		return raw, nil
	case kBytea:
		if k != 's' {
			return nil, wrongType("a base64 string", raw)
		}
		s, err := unquote(raw)
		if err != nil {
			return nil, err
		}
		b, err := base64.StdEncoding.DecodeString(string(s))
		if err != nil {
			if b, err = base64.RawStdEncoding.DecodeString(string(s)); err != nil {
				return nil, paramError("not valid base64")
			}
		}
		out := make([]byte, 2+hex.EncodedLen(len(b)))
		out[0], out[1] = '\\', 'x'
		hex.Encode(out[2:], b)
		return out, nil
	case kVector, kHalfvec:
		switch k {
		case 's':
			return unquote(raw)
		case 'a':
			var xs []json.Number
			if err := json.Unmarshal(raw, &xs); err != nil {
				return nil, paramError("expected an array of numbers")
			}
			var b []byte
			b = append(b, '[')
			for i, x := range xs {
				f, err := x.Float64()
				if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
					return nil, paramError("element " + strconv.Itoa(i) + " is not a finite number")
				}
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, x...)
			}
			return append(b, ']'), nil
		}
		return nil, wrongType("an array of numbers", raw)
	case kSparsevec:
		switch k {
		case 's':
			return unquote(raw)
		case 'o':
			var sv struct {
				Dim     int           `json:"dim"`
				Indices []int         `json:"indices"`
				Values  []json.Number `json:"values"`
			}
			if err := json.Unmarshal(raw, &sv); err != nil || len(sv.Indices) != len(sv.Values) {
				return nil, paramError(`expected {"dim":N,"indices":[...],"values":[...]} with as many indices as values`)
			}
			b := []byte{'{'}
			for i, idx := range sv.Indices {
				if i > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendInt(b, int64(idx)+1, 10) // the text form counts from 1
				b = append(b, ':')
				b = append(b, sv.Values[i]...)
			}
			b = append(b, '}', '/')
			return strconv.AppendInt(b, int64(sv.Dim), 10), nil
		}
		return nil, wrongType("a sparse vector object", raw)
	case kArray:
		switch k {
		case 's':
			return unquote(raw) // a Postgres array literal such as {1,2}
		case 'a':
			return arrayLiteral(t.elem, raw, 0)
		}
		return nil, wrongType("an array", raw)
	case kUUID, kDate, kTimestamp, kTimestamptz:
		if k != 's' {
			return nil, wrongType("a string", raw)
		}
		return unquote(raw)
	default: // text-like and every other type: the server parses the text
		switch k {
		case 's':
			return unquote(raw)
		case 'd', 'b', 'o', 'a':
			if t.category == 'D' || t.category == 'T' || t.category == 'I' {
				return nil, wrongType("a string", raw)
			}
			return raw, nil
		}
	}
	return nil, wrongType(t.name, raw)
}

// arrayLiteral renders a JSON array as a Postgres array literal, quoting every
// element and converting it by the element type.
func arrayLiteral(elem *typeInfo, raw json.RawMessage, depth int) ([]byte, error) {
	if depth > 6 {
		return nil, paramError("arrays nest at most 6 levels")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, paramError("expected an array")
	}
	b := []byte{'{'}
	for i, item := range items {
		if i > 0 {
			b = append(b, arrayDelim(elem))
		}
		item = bytes.TrimSpace(item)
		switch {
		case jsonKind(item) == 'n':
			b = append(b, "NULL"...)
		case jsonKind(item) == 'a' && elem.kind != kJSON && elem.kind != kJSONB && elem.kind != kVector && elem.kind != kHalfvec:
			sub, err := arrayLiteral(elem, item, depth+1)
			if err != nil {
				return nil, err
			}
			b = append(b, sub...)
		default:
			v, err := textForm(elem, item)
			if err != nil {
				return nil, paramError("element " + strconv.Itoa(i) + ": " + err.Error())
			}
			b = append(b, '"')
			for _, c := range v {
				if c == '"' || c == '\\' {
					b = append(b, '\\')
				}
				b = append(b, c)
			}
			b = append(b, '"')
		}
	}
	return append(b, '}'), nil
}

func unquote(raw json.RawMessage) ([]byte, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, paramError("invalid JSON string")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return nil, paramError("NUL bytes are not allowed in text")
	}
	return []byte(s), nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
