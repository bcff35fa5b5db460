package memory

import (
	"context"
	"math"
	"sort"
	"time"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

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
