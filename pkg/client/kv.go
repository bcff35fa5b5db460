package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// ErrKeyNotFound is returned (wrapped) by KV.Get and Embeddings.Get when
// nothing is stored under the key, as jetstream.ErrKeyNotFound is.
var ErrKeyNotFound = errors.New("key not found")

// SetOption tunes a KV or embedding Set (or MSet).
type SetOption interface {
	applySet(*setOptions) error
}

type setOptions struct {
	ttl *int64
}

type setOption func(*setOptions) error

func (f setOption) applySet(o *setOptions) error { return f(o) }

// WithTTL sets how long a value lives, in whole milliseconds (ttl_ms).
// WithTTL(0) says "never expire": the value stays until deleted. Without
// WithTTL a KV value never expires and an embedding lives for the worker's
// CACHE_EMBEDDING_TTL (24h). A negative duration, or one under a
// millisecond other than 0 (which the wire's milliseconds would turn into
// "never expire"), fails the call before anything is sent.
func WithTTL(d time.Duration) SetOption {
	return setOption(func(o *setOptions) error {
		if err := checkDuration("WithTTL", d); err != nil {
			return err
		}
		o.ttl = ms(d)
		return nil
	})
}

func applySet(opts []SetOption) (setOptions, error) {
	var o setOptions
	for _, opt := range opts {
		if err := opt.applySet(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// KV is the handle of state.kv: JSON values under keys, in the workers'
// state backend. Get it from Client.KV.
type KV struct{ c *Client }

// Set stores value (anything encoding/json takes) under key.
func (kv KV) Set(ctx context.Context, key string, value any, opts ...SetOption) error {
	o, err := applySet(opts)
	if err != nil {
		return err
	}
	b, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("kv set %q: encode value: %w", key, err)
	}
	return kv.c.do(ctx, subjects.StateKV, messages.KVRequest{Op: messages.OpSet, Key: key, Value: b, TTLMS: o.ttl}, nil)
}

// Get decodes the value under key into dest; nothing stored there is
// ErrKeyNotFound.
func (kv KV) Get(ctx context.Context, key string, dest any) error {
	var res messages.KVGetResult
	if err := kv.c.do(ctx, subjects.StateKV, messages.KVRequest{Op: messages.OpGet, Key: key}, &res); err != nil {
		return err
	}
	if !res.Found {
		return fmt.Errorf("kv get %q: %w", key, ErrKeyNotFound)
	}
	if err := json.Unmarshal(res.Value, dest); err != nil {
		return fmt.Errorf("kv get %q: decode value: %w", key, err)
	}
	return nil
}

// Delete removes key; it reports whether it existed.
func (kv KV) Delete(ctx context.Context, key string) (bool, error) {
	var res messages.KVDeleteResult
	err := kv.c.do(ctx, subjects.StateKV, messages.KVRequest{Op: messages.OpDelete, Key: key}, &res)
	return res.Deleted, err
}

// Incr adds amount (which may be negative) to the integer under key, a
// missing key counting as 0, and returns the result.
func (kv KV) Incr(ctx context.Context, key string, amount int64) (int64, error) {
	var res messages.KVIncrResult
	err := kv.c.do(ctx, subjects.StateKV, messages.KVRequest{Op: messages.OpIncr, Key: key, Amount: &amount}, &res)
	return res.Value, err
}
