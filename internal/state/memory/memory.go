// Package memory is the in-process state backend, for a single worker. It
// keeps the same semantics as the Redis backend (one conformance suite checks
// both), under one mutex, and a janitor reclaims expired entries in the
// background so a long-running worker with many one-off keys does not grow
// without bound.
package memory

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// SweepIntervalDefault is how often expired entries are reclaimed.
const SweepIntervalDefault = time.Second

// Options configure a Backend.
type Options struct {
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// SweepInterval is the janitor's period. Defaults to 1s.
	SweepInterval time.Duration
}

// Backend is the memory state backend.
type Backend struct {
	now func() time.Time

	mu     sync.Mutex
	limits map[limitKey]*window
	locks  map[state.LockKey]*lock
	blobs  map[string]*entry
	kv     map[string]*entry
	fence  int64 // one counter for all keys, seeded from the clock (state.NextToken)

	janitor janitor
}

type entry struct {
	value   []byte
	expires time.Time // zero: never
}

func (e *entry) expired(now time.Time) bool { return !e.expires.IsZero() && !now.Before(e.expires) }

type lock struct {
	owner   string
	lease   string
	token   int64
	expires time.Time
}

// holds reports whether lease is the lock's, in constant time.
func (l *lock) holds(lease string) bool {
	return subtle.ConstantTimeCompare([]byte(l.lease), []byte(lease)) == 1
}

// limitKey is a rate-limit key's identity: its name, window and limit. A
// call with another window or limit counts in a bucket of its own, so it can
// neither reset nor rewrite this one.
type limitKey struct {
	key    string
	window time.Duration
	limit  int64
}

// window is one rate-limit key: the exact log of its admitted calls, oldest
// first (limit up to state.ExactLimitMax, so at most that many entries), or
// the two counts of a sliding-window counter (above it).
type window struct {
	calls []call
	sum   int64

	start      int64 // µs: start of the counter's current aligned window
	curr, prev int64
}

type call struct {
	at   int64 // microseconds
	cost int64
	cum  int64 // the costs admitted on the key up to this call, its own included
}

// Factory opens a memory backend; it is registered as "memory".
func Factory(context.Context, state.Options) (state.Backend, error) { return New(Options{}), nil }

// New returns a backend and starts its janitor; Close stops it.
func New(o Options) *Backend {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = SweepIntervalDefault
	}
	b := &Backend{
		now:    o.Now,
		limits: make(map[limitKey]*window),
		locks:  make(map[state.LockKey]*lock),
		blobs:  make(map[string]*entry),
		kv:     make(map[string]*entry),
	}
	b.janitor = janitor{every: o.SweepInterval, sweep: b.Sweep}
	_ = b.janitor.Start(context.Background()) // a new janitor starts
	return b
}

// Name implements state.Backend.
func (b *Backend) Name() string { return state.BackendMemory }

// Close stops the janitor and waits for it. It is idempotent.
func (b *Backend) Close() error { return b.janitor.Stop(context.Background()) }

// Sweep removes every expired entry now. The janitor calls it periodically.
func (b *Backend) Sweep() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	us := now.UnixMicro()
	for k, w := range b.limits {
		span := k.window.Microseconds()
		if k.limit > state.ExactLimitMax && us >= w.start+2*span ||
			k.limit <= state.ExactLimitMax && (len(w.calls) == 0 || w.calls[len(w.calls)-1].at <= us-span) {
			delete(b.limits, k)
		}
	}
	for k, l := range b.locks {
		if !now.Before(l.expires) {
			delete(b.locks, k)
		}
	}
	for _, m := range []map[string]*entry{b.blobs, b.kv} {
		for k, e := range m {
			if e.expired(now) {
				delete(m, k)
			}
		}
	}
}

// Len returns the number of entries of every kind, for tests of reclamation.
func (b *Backend) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.limits) + len(b.locks) + len(b.blobs) + len(b.kv)
}

// RateLimitEntries is the number of calls and counters kept for rate limits,
// for tests that per-key cost stays bounded.
func (b *Backend) RateLimitEntries() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, w := range b.limits {
		n += max(len(w.calls), 1)
	}
	return n
}

// RateLimit implements state.Backend with the same algorithms as the Redis
// scripts: ratelimit.lua up to state.ExactLimitMax, ratelimit_counter.lua
// above it.
func (b *Backend) RateLimit(_ context.Context, key string, limit, cost int64, span time.Duration) (messages.RateLimitResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id := limitKey{key: key, window: span, limit: limit}
	w := b.limits[id]
	if w == nil {
		w = &window{}
		b.limits[id] = w
	}
	now := b.now().UnixMicro()
	var res messages.RateLimitResult
	if limit > state.ExactLimitMax {
		res = w.counter(now, span.Microseconds(), limit, cost)
	} else {
		res = w.log(now, span.Microseconds(), limit, cost)
	}
	if res.ResetMS == 0 {
		delete(b.limits, id)
	}
	return res, nil
}

// log is the exact sliding window: every admitted call is kept until it
// leaves the window.
func (w *window) log(now, windowUS, limit, cost int64) messages.RateLimitResult {
	// Calls at or before now-window have left it.
	drop := 0
	for drop < len(w.calls) && w.calls[drop].at <= now-windowUS {
		w.sum -= w.calls[drop].cost
		drop++
	}
	w.calls = w.calls[drop:]
	res := messages.RateLimitResult{Limit: limit}
	switch {
	case w.sum+cost <= limit:
		res.Allowed = true
		if cost > 0 {
			c := call{at: now, cost: cost, cum: cost}
			if n := len(w.calls); n > 0 {
				c.cum += w.calls[n-1].cum
			}
			w.calls = append(w.calls, c)
			w.sum += cost
		}
	case cost > limit:
		res.RetryAfterMS = -1
	default:
		// The oldest calls whose costs add up to need must leave the window:
		// a binary search on the running total, as ratelimit.lua does.
		need := w.sum + cost - limit
		base := w.calls[0].cum - w.calls[0].cost
		i := sort.Search(len(w.calls), func(i int) bool { return w.calls[i].cum-base >= need })
		res.RetryAfterMS = state.MillisCeil(w.calls[i].at + windowUS - now)
	}
	res.Remaining = max(limit-w.sum, 0)
	if len(w.calls) > 0 {
		res.ResetMS = state.MillisCeil(w.calls[len(w.calls)-1].at + windowUS - now)
	}
	return res
}

// counter is the sliding-window counter: the count of the current aligned
// window plus the previous window's, weighted by the part of it still inside
// the sliding window. Same arithmetic as ratelimit_counter.lua.
func (w *window) counter(now, windowUS, limit, cost int64) messages.RateLimitResult {
	start := now - now%windowUS
	switch w.start {
	case start:
	case start - windowUS:
		w.prev, w.curr = w.curr, 0
	default:
		w.prev, w.curr = 0, 0
	}
	w.start = start
	W := float64(windowUS)
	weight := float64(windowUS-(now-start)) / W
	res := messages.RateLimitResult{Limit: limit}
	switch {
	case float64(w.prev)*weight+float64(w.curr)+float64(cost) <= float64(limit):
		res.Allowed = true
		w.curr += cost
	case cost > limit:
		res.RetryAfterMS = -1
	case w.curr+cost <= limit:
		// Wait until enough of the previous window has slid out.
		at := W - float64(limit-w.curr-cost)*W/float64(w.prev)
		res.RetryAfterMS = state.MillisCeil(int64(math.Ceil(at)) - (now - start))
	default:
		// Wait for the next window, then for enough of this one to slide out.
		at := W - float64(limit-cost)*W/float64(w.curr)
		res.RetryAfterMS = state.MillisCeil(start + windowUS - now + int64(math.Ceil(at)))
	}
	res.Remaining = max(limit-int64(math.Ceil(float64(w.prev)*weight+float64(w.curr))), 0)
	switch {
	case w.curr > 0:
		res.ResetMS = state.MillisCeil(start + 2*windowUS - now)
	case w.prev > 0:
		res.ResetMS = state.MillisCeil(start + windowUS - now)
	}
	return res
}

func (b *Backend) liveLock(key state.LockKey, now time.Time) *lock {
	l := b.locks[key]
	if l != nil && !now.Before(l.expires) {
		delete(b.locks, key)
		return nil
	}
	return l
}

// AcquireLock implements state.Backend.
func (b *Backend) AcquireLock(_ context.Context, key state.LockKey, owner string, ttl time.Duration) (messages.LockAcquireResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if l := b.liveLock(key, now); l != nil {
		return messages.LockAcquireResult{Owner: l.owner, Token: l.token, ExpiresInMS: remainingMS(l.expires, now)}, nil
	}
	b.fence = state.NextToken(b.fence, now.UnixMicro())
	l := &lock{owner: owner, lease: state.NewLease(), token: b.fence, expires: now.Add(ttl)}
	b.locks[key] = l
	at := l.expires.UTC().Truncate(time.Millisecond)
	return messages.LockAcquireResult{Acquired: true, Owner: owner, Lease: l.lease, Token: l.token, ExpiresAt: &at}, nil
}

// ReleaseLock implements state.Backend.
func (b *Backend) ReleaseLock(_ context.Context, key state.LockKey, lease string) (messages.LockReleaseResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.liveLock(key, b.now())
	switch {
	case l == nil:
		return messages.LockReleaseResult{Reason: messages.ReasonNotHeld}, nil
	case !l.holds(lease):
		return messages.LockReleaseResult{Reason: messages.ReasonNotOwner}, nil
	}
	delete(b.locks, key)
	return messages.LockReleaseResult{Released: true}, nil
}

// RefreshLock implements state.Backend.
func (b *Backend) RefreshLock(_ context.Context, key state.LockKey, lease string, ttl time.Duration) (messages.LockRefreshResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	l := b.liveLock(key, now)
	switch {
	case l == nil:
		return messages.LockRefreshResult{Reason: messages.ReasonNotHeld}, nil
	case !l.holds(lease):
		return messages.LockRefreshResult{Reason: messages.ReasonNotOwner}, nil
	}
	l.expires = now.Add(ttl)
	at := l.expires.UTC().Truncate(time.Millisecond)
	return messages.LockRefreshResult{Refreshed: true, ExpiresAt: &at}, nil
}

// LockStatus implements state.Backend.
func (b *Backend) LockStatus(_ context.Context, key state.LockKey) (messages.LockStatusResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	l := b.liveLock(key, now)
	if l == nil {
		return messages.LockStatusResult{}, nil
	}
	return messages.LockStatusResult{Held: true, Owner: l.owner, Token: l.token, ExpiresInMS: remainingMS(l.expires, now)}, nil
}

// remainingMS is the time left until t in whole milliseconds, rounded up as
// Redis's PTTL would not undershoot a live key (at least 1).
func remainingMS(t, now time.Time) int64 {
	return max(state.MillisCeil(t.Sub(now).Microseconds()), 1)
}

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

// Health implements state.Backend.
func (b *Backend) Health(context.Context) messages.StateHealth {
	return messages.StateHealth{Backend: state.BackendMemory, Status: messages.HealthHealthy}
}
