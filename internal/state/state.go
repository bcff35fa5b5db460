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
// (package statetest): a sliding-window rate limit in which denied calls are not
// counted (an exact log up to ExactLimitMax, a bounded counter above it), locks
// that only the holder of their secret lease can release or refresh, with a
// fencing token that grows with every acquisition (seeded from the clock, so it
// does not go back when the store loses its data), and TTLs on everything.
//
// # Lock spaces
//
// A [LockKey] is either a caller's ([CallerLock], what state.lock reaches) or
// the worker's own ([InternalLock], maintenance). The two spaces are disjoint
// by construction: no caller string names an internal lock.
//
// [Service] validates requests and carries out the parts that do not depend on
// the backend (waiting for a lock, hashing texts, packing vectors).
//
// # Errors
//
// A backend returns its own errors, saying what it was doing; one that cannot
// reach its store wraps [ErrUnavailable]. [AsError] maps them to the protocol,
// once, where the worker answers: the caller gets a generic message ("state
// backend error"), the log line the backend's error (a Redis CROSSSLOT, say).
package state

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

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
	// The window and the limit are part of the key's identity: calls with
	// another window or limit count in a bucket of their own. Up to
	// ExactLimitMax the window is an exact log; above it, a sliding-window
	// counter of constant size.
	RateLimit(ctx context.Context, key string, limit, cost int64, window time.Duration) (messages.RateLimitResult, error)

	// AcquireLock takes key for owner for ttl, once (no waiting). When taken
	// the answer carries a new secret lease (NewLease) and the fencing token;
	// when held (even by the same owner name) it names the holder's owner,
	// token and remaining TTL, never its lease.
	AcquireLock(ctx context.Context, key LockKey, owner string, ttl time.Duration) (messages.LockAcquireResult, error)
	// ReleaseLock frees key if lease is the holder's.
	ReleaseLock(ctx context.Context, key LockKey, lease string) (messages.LockReleaseResult, error)
	// RefreshLock sets a new TTL on key if lease is the holder's.
	RefreshLock(ctx context.Context, key LockKey, lease string, ttl time.Duration) (messages.LockRefreshResult, error)
	// LockStatus describes key's holder, if any, without its lease.
	LockStatus(ctx context.Context, key LockKey) (messages.LockStatusResult, error)

	// GetBlobs returns the cached values of keys, nil for misses, in one round trip.
	GetBlobs(ctx context.Context, keys []string) ([][]byte, error)
	// BlobSizes returns the byte lengths of the cached values of keys, 0 for
	// misses, in one round trip, without reading the values.
	BlobSizes(ctx context.Context, keys []string) ([]int64, error)
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

// LockKey names a lock in the callers' space or in the worker's internal
// space. The spaces are disjoint: a LockKey made by CallerLock never equals,
// and no backend stores it where it could meet, one made by InternalLock.
type LockKey struct {
	internal bool
	name     string
}

// CallerLock is the key of a lock that callers name through state.lock.
func CallerLock(name string) LockKey { return LockKey{name: name} }

// InternalLock is the key of one of the worker's own locks (maintenance).
// No state.lock request can name it.
func InternalLock(name string) LockKey { return LockKey{internal: true, name: name} }

// Name is the key's name within its space.
func (k LockKey) Name() string { return k.name }

// Internal reports whether the key is in the worker's internal space.
func (k LockKey) Internal() bool { return k.internal }

// String names the key for logs: internal keys are marked.
func (k LockKey) String() string {
	if k.internal {
		return "internal:" + k.name
	}
	return k.name
}

// NewLease returns a new lock lease: 130 random bits from crypto/rand, as 26
// base32 characters. Whoever holds it may release or refresh the lock.
func NewLease() string { return rand.Text() }

// NextToken is the fencing token after last at clock time nowUS (µs since the
// epoch): the larger of last+1 and nowUS. Seeding from the clock keeps tokens
// growing when the stored counter is lost (a restart without persistence),
// as long as the clock does not step back past the tokens already issued.
func NextToken(last, nowUS int64) int64 { return max(last+1, nowUS) }

// ExactLimitMax is the largest limit a rate-limit key keeps an exact log of
// admitted calls for (at most this many entries). Above it the key is a
// sliding-window counter of three numbers.
const ExactLimitMax = 1000

// MillisCeil converts a duration in microseconds to whole milliseconds,
// rounding up, so a "retry after" never undershoots.
func MillisCeil(us int64) int64 {
	if us <= 0 {
		return 0
	}
	return (us + 999) / 1000
}
