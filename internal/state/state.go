// Package state holds dbworker's shared state primitives — rate limits, locks,
// an embedding cache and a key-value store — behind one Backend interface with
// two implementations: memory (one node) and Redis (a pool of workers).
//
// # Choosing a backend
//
// Like the Python module it replaces, the backend follows DEPLOYMENT_MODE
// (single_node means memory, distributed means redis), and STATE_BACKEND
// overrides it. A distributed deployment with the memory backend is refused:
// counters and locks private to one worker would be wrong answers in a pool.
//
// # Same answers everywhere
//
// Both backends implement the same semantics, checked by one conformance suite
// (package statetest): an exact sliding-window rate limit in which denied calls
// are not counted, locks that only their owner can release or refresh, with a
// fencing token that grows with every acquisition, and TTLs on everything.
//
// [Service] validates requests and carries out the parts that do not depend on
// the backend (waiting for a lock, hashing texts, packing vectors).
package state

import (
	"context"
	"errors"
	"time"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// ErrUnavailable wraps errors of a backend that cannot be reached.
var ErrUnavailable = errors.New("state backend unavailable")

// ErrNotInteger is returned by KVIncr when the stored value is not an integer.
var ErrNotInteger = errors.New("value is not an integer or out of range")

// Blob is one value of the embedding cache.
type Blob struct {
	Key   string
	Value []byte
}

// Backend is a store of shared state. Every method is safe for concurrent use.
// Keys are the callers' own; a backend namespaces them per kind.
type Backend interface {
	// Name is the backend's registered name ("memory", "redis").
	Name() string

	// RateLimit admits a call of cost on key when the costs admitted in the
	// last window, plus cost, stay within limit. A denied call is not counted.
	RateLimit(ctx context.Context, key string, limit, cost int64, window time.Duration) (messages.RateLimitResult, error)

	// AcquireLock takes key for owner for ttl, once (no waiting). Acquiring a
	// lock the owner already holds renews its TTL and keeps its token.
	AcquireLock(ctx context.Context, key, owner string, ttl time.Duration) (messages.LockAcquireResult, error)
	// ReleaseLock frees key if owner holds it.
	ReleaseLock(ctx context.Context, key, owner string) (messages.LockReleaseResult, error)
	// RefreshLock sets a new TTL on key if owner holds it.
	RefreshLock(ctx context.Context, key, owner string, ttl time.Duration) (messages.LockRefreshResult, error)
	// LockStatus describes key's holder, if any.
	LockStatus(ctx context.Context, key string) (messages.LockStatusResult, error)

	// GetBlobs returns the cached values of keys, nil for misses, in one round trip.
	GetBlobs(ctx context.Context, keys []string) ([][]byte, error)
	// SetBlobs stores values with ttl (0: no expiry), in one round trip.
	SetBlobs(ctx context.Context, blobs []Blob, ttl time.Duration) error
	// DeleteBlobs removes keys and returns how many existed.
	DeleteBlobs(ctx context.Context, keys []string) (int64, error)

	// KVGet returns the JSON value of key.
	KVGet(ctx context.Context, key string) (value []byte, found bool, err error)
	// KVSet stores a JSON value with ttl (0: no expiry).
	KVSet(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// KVDelete removes key.
	KVDelete(ctx context.Context, key string) (bool, error)
	// KVIncr adds amount to the integer at key (0 when absent) and returns the
	// result; a stored value that is not an integer gives ErrNotInteger. The
	// key's TTL, if any, is kept.
	KVIncr(ctx context.Context, key string, amount int64) (int64, error)

	// Health reports the backend's status and, for Redis, its counters.
	Health(ctx context.Context) messages.StateHealth
	// Close releases the backend's resources.
	Close() error
}

// MillisCeil converts a duration in microseconds to whole milliseconds,
// rounding up, so a "retry after" never undershoots.
func MillisCeil(us int64) int64 {
	if us <= 0 {
		return 0
	}
	return (us + 999) / 1000
}
