package redis

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nuid"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// RateLimit implements state.Backend with scripts/ratelimit.lua (an exact
// log) up to state.ExactLimitMax and scripts/ratelimit_counter.lua above it.
func (b *Backend) RateLimit(ctx context.Context, key string, limit, cost int64, window time.Duration) (messages.RateLimitResult, error) {
	keys := b.rateKeys(key, window, limit)
	var r []any
	var err error
	if limit > state.ExactLimitMax {
		r, err = run(ctx, b.scripts, rateCounterScript, keys[:1], limit, window.Microseconds(), cost)
	} else {
		r, err = run(ctx, b.scripts, rateLimitScript, keys, limit, window.Microseconds(), cost, nuid.Next())
	}
	if err != nil {
		return messages.RateLimitResult{}, fmt.Errorf("rate limit %q: %w", key, err)
	}
	if len(r) != 4 {
		return messages.RateLimitResult{}, fmt.Errorf("rate limit %q: reply of %d values", key, len(r))
	}
	res := messages.RateLimitResult{Allowed: toInt(r[0]) == 1, Remaining: toInt(r[1]), Limit: limit, ResetMS: state.MillisCeil(toInt(r[3]))}
	if retry := toInt(r[2]); retry < 0 {
		res.RetryAfterMS = -1
	} else {
		res.RetryAfterMS = state.MillisCeil(retry)
	}
	return res, nil
}
