// Package statetest is the conformance suite of state backends: the same
// calls with the same expected answers, run against every backend.
package statetest

import (
	"context"
	"testing"

	"github.com/jeeves-avionics/dbworker/internal/state"
)

// Open returns a fresh, isolated backend for one test.
type Open func(t *testing.T) state.Backend

// Run runs the whole suite against the backends open returns.
func Run(t *testing.T, open Open) {
	tests := map[string]func(*testing.T, state.Backend){
		"RateLimitSequence":       rateLimitSequence,
		"RateLimitWindowReopens":  rateLimitWindowReopens,
		"RateLimitDeniedNotCount": rateLimitDeniedNotCounted,
		"RateLimitCost":           rateLimitCost,
		"RateLimitEdges":          rateLimitEdges,
		"RateLimitConcurrent":     rateLimitConcurrent,
		"RateLimitIdentity":       rateLimitIdentity,
		"RateLimitCounter":        rateLimitCounter,
		"RateLimitFullLog":        rateLimitFullLog,
		"LockOwnership":           lockOwnership,
		"LockThirdPartyCannot":    lockThirdPartyCannotSteal,
		"LockSpaces":              lockSpaces,
		"LockExpiry":              lockExpiry,
		"LockRefresh":             lockRefresh,
		"LockTokensFollowClock":   lockTokensFollowClock,
		"LockFencingContended":    lockFencingContended,
		"Cache":                   cache,
		"KV":                      kv,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, open(t))
		})
	}
}

// ctx is the suite's context: no call of the suite is cancelled.
var ctx = context.Background()
