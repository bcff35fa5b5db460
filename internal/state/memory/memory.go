// Package memory is the in-process state backend, for a single worker. It
// keeps the same semantics as the Redis backend (one conformance suite checks
// both), under one mutex, and a janitor reclaims expired entries in the
// background so a long-running worker with many one-off keys does not grow
// without bound.
package memory

import (
	"context"
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

// Health implements state.Backend.
func (b *Backend) Health(context.Context) messages.StateHealth {
	return messages.StateHealth{Backend: state.BackendMemory, Status: messages.HealthHealthy}
}
