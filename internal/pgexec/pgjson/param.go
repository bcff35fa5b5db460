package pgjson

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

// EncodeParam converts one JSON argument to the text form PostgreSQL parses
// for parameter type t. A nil result binds NULL.
func EncodeParam(t *Type, name string, raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if jsonKind(raw) == 'n' {
		return nil, nil
	}
	v, err := textForm(t, raw)
	if err != nil {
		return nil, messages.BadRequest(name, "parameter %s (%s): %s", displayName(name), t.Name, err.Error())
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
func textForm(t *Type, raw json.RawMessage) ([]byte, error) {
	k := jsonKind(raw)
	switch t.Kind {
	case KindBool:
		switch k {
		case 'b':
			return raw, nil // true / false
		case 's':
			return unquote(raw)
		}
		return nil, wrongType("a boolean", raw)
	case KindInt2, KindInt4, KindInt8, KindOID:
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
		bits := map[Kind]int{KindInt2: 16, KindInt4: 32, KindInt8: 64, KindOID: 33}[t.Kind]
		n, err := strconv.ParseInt(string(s), 10, bits)
		if err != nil || t.Kind == KindOID && (n < 0 || n > math.MaxUint32) {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange || t.Kind == KindOID && err == nil {
				return nil, paramError(string(s) + " is out of range for " + t.Name)
			}
			return nil, paramError("expected an integer, got " + truncate(string(s)))
		}
		return s, nil
	case KindFloat4, KindFloat8, KindNumeric:
		switch k {
		case 'd':
			return raw, nil
		case 's':
			return unquote(raw) // "NaN", "Infinity" or exact digits
		}
		return nil, wrongType("a number", raw)
	case KindJSON, KindJSONB:
		return raw, nil
	case KindBytea:
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
	case KindVector, KindHalfvec:
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
	case KindSparsevec:
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
	case KindArray:
		switch k {
		case 's':
			return unquote(raw) // a Postgres array literal such as {1,2}
		case 'a':
			return arrayLiteral(t.Elem, raw, 0)
		}
		return nil, wrongType("an array", raw)
	case KindUUID, KindDate, KindTimestamp, KindTimestamptz:
		if k != 's' {
			return nil, wrongType("a string", raw)
		}
		return unquote(raw)
	default: // text-like and every other type: the server parses the text
		switch k {
		case 's':
			return unquote(raw)
		case 'd', 'b', 'o', 'a':
			if t.Category == 'D' || t.Category == 'T' || t.Category == 'I' {
				return nil, wrongType("a string", raw)
			}
			return raw, nil
		}
	}
	return nil, wrongType(t.Name, raw)
}

// arrayLiteral renders a JSON array as a Postgres array literal, quoting every
// element and converting it by the element type.
func arrayLiteral(elem *Type, raw json.RawMessage, depth int) ([]byte, error) {
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
		case jsonKind(item) == 'a' && elem.Kind != KindJSON && elem.Kind != KindJSONB && elem.Kind != KindVector && elem.Kind != KindHalfvec:
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
