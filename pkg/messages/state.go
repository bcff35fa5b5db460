package messages

import "time"

// Ops of state.lock, cache.embedding and state.kv.
const (
	OpAcquire = "acquire"
	OpRelease = "release"
	OpRefresh = "refresh"
	OpStatus  = "status"
	OpGet     = "get"
	OpSet     = "set"
	OpMGet    = "mget"
	OpMSet    = "mset"
	OpDelete  = "delete"
	OpIncr    = "incr"
)

// RateLimitRequest is the body of state.ratelimit.
type RateLimitRequest struct {
	Key           string   `json:"key"`
	Limit         *int64   `json:"limit"`
	WindowMS      *int64   `json:"window_ms,omitempty"`
	WindowSeconds *float64 `json:"window_seconds,omitempty"`
	// Cost is what the call consumes. Defaults to 1; 0 asks without consuming.
	Cost *int64 `json:"cost,omitempty"`
}

// RateLimitResult is the answer of state.ratelimit. A denied call is a normal
// answer, not an error.
type RateLimitResult struct {
	Allowed   bool  `json:"allowed"`
	Remaining int64 `json:"remaining"`
	Limit     int64 `json:"limit"`
	// RetryAfterMS is 0 when allowed, the wait until the call would be admitted
	// when denied, and -1 when it never can be (cost above limit).
	RetryAfterMS int64 `json:"retry_after_ms"`
	// ResetMS is the wait until every admitted call has left the window.
	ResetMS int64 `json:"reset_ms"`
}

// LockRequest is the body of state.lock.
type LockRequest struct {
	Op    string `json:"op"`
	Key   string `json:"key"`
	Owner string `json:"owner,omitempty"`
	// Lease is the secret an acquire returned; release and refresh need it.
	Lease      string   `json:"lease,omitempty"`
	TTLMS      *int64   `json:"ttl_ms,omitempty"`
	TTLSeconds *float64 `json:"ttl_seconds,omitempty"`
	WaitMS     *int64   `json:"wait_ms,omitempty"`
}

// LockAcquireResult is the answer of state.lock acquire. When the lock is
// held by another acquisition, Owner and Token are the holder's, and Lease is
// empty.
type LockAcquireResult struct {
	Acquired bool   `json:"acquired"`
	Owner    string `json:"owner"`
	// Lease is the secret that releases and refreshes this acquisition; only
	// its acquirer ever sees it.
	Lease string `json:"lease,omitempty"`
	// Token is the fencing token: it grows with every successful acquisition
	// of the key, across releases, expiries and a state backend that lost its
	// data (it is seeded from the clock, in microseconds since the epoch).
	Token       int64      `json:"token,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	ExpiresInMS int64      `json:"expires_in_ms,omitempty"`
	// WaitRefused: the acquire asked to wait (wait_ms) but as many acquires
	// as the worker lets wait at once (STATE_LOCK_MAX_WAITERS) already did,
	// so it answered at once. Try again later.
	WaitRefused bool `json:"wait_refused,omitempty"`
}

// LockReleaseResult is the answer of state.lock release.
type LockReleaseResult struct {
	Released bool   `json:"released"`
	Reason   string `json:"reason,omitempty"`
}

// LockRefreshResult is the answer of state.lock refresh.
type LockRefreshResult struct {
	Refreshed bool       `json:"refreshed"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Reason    string     `json:"reason,omitempty"`
}

// LockStatusResult is the answer of state.lock status.
type LockStatusResult struct {
	Held        bool   `json:"held"`
	Owner       string `json:"owner,omitempty"`
	ExpiresInMS int64  `json:"expires_in_ms,omitempty"`
	Token       int64  `json:"token,omitempty"`
}

// Reasons a lock release or refresh is refused.
const (
	ReasonNotHeld  = "not_held"
	ReasonNotOwner = "not_owner" // held under another lease

)

// EmbeddingRequest is the body of cache.embedding.
type EmbeddingRequest struct {
	Op     string    `json:"op"`
	Hash   string    `json:"hash,omitempty"`
	Text   *string   `json:"text,omitempty"`
	Model  string    `json:"model,omitempty"`
	Vector []float64 `json:"vector,omitempty"`
	// VectorB64 is Vector as base64 of little-endian float32s (set); give
	// one or the other.
	VectorB64 *string         `json:"vector_b64,omitempty"`
	Hashes    []string        `json:"hashes,omitempty"`
	Items     []EmbeddingItem `json:"items,omitempty"`
	// Encoding is how get and mget answer vectors: EncodingJSON (the
	// default, "vector"/"vectors") or EncodingF32LE ("vector_b64"/"vectors_b64").
	Encoding string `json:"encoding,omitempty"`
	// TTLMS or TTLSeconds (not both) is how long a set or mset keeps its
	// vectors: 0 until deleted; absent, the worker's CACHE_EMBEDDING_TTL.
	TTLMS      *int64   `json:"ttl_ms,omitempty"`
	TTLSeconds *float64 `json:"ttl_seconds,omitempty"`
}

// EmbeddingItem is one vector of an mset: Vector or VectorB64.
type EmbeddingItem struct {
	Hash      string    `json:"hash,omitempty"`
	Text      *string   `json:"text,omitempty"`
	Model     string    `json:"model,omitempty"`
	Vector    []float64 `json:"vector,omitempty"`
	VectorB64 *string   `json:"vector_b64,omitempty"`
}

// EmbeddingGetResult is the answer of get.
type EmbeddingGetResult struct {
	Hash   string    `json:"hash"`
	Hit    bool      `json:"hit"`
	Vector []float32 `json:"vector"`
}

// EmbeddingMGetResult is the answer of mget: vectors in request order, null
// for misses.
type EmbeddingMGetResult struct {
	Vectors [][]float32 `json:"vectors"`
	Hits    int         `json:"hits"`
}

// EmbeddingGetB64Result is the answer of get with encoding f32le: the
// vector's little-endian float32 bytes, base64 on the wire (null on a miss).
type EmbeddingGetB64Result struct {
	Hash      string `json:"hash"`
	Hit       bool   `json:"hit"`
	VectorB64 []byte `json:"vector_b64"`
}

// EmbeddingMGetB64Result is the answer of mget with encoding f32le: each
// vector's little-endian float32 bytes, base64 on the wire, in request
// order, null for misses.
type EmbeddingMGetB64Result struct {
	VectorsB64 [][]byte `json:"vectors_b64"`
	Hits       int      `json:"hits"`
}

// EmbeddingSetResult is the answer of set and mset.
type EmbeddingSetResult struct {
	Stored int      `json:"stored"`
	Hashes []string `json:"hashes"`
}

// DeletedResult is the answer of a cache delete: how many vectors existed.
type DeletedResult struct {
	Deleted int64 `json:"deleted"`
}

// KVRequest is the body of state.kv.
type KVRequest struct {
	Op    string  `json:"op"`
	Key   string  `json:"key"`
	Value RawJSON `json:"value,omitempty"`
	// TTLMS or TTLSeconds (not both) is how long a set keeps its value: 0
	// or absent, until deleted.
	TTLMS      *int64   `json:"ttl_ms,omitempty"`
	TTLSeconds *float64 `json:"ttl_seconds,omitempty"`
	Amount     *int64   `json:"amount,omitempty"`
}

// KVGetResult is the answer of get.
type KVGetResult struct {
	Found bool    `json:"found"`
	Value RawJSON `json:"value"`
}

// KVSetResult is the answer of set.
type KVSetResult struct {
	Stored bool `json:"stored"`
}

// KVDeleteResult is the answer of delete.
type KVDeleteResult struct {
	Deleted bool `json:"deleted"`
}

// KVIncrResult is the answer of incr.
type KVIncrResult struct {
	Value int64 `json:"value"`
}

// RawJSON is a JSON value kept as written; an absent value marshals as null.
type RawJSON []byte

// MarshalJSON implements json.Marshaler.
func (r RawJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (r *RawJSON) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}
