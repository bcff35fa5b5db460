package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jeeves-avionics/dbworker/internal/state"
)

// GetBlobs implements state.Backend: one pipeline of GETs, so keys may live
// on different cluster nodes and a single server still sees one round trip.
func (b *Backend) GetBlobs(ctx context.Context, keys []string) ([][]byte, error) {
	cmds := make([]*goredis.StringCmd, len(keys))
	_, err := b.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, b.blobKey(k))
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("get %d vectors: %w", len(keys), classify(err))
	}
	out := make([][]byte, len(keys))
	for i, c := range cmds {
		v, err := c.Bytes()
		if errors.Is(err, goredis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get vector: %w", classify(err))
		}
		out[i] = v
	}
	return out, nil
}

// BlobSizes implements state.Backend: one pipeline of STRLENs.
func (b *Backend) BlobSizes(ctx context.Context, keys []string) ([]int64, error) {
	cmds := make([]*goredis.IntCmd, len(keys))
	_, err := b.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.StrLen(ctx, b.blobKey(k))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("size %d vectors: %w", len(keys), classify(err))
	}
	out := make([]int64, len(keys))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}

// SetBlobs implements state.Backend in one pipeline.
func (b *Backend) SetBlobs(ctx context.Context, blobs []state.Blob, ttl time.Duration) error {
	_, err := b.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, bl := range blobs {
			p.Set(ctx, b.blobKey(bl.Key), bl.Value, ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set %d vectors: %w", len(blobs), classify(err))
	}
	return nil
}

// DeleteBlobs implements state.Backend in one pipeline.
func (b *Backend) DeleteBlobs(ctx context.Context, keys []string) (int64, error) {
	cmds := make([]*goredis.IntCmd, len(keys))
	_, err := b.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Del(ctx, b.blobKey(k))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete %d vectors: %w", len(keys), classify(err))
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// KVGet implements state.Backend.
func (b *Backend) KVGet(ctx context.Context, key string) ([]byte, bool, error) {
	v, err := b.c.Get(ctx, b.kvKey(key)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("kv get %q: %w", key, classify(err))
	}
	return v, true, nil
}

// KVSet implements state.Backend.
func (b *Backend) KVSet(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := b.c.Set(ctx, b.kvKey(key), value, ttl).Err(); err != nil {
		return fmt.Errorf("kv set %q: %w", key, classify(err))
	}
	return nil
}

// KVDelete implements state.Backend.
func (b *Backend) KVDelete(ctx context.Context, key string) (bool, error) {
	n, err := b.c.Del(ctx, b.kvKey(key)).Result()
	if err != nil {
		return false, fmt.Errorf("kv delete %q: %w", key, classify(err))
	}
	return n == 1, nil
}

// KVIncr implements state.Backend with INCRBY, which keeps the key's TTL.
func (b *Backend) KVIncr(ctx context.Context, key string, amount int64) (int64, error) {
	n, err := b.c.IncrBy(ctx, b.kvKey(key), amount).Result()
	if err != nil {
		var re goredis.Error
		if errors.As(err, &re) && strings.Contains(re.Error(), "not an integer") || strings.Contains(err.Error(), "overflow") {
			return 0, state.ErrNotInteger
		}
		return 0, fmt.Errorf("kv incr %q: %w", key, classify(err))
	}
	return n, nil
}
