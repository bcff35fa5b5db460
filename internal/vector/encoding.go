package vector

import (
	"encoding/base64"
	"math"

	"github.com/pgvector/pgvector-go"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// requestVector reads the vector of a request or an item: field (a JSON
// array) or field+"_b64" (base64 of little-endian float32s), not both. It
// is nil when neither is given.
func requestVector(field string, v []float64, b64 *string) ([]float32, error) {
	if b64 != nil {
		if v != nil { // "vector":[] too: the field is there
			return nil, messages.BadRequest(field+"_b64", "give %s or %s_b64, not both", field, field)
		}
		b, err := messages.DecodeF32LE(field+"_b64", *b64, MaxDimension)
		if err != nil {
			return nil, err
		}
		return messages.Float32sFromLE(b)
	}
	if len(v) == 0 {
		return nil, nil
	}
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
		if math.IsNaN(x) || math.IsInf(float64(f[i]), 0) {
			return nil, messages.BadRequest(field, "%s[%d] is not a finite float32", field, i)
		}
	}
	return f, nil
}

// toVector checks a request's vector against the collection's dimension.
func toVector(field string, v []float32, b64 bool, dim int) (*pgvector.Vector, error) {
	if v == nil {
		return nil, nil
	}
	if len(v) != dim {
		if b64 {
			field += "_b64"
		}
		return nil, messages.BadRequest(field, "the vector has %d dimensions; the collection has %d", len(v), dim)
	}
	vec := pgvector.NewVector(v)
	return &vec, nil
}

// leastVectorBytes is the least a vector of dim dimensions takes in a
// search's answer: "vector_b64" and its base64, or one digit and a comma a
// dimension.
func leastVectorBytes(dim int, f32le bool) int {
	if f32le {
		return base64.StdEncoding.EncodedLen(4*dim) + len(`,"vector_b64":""`)
	}
	return 2*dim - 1 + len(`,"vector":[]`)
}

// withVector sets a match's vector, as the request's encoding asks.
func withVector(m *messages.VectorMatch, v pgvector.Vector, f32le bool) {
	if f32le {
		m.VectorB64 = messages.Float32sLE(v.Slice())
	} else {
		m.Vector = v.Slice()
	}
}
