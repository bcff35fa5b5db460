package memory

import (
	"context"
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/jeeves-avionics/dbworker/internal/state"
)

// entry is a value of the embedding cache or the key-value store.
type entry struct {
	value   []byte
	expires time.Time // zero: never
}

func (e *entry) expired(now time.Time) bool { return !e.expires.IsZero() && !now.Before(e.expires) }

func (b *Backend) get(m map[string]*entry, key string, now time.Time) *entry {
	e := m[key]
	if e != nil && e.expired(now) {
		delete(m, key)
		return nil
	}
	return e
}

func expiry(now time.Time, ttl time.Duration) time.Time {
	if ttl <= 0 {
		return time.Time{}
	}
	return now.Add(ttl)
}

// GetBlobs implements state.Backend.
func (b *Backend) GetBlobs(_ context.Context, keys []string) ([][]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if e := b.get(b.blobs, k, now); e != nil {
			out[i] = e.value
		}
	}
	return out, nil
}

// BlobSizes implements state.Backend.
func (b *Backend) BlobSizes(_ context.Context, keys []string) ([]int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	out := make([]int64, len(keys))
	for i, k := range keys {
		if e := b.get(b.blobs, k, now); e != nil {
			out[i] = int64(len(e.value))
		}
	}
	return out, nil
}

// SetBlobs implements state.Backend.
func (b *Backend) SetBlobs(_ context.Context, blobs []state.Blob, ttl time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	exp := expiry(b.now(), ttl)
	for _, bl := range blobs {
		b.blobs[bl.Key] = &entry{value: append([]byte(nil), bl.Value...), expires: exp}
	}
	return nil
}

// DeleteBlobs implements state.Backend.
func (b *Backend) DeleteBlobs(_ context.Context, keys []string) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	var n int64
	for _, k := range keys {
		if b.get(b.blobs, k, now) != nil {
			delete(b.blobs, k)
			n++
		}
	}
	return n, nil
}

// KVGet implements state.Backend.
func (b *Backend) KVGet(_ context.Context, key string) ([]byte, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.get(b.kv, key, b.now())
	if e == nil {
		return nil, false, nil
	}
	return e.value, true, nil
}

// KVSet implements state.Backend.
func (b *Backend) KVSet(_ context.Context, key string, value []byte, ttl time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.kv[key] = &entry{value: append([]byte(nil), value...), expires: expiry(b.now(), ttl)}
	return nil
}

// KVDelete implements state.Backend.
func (b *Backend) KVDelete(_ context.Context, key string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.get(b.kv, key, b.now()) == nil {
		return false, nil
	}
	delete(b.kv, key)
	return true, nil
}

// KVIncr implements state.Backend, with Redis INCRBY's rules: the value must
// be an integer and the result must not overflow.
func (b *Backend) KVIncr(_ context.Context, key string, amount int64) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.get(b.kv, key, b.now())
	var cur int64
	if e != nil {
		var err error
		if cur, err = strconv.ParseInt(string(e.value), 10, 64); err != nil {
			return 0, state.ErrNotInteger
		}
	}
	if amount > 0 && cur > math.MaxInt64-amount || amount < 0 && cur < math.MinInt64-amount {
		return 0, state.ErrNotInteger
	}
	if e == nil {
		e = &entry{}
		b.kv[key] = e
	}
	cur += amount
	e.value, _ = json.Marshal(cur)
	return cur, nil
}
