package messages

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"
	"strings"
)

// Encodings of the vectors in an answer (the request's encoding field).
const (
	// EncodingJSON answers vectors as JSON arrays of numbers (the default).
	EncodingJSON = "json"
	// EncodingF32LE answers vectors as base64 (RFC 4648 §4, padded) of
	// their float32 values as little-endian bytes, 4 bytes a dimension.
	EncodingF32LE = "f32le"
)

// CheckEncoding checks a request's encoding field and reports whether it
// asks for f32le.
func CheckEncoding(encoding string) (f32le bool, err error) {
	switch encoding {
	case "", EncodingJSON:
		return false, nil
	case EncodingF32LE:
		return true, nil
	}
	return false, BadRequest("encoding", "encoding must be %q or %q, got %q", EncodingJSON, EncodingF32LE, encoding)
}

// DecodeF32LE reads a vector_b64 field: standard padded base64 of float32s
// as little-endian bytes. It returns the bytes, checked to hold 1 to maxDims
// finite float32s (maxDims 0: no limit); a refusal is a BAD_REQUEST naming
// param.
func DecodeF32LE(param, b64 string, maxDims int) ([]byte, error) {
	// Strict still skips CR and LF anywhere: refused, the form is canonical
	// (and a cached vector_b64 is answered as it came).
	if i := strings.IndexAny(b64, "\r\n"); i >= 0 {
		return nil, BadRequest(param, "%s is not standard base64 with padding: a line break at byte %d", param, i)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		return nil, BadRequest(param, "%s is not standard base64 with padding: %v", param, err)
	}
	switch dims := len(b) / 4; {
	case len(b)%4 != 0:
		return nil, BadRequest(param, "%s decodes to %d bytes, not a multiple of 4 (one float32 a dimension)", param, len(b))
	case dims == 0:
		return nil, BadRequest(param, "%s holds no dimensions", param)
	case maxDims > 0 && dims > maxDims:
		return nil, BadRequest(param, "%s has %d dimensions; the limit is %d", param, dims, maxDims)
	}
	for i := 0; i < len(b); i += 4 {
		if f := math.Float32frombits(binary.LittleEndian.Uint32(b[i:])); math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return nil, BadRequest(param, "%s[%d] is not a finite float32", param, i/4)
		}
	}
	return b, nil
}

// Float32sLE returns v as little-endian bytes, 4 a dimension: what
// vector_b64 carries once base64-decoded.
func Float32sLE(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(f))
	}
	return out
}

// Float32sFromLE reverses Float32sLE; nil stays nil.
func Float32sFromLE(b []byte) ([]float32, error) {
	if b == nil {
		return nil, nil
	}
	if len(b)%4 != 0 {
		return nil, errors.New("a float32 vector of little-endian bytes has a length that is not a multiple of 4")
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}
