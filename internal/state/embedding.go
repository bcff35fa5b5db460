package state

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// EmbeddingKey is the cache key of a text embedded by a model: the hex
// SHA-256 of model, a NUL byte and the text.
func EmbeddingKey(model, text string) string {
	h := sha256.New()
	h.Write([]byte(model))
	h.Write([]byte{0})
	h.Write([]byte(text))
	return hex.EncodeToString(h.Sum(nil))
}

func embeddingKey(field, hash string, text *string, model string) (string, error) {
	switch {
	case hash != "" && text != nil:
		return "", messages.BadRequest(field, "give hash or text and model, not both")
	case hash != "":
		return hash, checkKey(field, hash)
	case text != nil:
		if model == "" {
			return "", messages.BadRequest("model", "model is required with text")
		}
		return EmbeddingKey(model, *text), nil
	}
	return "", messages.BadRequest(field, "hash (or text and model) is required")
}

// PackVector stores float32s as 4 little-endian bytes a dimension, checking
// each is finite and fits a float32.
func PackVector(v []float64) ([]byte, error) {
	switch {
	case len(v) == 0:
		return nil, messages.BadRequest("vector", "vector is required")
	case len(v) > MaxVectorDims:
		return nil, messages.BadRequest("vector", "vector has %d dimensions; the limit is %d", len(v), MaxVectorDims)
	}
	out := make([]byte, 4*len(v))
	for i, x := range v {
		f := float32(x)
		if math.IsNaN(x) || math.IsInf(float64(f), 0) {
			return nil, messages.BadRequest("vector", "vector[%d] is not a finite float32", i)
		}
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(f))
	}
	return out, nil
}

// UnpackVector reverses PackVector.
func UnpackVector(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, errors.New("cached vector has a length that is not a multiple of 4")
	}
	return messages.Float32sFromLE(b)
}

// packItem packs the vector of a set or an mset item: vector, or
// vector_b64 whose bytes are stored as they came (checked).
func packItem(v []float64, b64 *string) ([]byte, error) {
	if b64 == nil {
		return PackVector(v)
	}
	if v != nil { // "vector":[] too: the field is there
		return nil, messages.BadRequest("vector_b64", "give vector or vector_b64, not both")
	}
	return messages.DecodeF32LE("vector_b64", *b64, MaxVectorDims)
}

// Embedding carries out a cache.embedding request.
func (s *Service) Embedding(ctx context.Context, req *messages.EmbeddingRequest) (any, error) {
	f32le, err := messages.CheckEncoding(req.Encoding)
	if err != nil {
		return nil, err
	}
	switch req.Op {
	case messages.OpGet:
		key, err := embeddingKey("hash", req.Hash, req.Text, req.Model)
		if err != nil {
			return nil, err
		}
		vals, err := s.b.GetBlobs(ctx, []string{key})
		if err != nil {
			return nil, err
		}
		if f32le {
			if err := checkCached(vals[0]); err != nil {
				return nil, err
			}
			return messages.EmbeddingGetB64Result{Hash: key, Hit: vals[0] != nil, VectorB64: vals[0]}, nil
		}
		res := messages.EmbeddingGetResult{Hash: key}
		if vals[0] != nil {
			if res.Vector, err = UnpackVector(vals[0]); err != nil {
				return nil, messages.Wrap(messages.CodeInternal, err, "%v", err)
			}
			res.Hit = true
		}
		return res, nil
	case messages.OpMGet:
		if err := checkHashes(req.Hashes); err != nil {
			return nil, err
		}
		vals, err := s.b.GetBlobs(ctx, req.Hashes)
		if err != nil {
			return nil, err
		}
		if f32le {
			res := messages.EmbeddingMGetB64Result{VectorsB64: vals}
			for _, v := range vals {
				if err := checkCached(v); err != nil {
					return nil, err
				}
				if v != nil {
					res.Hits++
				}
			}
			return res, nil
		}
		res := messages.EmbeddingMGetResult{Vectors: make([][]float32, len(vals))}
		for i, v := range vals {
			if v == nil {
				continue
			}
			if res.Vectors[i], err = UnpackVector(v); err != nil {
				return nil, messages.Wrap(messages.CodeInternal, err, "%v", err)
			}
			res.Hits++
		}
		return res, nil
	case messages.OpSet, messages.OpMSet:
		ttl, err := optionalTTL(req.TTLMS, req.TTLSeconds, s.embeddingTTL)
		if err != nil {
			return nil, err
		}
		items := req.Items
		if req.Op == messages.OpSet {
			items = []messages.EmbeddingItem{{Hash: req.Hash, Text: req.Text, Model: req.Model, Vector: req.Vector, VectorB64: req.VectorB64}}
		} else if len(items) == 0 || len(items) > MaxBatchItems {
			return nil, messages.BadRequest("items", "items must hold 1 to %d vectors", MaxBatchItems)
		}
		blobs := make([]Blob, len(items))
		res := messages.EmbeddingSetResult{Hashes: make([]string, len(items))}
		for i, it := range items {
			if blobs[i].Key, err = embeddingKey("hash", it.Hash, it.Text, it.Model); err != nil {
				return nil, err
			}
			if blobs[i].Value, err = packItem(it.Vector, it.VectorB64); err != nil {
				return nil, err
			}
			res.Hashes[i] = blobs[i].Key
		}
		if err := s.b.SetBlobs(ctx, blobs, ttl); err != nil {
			return nil, err
		}
		res.Stored = len(blobs)
		return res, nil
	case messages.OpDelete:
		keys := req.Hashes
		if len(keys) == 0 {
			key, err := embeddingKey("hash", req.Hash, req.Text, req.Model)
			if err != nil {
				return nil, err
			}
			keys = []string{key}
		}
		if len(keys) > MaxBatchItems {
			return nil, messages.BadRequest("hashes", "hashes must list at most %d hashes", MaxBatchItems)
		}
		n, err := s.b.DeleteBlobs(ctx, keys)
		if err != nil {
			return nil, err
		}
		return messages.DeletedResult{Deleted: n}, nil
	case "":
		return nil, messages.BadRequest("op", "op is required: get, set, mget, mset or delete")
	}
	return nil, messages.BadRequest("op", "unknown op %q: use get, set, mget, mset or delete", req.Op)
}
