package client

import (
	"context"
	"fmt"
	"time"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// RateLimitOption tunes a RateLimits.Allow.
type RateLimitOption interface {
	applyRateLimit(*messages.RateLimitRequest) error
}

type rateLimitOption func(*messages.RateLimitRequest) error

func (f rateLimitOption) applyRateLimit(r *messages.RateLimitRequest) error { return f(r) }

// WithCost makes a call count as n units (1 by default); 0 asks without
// consuming. A negative n is refused.
func WithCost(n int64) RateLimitOption {
	return rateLimitOption(func(r *messages.RateLimitRequest) error {
		if n < 0 {
			return fmt.Errorf("WithCost: must not be negative, got %d", n)
		}
		r.Cost = &n
		return nil
	})
}

// RateLimits is the handle of state.ratelimit. Get it from Client.RateLimits.
type RateLimits struct{ c *Client }

// Allow counts a call against key: at most limit units in any window. A
// key's limit and window are part of its identity (another limit or window
// is another bucket). A denied call is a normal answer (Allowed false, and
// RetryAfterMS), not an error.
func (r RateLimits) Allow(ctx context.Context, key string, limit int64, window time.Duration, opts ...RateLimitOption) (*messages.RateLimitResult, error) {
	if window < time.Millisecond {
		return nil, fmt.Errorf("rate limit %q: window must be at least 1ms, got %s", key, window)
	}
	req := messages.RateLimitRequest{Key: key, Limit: &limit, WindowMS: ms(window)}
	for _, o := range opts {
		if err := o.applyRateLimit(&req); err != nil {
			return nil, err
		}
	}
	var res messages.RateLimitResult
	if err := r.c.do(ctx, subjects.StateRateLimit, req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}
