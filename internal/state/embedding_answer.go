package state

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"strconv"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// minJSONBytesPerDim is the least a cached dimension (4 bytes) takes in an
// answer: one digit and a comma.
const minJSONBytesPerDim = 2

// EmbeddingAnswer carries out a cache.embedding request and returns its
// answer encoded, never more than maxAnswer bytes of it (0: no bound). get
// and mget read the cached vectors' sizes first and answer TOO_LARGE, without
// fetching them, when the answer could not fit; otherwise they encode the
// vectors straight from the cached bytes and stop past the bound. So a request
// holds about 2 × maxAnswer of vectors and maxAnswer of answer at most,
// whatever it names (red-team finding 4: an mget of 1000 vectors of 16,000
// dimensions took the worker from 45 MB to 266 MB before it answered 413).
//
// With encoding f32le the vectors are base64 of the cached bytes, whose size
// is known from the sizes alone: the answer's size is computed exactly
// before the fetch, and encoding costs about a copy.
func (s *Service) EmbeddingAnswer(ctx context.Context, req *messages.EmbeddingRequest, maxAnswer int) ([]byte, error) {
	f32le, err := messages.CheckEncoding(req.Encoding)
	if err != nil {
		return nil, err
	}
	var keys []string
	switch req.Op {
	case messages.OpGet:
		key, err := embeddingKey("hash", req.Hash, req.Text, req.Model)
		if err != nil {
			return nil, err
		}
		keys = []string{key}
	case messages.OpMGet:
		if err := checkHashes(req.Hashes); err != nil {
			return nil, err
		}
		keys = req.Hashes
	}
	if keys == nil || maxAnswer <= 0 {
		res, err := s.Embedding(ctx, req)
		if err != nil {
			return nil, err
		}
		return json.Marshal(res)
	}
	sizes, err := s.b.BlobSizes(ctx, keys)
	if err != nil {
		return nil, err
	}
	enc := jsonVectors
	if f32le {
		enc = b64Vectors
	}
	var least int64
	for _, n := range sizes {
		least += enc.least(n)
	}
	if least > int64(maxAnswer) {
		return nil, tooLarge(least, maxAnswer)
	}
	vals, err := s.b.GetBlobs(ctx, keys)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, min(int64(maxAnswer), least+int64(64*len(keys))))
	if req.Op == messages.OpGet {
		buf = append(buf, `{"hash":`...)
		buf = strconv.AppendQuote(buf, keys[0]) // a checked key; hex when from text
		buf = append(buf, `,"hit":`...)
		buf = strconv.AppendBool(buf, vals[0] != nil)
		buf = append(buf, `,"`...)
		buf = append(buf, enc.name...)
		buf = append(buf, `":`...)
		if buf, err = enc.append(buf, vals[0]); err != nil {
			return nil, err
		}
		buf = append(buf, '}')
		if len(buf) > maxAnswer {
			return nil, tooLarge(int64(len(buf)), maxAnswer)
		}
		return buf, nil
	}
	hits := 0
	buf = append(buf, `{"`...)
	buf = append(buf, enc.names...)
	buf = append(buf, `":[`...)
	for i, v := range vals {
		if i > 0 {
			buf = append(buf, ',')
		}
		if buf, err = enc.append(buf, v); err != nil {
			return nil, err
		}
		if len(buf) > maxAnswer {
			return nil, tooLarge(int64(len(buf)), maxAnswer)
		}
		if v != nil {
			hits++
		}
	}
	buf = append(buf, `],"hits":`...)
	buf = strconv.AppendInt(buf, int64(hits), 10)
	buf = append(buf, '}')
	if len(buf) > maxAnswer {
		return nil, tooLarge(int64(len(buf)), maxAnswer)
	}
	return buf, nil
}

// vectorEncoder is how an answer writes cached vectors: its field names,
// the least bytes a vector of n cached bytes takes, and the encoder.
type vectorEncoder struct {
	name, names  string // of get's vector and of mget's list
	least        func(n int64) int64
	appendVector func(buf, b []byte) ([]byte, error)
}

var (
	jsonVectors = vectorEncoder{name: "vector", names: "vectors", appendVector: appendVector,
		least: func(n int64) int64 { return n / 4 * minJSONBytesPerDim }}
	// A hit's base64 is exact: its size and two quotes.
	b64Vectors = vectorEncoder{name: "vector_b64", names: "vectors_b64", appendVector: appendB64Vector,
		least: func(n int64) int64 {
			if n == 0 {
				return 0
			}
			return int64(base64.StdEncoding.EncodedLen(int(n))) + 2
		}}
)

func checkHashes(hashes []string) error {
	if len(hashes) == 0 || len(hashes) > MaxBatchItems {
		return messages.BadRequest("hashes", "hashes must list 1 to %d hashes", MaxBatchItems)
	}
	for _, h := range hashes {
		if err := checkKey("hashes", h); err != nil {
			return err
		}
	}
	return nil
}

func tooLarge(atLeast int64, maxAnswer int) error {
	return messages.Errorf(messages.CodeTooLarge, "the answer would be at least %d bytes; the server's max payload allows %d: ask for fewer vectors", atLeast, maxAnswer)
}

// append appends a cached vector (PackVector's bytes; nil: null).
func (e vectorEncoder) append(buf, b []byte) ([]byte, error) {
	if b == nil {
		return append(buf, "null"...), nil
	}
	if err := checkCached(b); err != nil {
		return nil, err
	}
	return e.appendVector(buf, b)
}

// checkCached refuses cached bytes that are not whole float32s.
func checkCached(b []byte) error {
	if len(b)%4 != 0 {
		return messages.Errorf(messages.CodeInternal, "cached vector has a length that is not a multiple of 4")
	}
	return nil
}

// appendVector appends a cached vector as a JSON array of numbers,
// formatted as encoding/json formats a float32.
func appendVector(buf, b []byte) ([]byte, error) {
	buf = append(buf, '[')
	for i := 0; i < len(b); i += 4 {
		if i > 0 {
			buf = append(buf, ',')
		}
		f := math.Float32frombits(binary.LittleEndian.Uint32(b[i:]))
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return nil, messages.Errorf(messages.CodeInternal, "cached vector holds a value that is not finite")
		}
		buf = appendFloat32(buf, f)
	}
	return append(buf, ']'), nil
}

// appendB64Vector appends a cached vector as a JSON string of its bytes in
// standard base64.
func appendB64Vector(buf, b []byte) ([]byte, error) {
	buf = append(buf, '"')
	buf = base64.StdEncoding.AppendEncode(buf, b)
	return append(buf, '"'), nil
}

// appendFloat32 is encoding/json's float32 encoding: shortest representation,
// exponent form below 1e-6 and from 1e21, "e-09" written "e-9".
func appendFloat32(buf []byte, f float32) []byte {
	format := byte('f')
	if abs := float32(math.Abs(float64(f))); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	buf = strconv.AppendFloat(buf, float64(f), format, -1, 32)
	if format == 'e' {
		if n := len(buf); n >= 4 && buf[n-4] == 'e' && buf[n-3] == '-' && buf[n-2] == '0' {
			buf[n-2] = buf[n-1]
			buf = buf[:n-1]
		}
	}
	return buf
}
