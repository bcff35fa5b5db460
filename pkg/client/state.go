package client

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

func ms(d time.Duration) *int64 {
	v := d.Milliseconds()
	return &v
}

// RateLimit counts a call of cost 1 against key: at most limit in any window.
// A denied call is a normal answer (Allowed false), not an error.
func (c *Client) RateLimit(ctx context.Context, key string, limit int64, window time.Duration) (messages.RateLimitResult, error) {
	return c.RateLimitCost(ctx, key, limit, window, 1)
}

// RateLimitCost is RateLimit for a call of any cost (0 asks without consuming).
func (c *Client) RateLimitCost(ctx context.Context, key string, limit int64, window time.Duration, cost int64) (messages.RateLimitResult, error) {
	var res messages.RateLimitResult
	err := c.do(ctx, "state.ratelimit", messages.RateLimitRequest{Key: key, Limit: &limit, WindowMS: ms(window), Cost: &cost}, &res)
	return res, err
}

// AcquireLock tries to take key for owner (a display name; a random one when
// empty, returned in the answer) for ttl, retrying for up to wait. When taken,
// the answer's Lease is the secret that ReleaseLock and RefreshLock need. A
// lock already held is a normal answer (Acquired false) naming the holder's
// owner and fencing token.
func (c *Client) AcquireLock(ctx context.Context, key, owner string, ttl, wait time.Duration) (messages.LockAcquireResult, error) {
	var res messages.LockAcquireResult
	req := messages.LockRequest{Op: messages.OpAcquire, Key: key, Owner: owner, TTLMS: ms(ttl)}
	if wait > 0 {
		req.WaitMS = ms(wait)
	}
	err := c.do(ctx, "state.lock", req, &res)
	return res, err
}

// ReleaseLock frees key if lease (from AcquireLock's answer) is the holder's.
func (c *Client) ReleaseLock(ctx context.Context, key, lease string) (messages.LockReleaseResult, error) {
	var res messages.LockReleaseResult
	err := c.do(ctx, "state.lock", messages.LockRequest{Op: messages.OpRelease, Key: key, Lease: lease}, &res)
	return res, err
}

// RefreshLock gives the lock on key a new ttl if lease is the holder's.
func (c *Client) RefreshLock(ctx context.Context, key, lease string, ttl time.Duration) (messages.LockRefreshResult, error) {
	var res messages.LockRefreshResult
	err := c.do(ctx, "state.lock", messages.LockRequest{Op: messages.OpRefresh, Key: key, Lease: lease, TTLMS: ms(ttl)}, &res)
	return res, err
}

// LockStatus describes key's holder.
func (c *Client) LockStatus(ctx context.Context, key string) (messages.LockStatusResult, error) {
	var res messages.LockStatusResult
	err := c.do(ctx, "state.lock", messages.LockRequest{Op: messages.OpStatus, Key: key}, &res)
	return res, err
}

func toFloat64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// SetEmbedding caches vector under hash for ttl (0: the worker's default).
func (c *Client) SetEmbedding(ctx context.Context, hash string, vector []float32, ttl time.Duration) error {
	req := messages.EmbeddingRequest{Op: messages.OpSet, Hash: hash, Vector: toFloat64s(vector)}
	if ttl > 0 {
		req.TTLMS = ms(ttl)
	}
	return c.do(ctx, "cache.embedding", req, nil)
}

// SetEmbeddingForText caches the vector model gave for text; it returns the
// hash the worker keys it by.
func (c *Client) SetEmbeddingForText(ctx context.Context, model, text string, vector []float32, ttl time.Duration) (string, error) {
	req := messages.EmbeddingRequest{Op: messages.OpSet, Model: model, Text: &text, Vector: toFloat64s(vector)}
	if ttl > 0 {
		req.TTLMS = ms(ttl)
	}
	var res messages.EmbeddingSetResult
	if err := c.do(ctx, "cache.embedding", req, &res); err != nil {
		return "", err
	}
	return res.Hashes[0], nil
}

// GetEmbedding returns the vector cached under hash, or false.
func (c *Client) GetEmbedding(ctx context.Context, hash string) ([]float32, bool, error) {
	var res messages.EmbeddingGetResult
	if err := c.do(ctx, "cache.embedding", messages.EmbeddingRequest{Op: messages.OpGet, Hash: hash}, &res); err != nil {
		return nil, false, err
	}
	return res.Vector, res.Hit, nil
}

// GetEmbeddingForText returns the vector cached for model and text, or false.
func (c *Client) GetEmbeddingForText(ctx context.Context, model, text string) ([]float32, bool, error) {
	var res messages.EmbeddingGetResult
	if err := c.do(ctx, "cache.embedding", messages.EmbeddingRequest{Op: messages.OpGet, Model: model, Text: &text}, &res); err != nil {
		return nil, false, err
	}
	return res.Vector, res.Hit, nil
}

// MGetEmbeddings returns the vectors of hashes in order, nil for misses, in
// one request.
func (c *Client) MGetEmbeddings(ctx context.Context, hashes []string) ([][]float32, error) {
	var res messages.EmbeddingMGetResult
	if err := c.do(ctx, "cache.embedding", messages.EmbeddingRequest{Op: messages.OpMGet, Hashes: hashes}, &res); err != nil {
		return nil, err
	}
	return res.Vectors, nil
}

// KVSet stores value (anything encoding/json takes) under key for ttl (0: no expiry).
func (c *Client) KVSet(ctx context.Context, key string, value any, ttl time.Duration) error {
	b, err := json.Marshal(value)
	if err != nil {
		return err
	}
	req := messages.KVRequest{Op: messages.OpSet, Key: key, Value: b}
	if ttl > 0 {
		req.TTLMS = ms(ttl)
	}
	return c.do(ctx, "state.kv", req, nil)
}

// KVGet decodes the value under key into dest; it reports false when absent.
func (c *Client) KVGet(ctx context.Context, key string, dest any) (bool, error) {
	var res messages.KVGetResult
	if err := c.do(ctx, "state.kv", messages.KVRequest{Op: messages.OpGet, Key: key}, &res); err != nil || !res.Found {
		return false, err
	}
	return true, json.Unmarshal(res.Value, dest)
}

// KVDelete removes key; it reports whether it existed.
func (c *Client) KVDelete(ctx context.Context, key string) (bool, error) {
	var res messages.KVDeleteResult
	err := c.do(ctx, "state.kv", messages.KVRequest{Op: messages.OpDelete, Key: key}, &res)
	return res.Deleted, err
}

// KVIncr adds amount to the integer under key and returns the result.
func (c *Client) KVIncr(ctx context.Context, key string, amount int64) (int64, error) {
	var res messages.KVIncrResult
	err := c.do(ctx, "state.kv", messages.KVRequest{Op: messages.OpIncr, Key: key, Amount: &amount}, &res)
	return res.Value, err
}
