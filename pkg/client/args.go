package client

import (
	"encoding/json"
	"fmt"
)

// Params are a statement's parameters: NamedArgs or Args. A nil Params
// binds none.
type Params interface {
	encodeParams() (json.RawMessage, error)
}

// NamedArgs binds :name placeholders, like pgx.NamedArgs:
//
//	c.Query(ctx, "SELECT * FROM users WHERE id = :id", client.NamedArgs{"id": 7})
//
// Values are anything encoding/json takes; the worker converts each to its
// parameter's type (docs/protocol.md, "Parameters").
type NamedArgs map[string]any

// Args binds $1..$n, or the ? placeholders in order when the SQL has no $n:
//
//	c.Query(ctx, "SELECT * FROM users WHERE id = $1", client.Args{7})
type Args []any

func (a NamedArgs) encodeParams() (json.RawMessage, error) {
	if len(a) == 0 {
		return nil, nil
	}
	return marshalParams(map[string]any(a))
}

func (a Args) encodeParams() (json.RawMessage, error) {
	if len(a) == 0 {
		return nil, nil
	}
	return marshalParams([]any(a))
}

func marshalParams(v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode params: %w", err)
	}
	return b, nil
}

// encodeParams encodes p, which may be nil.
func encodeParams(p Params) (json.RawMessage, error) {
	if p == nil {
		return nil, nil
	}
	return p.encodeParams()
}

// encodeData encodes the column values of an Insert or Update.
func encodeData(data map[string]any) (map[string]json.RawMessage, error) {
	out := make(map[string]json.RawMessage, len(data))
	for k, v := range data {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", k, err)
		}
		out[k] = b
	}
	return out, nil
}
