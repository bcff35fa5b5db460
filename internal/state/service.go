package state

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Limits and defaults of the state endpoints.
const (
	MaxKeyBytes         = 1024
	MaxVectorDims       = 16000
	MaxBatchItems       = 1000
	MaxWindow           = 30 * 24 * time.Hour
	MaxTTL              = 30 * 24 * time.Hour
	LockTTLDefault      = 30 * time.Second
	MaxWaitDefault      = 30 * time.Second
	MaxWaitersDefault   = 16
	EmbeddingTTLDefault = 24 * time.Hour
)

// ServiceConfig configures a Service.
type ServiceConfig struct {
	// LockTTL applies when an acquire names no TTL. Defaults to 30s.
	LockTTL time.Duration
	// MaxWait caps wait_ms. Defaults to 30s.
	MaxWait time.Duration
	// MaxWaiters bounds the acquires that wait (wait_ms) for a held lock at
	// once. Each holds a state lane slot while it waits, so the bound keeps
	// waiters from filling the lane; an acquire past it answers at once, as
	// with wait_ms 0, with wait_refused set. Defaults to 16.
	MaxWaiters int
	// EmbeddingTTL applies when a cache set names no TTL; 0 keeps vectors
	// until deleted or evicted. Defaults to 24h.
	EmbeddingTTL *time.Duration
}

// Service validates state requests and runs them on a Backend. A request it
// refuses is a *messages.Error; a backend's error comes back as the backend
// returned it, for the caller's answer path to map with [AsError].
type Service struct {
	b            Backend
	lockTTL      time.Duration
	maxWait      time.Duration
	embeddingTTL time.Duration
	waiters      chan struct{} // a slot per acquire waiting for a held lock
}

// NewService returns a Service over b. Fields of cfg left zero take their
// defaults; a negative one is an error.
func NewService(b Backend, cfg ServiceConfig) (*Service, error) {
	switch {
	case b == nil:
		return nil, errors.New("state: NewService needs a Backend")
	case cfg.LockTTL < 0, cfg.MaxWait < 0, cfg.MaxWaiters < 0, cfg.EmbeddingTTL != nil && *cfg.EmbeddingTTL < 0:
		return nil, fmt.Errorf("state: ServiceConfig values must not be negative (0 is the default): %+v", cfg)
	}
	s := &Service{b: b, lockTTL: cmp.Or(cfg.LockTTL, LockTTLDefault), maxWait: cmp.Or(cfg.MaxWait, MaxWaitDefault), embeddingTTL: EmbeddingTTLDefault}
	s.waiters = make(chan struct{}, cmp.Or(cfg.MaxWaiters, MaxWaitersDefault))
	if cfg.EmbeddingTTL != nil {
		s.embeddingTTL = *cfg.EmbeddingTTL
	}
	return s, nil
}

// Backend returns the service's backend.
func (s *Service) Backend() Backend { return s.b }

func checkKey(field, key string) error {
	switch {
	case key == "":
		return messages.BadRequest(field, "%s is required", field)
	case len(key) > MaxKeyBytes:
		return messages.BadRequest(field, "%s is %d bytes; the limit is %d", field, len(key), MaxKeyBytes)
	}
	return nil
}

// RateLimit checks and counts one call.
func (s *Service) RateLimit(ctx context.Context, req *messages.RateLimitRequest) (messages.RateLimitResult, error) {
	if err := checkKey("key", req.Key); err != nil {
		return messages.RateLimitResult{}, err
	}
	if req.Limit == nil {
		return messages.RateLimitResult{}, messages.BadRequest("limit", "limit is required")
	}
	if *req.Limit < 0 || *req.Limit > 1e9 {
		return messages.RateLimitResult{}, messages.BadRequest("limit", "limit must be between 0 and 1000000000, got %d", *req.Limit)
	}
	cost := int64(1)
	if req.Cost != nil {
		cost = *req.Cost
		if cost < 0 || cost > 1e9 {
			return messages.RateLimitResult{}, messages.BadRequest("cost", "cost must be between 0 and 1000000000, got %d", cost)
		}
	}
	window, err := duration("window", req.WindowMS, req.WindowSeconds, 0, MaxWindow, true)
	if err != nil {
		return messages.RateLimitResult{}, err
	}
	if window < time.Millisecond {
		return messages.RateLimitResult{}, messages.BadRequest("window_ms", "the window must be at least 1 ms")
	}
	res, err := s.b.RateLimit(ctx, req.Key, *req.Limit, cost, window)
	return res, err
}

// KV carries out a state.kv request.
func (s *Service) KV(ctx context.Context, req *messages.KVRequest) (any, error) {
	if req.Op == "" {
		return nil, messages.BadRequest("op", "op is required: get, set, delete or incr")
	}
	if err := checkKey("key", req.Key); err != nil {
		return nil, err
	}
	switch req.Op {
	case messages.OpGet:
		v, found, err := s.b.KVGet(ctx, req.Key)
		if err != nil {
			return nil, err
		}
		return messages.KVGetResult{Found: found, Value: v}, nil
	case messages.OpSet:
		if len(req.Value) == 0 {
			return nil, messages.BadRequest("value", "value is required")
		}
		ttl, err := optionalTTL(req.TTLMS, req.TTLSeconds, 0)
		if err != nil {
			return nil, err
		}
		if err := s.b.KVSet(ctx, req.Key, req.Value, ttl); err != nil {
			return nil, err
		}
		return messages.KVSetResult{Stored: true}, nil
	case messages.OpDelete:
		ok, err := s.b.KVDelete(ctx, req.Key)
		if err != nil {
			return nil, err
		}
		return messages.KVDeleteResult{Deleted: ok}, nil
	case messages.OpIncr:
		amount := int64(1)
		if req.Amount != nil {
			amount = *req.Amount
		}
		v, err := s.b.KVIncr(ctx, req.Key, amount)
		if err != nil {
			return nil, err
		}
		return messages.KVIncrResult{Value: v}, nil
	}
	return nil, messages.BadRequest("op", "unknown op %q: use get, set, delete or incr", req.Op)
}
