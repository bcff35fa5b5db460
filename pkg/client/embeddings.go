package client

import (
	"context"
	"encoding/base64"
	"fmt"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// EmbeddingKey names a cached embedding: ByHash, or ByText (the worker keys
// it by the hex SHA-256 of the model, a NUL byte and the text).
type EmbeddingKey struct {
	hash        string
	model, text string
	byText      bool
}

// ByHash names the embedding cached under hash.
func ByHash(hash string) EmbeddingKey { return EmbeddingKey{hash: hash} }

// ByText names the embedding model gave for text.
func ByText(model, text string) EmbeddingKey {
	return EmbeddingKey{model: model, text: text, byText: true}
}

// String is the key as a log line would show it (never the text).
func (k EmbeddingKey) String() string {
	if k.byText {
		return fmt.Sprintf("text of model %q", k.model)
	}
	return k.hash
}

// request returns a request of op for k.
func (k EmbeddingKey) request(op string) messages.EmbeddingRequest {
	req := messages.EmbeddingRequest{Op: op, Hash: k.hash}
	if k.byText {
		text := k.text
		req.Model, req.Text = k.model, &text
	}
	return req
}

// Embedding is one vector of an MSet.
type Embedding struct {
	Key    EmbeddingKey
	Vector []float32
}

func toFloat64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// vectorFields is v as a request carries it: a JSON array (WithJSONVectors)
// or base64 of its little-endian bytes. An empty v is neither.
func (c *Client) vectorFields(v []float32) ([]float64, *string) {
	switch {
	case len(v) == 0:
		return nil, nil
	case c.jsonVectors:
		return toFloat64s(v), nil
	}
	b64 := base64.StdEncoding.EncodeToString(messages.Float32sLE(v))
	return nil, &b64
}

// encoding is the encoding field of a request whose answer has vectors.
func (c *Client) encoding() string {
	if c.jsonVectors {
		return ""
	}
	return messages.EncodingF32LE
}

// Embeddings is the handle of cache.embedding: float32 vectors cached under
// a hash, or under a model and text. Get it from Client.Embeddings.
type Embeddings struct{ c *Client }

func (e Embeddings) do(ctx context.Context, req messages.EmbeddingRequest, resp any) error {
	return e.c.do(ctx, subjects.CacheEmbedding, req, resp)
}

// Set caches vector under key and returns the hash the worker keys it by.
func (e Embeddings) Set(ctx context.Context, key EmbeddingKey, vector []float32, opts ...SetOption) (string, error) {
	o, err := applySet(opts)
	if err != nil {
		return "", err
	}
	req := key.request(messages.OpSet)
	req.Vector, req.VectorB64 = e.c.vectorFields(vector)
	req.TTLMS = o.ttl
	var res messages.EmbeddingSetResult
	if err := e.do(ctx, req, &res); err != nil {
		return "", err
	}
	if len(res.Hashes) != 1 {
		return "", fmt.Errorf("embedding set %s: answer has %d hashes, not 1", key, len(res.Hashes))
	}
	return res.Hashes[0], nil
}

// Get returns the vector cached under key; none cached is ErrKeyNotFound.
func (e Embeddings) Get(ctx context.Context, key EmbeddingKey) ([]float32, error) {
	req := key.request(messages.OpGet)
	req.Encoding = e.c.encoding()
	// The answer of either encoding: the other field stays empty.
	var res struct {
		messages.EmbeddingGetResult
		VectorB64 []byte `json:"vector_b64"`
	}
	if err := e.do(ctx, req, &res); err != nil {
		return nil, err
	}
	if !res.Hit {
		return nil, fmt.Errorf("embedding get %s: %w", key, ErrKeyNotFound)
	}
	if res.VectorB64 == nil {
		return res.Vector, nil
	}
	v, err := messages.Float32sFromLE(res.VectorB64)
	if err != nil {
		return nil, fmt.Errorf("embedding get %s: %w", key, err)
	}
	return v, nil
}

// MSet caches items (1 to 1000) in one request and returns their hashes in
// item order.
func (e Embeddings) MSet(ctx context.Context, items []Embedding, opts ...SetOption) ([]string, error) {
	o, err := applySet(opts)
	if err != nil {
		return nil, err
	}
	req := messages.EmbeddingRequest{Op: messages.OpMSet, TTLMS: o.ttl, Items: make([]messages.EmbeddingItem, len(items))}
	for i, it := range items {
		k := it.Key.request("")
		req.Items[i] = messages.EmbeddingItem{Hash: k.Hash, Model: k.Model, Text: k.Text}
		req.Items[i].Vector, req.Items[i].VectorB64 = e.c.vectorFields(it.Vector)
	}
	var res messages.EmbeddingSetResult
	if err := e.do(ctx, req, &res); err != nil {
		return nil, err
	}
	return res.Hashes, nil
}

// MGet returns the vectors of hashes (1 to 1000) in order, nil for misses,
// in one request.
func (e Embeddings) MGet(ctx context.Context, hashes []string) ([][]float32, error) {
	// The answer of either encoding: the other field stays nil.
	var res struct {
		Vectors    [][]float32 `json:"vectors"`
		VectorsB64 [][]byte    `json:"vectors_b64"`
	}
	if err := e.do(ctx, messages.EmbeddingRequest{Op: messages.OpMGet, Hashes: hashes, Encoding: e.c.encoding()}, &res); err != nil {
		return nil, err
	}
	if res.VectorsB64 == nil {
		return res.Vectors, nil
	}
	out := make([][]float32, len(res.VectorsB64))
	for i, b := range res.VectorsB64 {
		v, err := messages.Float32sFromLE(b)
		if err != nil {
			return nil, fmt.Errorf("embedding mget: vector %d: %w", i, err)
		}
		out[i] = v
	}
	return out, nil
}

// Delete removes the vector under key; it reports whether one was there.
func (e Embeddings) Delete(ctx context.Context, key EmbeddingKey) (bool, error) {
	var res messages.DeletedResult
	if err := e.do(ctx, key.request(messages.OpDelete), &res); err != nil {
		return false, err
	}
	return res.Deleted > 0, nil
}

// MDelete removes the vectors of hashes (1 to 1000) in one request and says
// how many were there.
func (e Embeddings) MDelete(ctx context.Context, hashes []string) (int64, error) {
	var res messages.DeletedResult
	err := e.do(ctx, messages.EmbeddingRequest{Op: messages.OpDelete, Hashes: hashes}, &res)
	return res.Deleted, err
}
