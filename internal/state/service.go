package state

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nuid"

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

// Service validates state requests and runs them on a Backend.
type Service struct {
	b            Backend
	lockTTL      time.Duration
	maxWait      time.Duration
	embeddingTTL time.Duration
	waiters      chan struct{} // a slot per acquire waiting for a held lock
}

// NewService returns a Service over b.
func NewService(b Backend, cfg ServiceConfig) *Service {
	s := &Service{b: b, lockTTL: cfg.LockTTL, maxWait: cfg.MaxWait, embeddingTTL: EmbeddingTTLDefault}
	if s.lockTTL <= 0 {
		s.lockTTL = LockTTLDefault
	}
	if s.maxWait <= 0 {
		s.maxWait = MaxWaitDefault
	}
	if cfg.MaxWaiters <= 0 {
		cfg.MaxWaiters = MaxWaitersDefault
	}
	s.waiters = make(chan struct{}, cfg.MaxWaiters)
	if cfg.EmbeddingTTL != nil {
		s.embeddingTTL = *cfg.EmbeddingTTL
	}
	return s
}

// Backend returns the service's backend.
func (s *Service) Backend() Backend { return s.b }

// AsError maps a backend error to the protocol: unreachable backends are
// UNAVAILABLE, a non-integer incr is BAD_REQUEST, deadlines are TIMEOUT.
func AsError(err error) error {
	var me *messages.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &me):
		return me
	case errors.Is(err, ErrNotInteger):
		return messages.BadRequest("key", "incr: the stored value is not an integer")
	case errors.Is(err, context.DeadlineExceeded):
		return messages.Errorf(messages.CodeTimeout, "state backend did not answer in time")
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.Canceled):
		return messages.Errorf(messages.CodeUnavailable, "state backend unavailable")
	}
	return messages.Errorf(messages.CodeInternal, "state backend error")
}

func checkKey(field, key string) error {
	switch {
	case key == "":
		return messages.BadRequest(field, "%s is required", field)
	case len(key) > MaxKeyBytes:
		return messages.BadRequest(field, "%s is %d bytes; the limit is %d", field, len(key), MaxKeyBytes)
	}
	return nil
}

// duration reads a duration given in milliseconds or seconds (not both).
func duration(field string, ms *int64, secs *float64, def, max time.Duration, required bool) (time.Duration, error) {
	switch {
	case ms != nil && secs != nil:
		return 0, messages.BadRequest(field, "give %s_ms or %s_seconds, not both", field, field)
	case ms != nil:
		if *ms <= 0 {
			return 0, messages.BadRequest(field+"_ms", "%s_ms must be positive, got %d", field, *ms)
		}
		if *ms > max.Milliseconds() {
			return 0, messages.BadRequest(field+"_ms", "%s_ms must be at most %d", field, max.Milliseconds())
		}
		return time.Duration(*ms) * time.Millisecond, nil
	case secs != nil:
		if !(*secs > 0) || math.IsInf(*secs, 0) {
			return 0, messages.BadRequest(field+"_seconds", "%s_seconds must be positive", field)
		}
		if *secs > max.Seconds() {
			return 0, messages.BadRequest(field+"_seconds", "%s_seconds must be at most %.0f", field, max.Seconds())
		}
		return time.Duration(*secs * float64(time.Second)), nil
	case required:
		return 0, messages.BadRequest(field+"_ms", "%s_ms is required", field)
	}
	return def, nil
}

// optionalTTL reads a ttl_ms that may be 0 (no expiry).
func optionalTTL(ms *int64, def time.Duration) (time.Duration, error) {
	if ms == nil {
		return def, nil
	}
	if *ms < 0 {
		return 0, messages.BadRequest("ttl_ms", "ttl_ms must not be negative, got %d", *ms)
	}
	if *ms > MaxTTL.Milliseconds() {
		return 0, messages.BadRequest("ttl_ms", "ttl_ms must be at most %d", MaxTTL.Milliseconds())
	}
	return time.Duration(*ms) * time.Millisecond, nil
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
	return res, AsError(err)
}

// Lock carries out a state.lock request; the answer is one of the Lock*Result
// types. Every key it names is a CallerLock: state.lock cannot reach the
// worker's internal locks.
func (s *Service) Lock(ctx context.Context, req *messages.LockRequest) (any, error) {
	if err := checkKey("key", req.Key); err != nil {
		return nil, err
	}
	if len(req.Owner) > MaxKeyBytes {
		return nil, messages.BadRequest("owner", "owner is %d bytes; the limit is %d", len(req.Owner), MaxKeyBytes)
	}
	if len(req.Lease) > MaxKeyBytes {
		return nil, messages.BadRequest("lease", "lease is %d bytes; the limit is %d", len(req.Lease), MaxKeyBytes)
	}
	key := CallerLock(req.Key)
	switch req.Op {
	case messages.OpAcquire:
		ttl, err := duration("ttl", req.TTLMS, req.TTLSeconds, s.lockTTL, MaxTTL, false)
		if err != nil {
			return nil, err
		}
		var wait time.Duration
		if req.WaitMS != nil {
			if *req.WaitMS < 0 {
				return nil, messages.BadRequest("wait_ms", "wait_ms must not be negative, got %d", *req.WaitMS)
			}
			wait = min(time.Duration(min(*req.WaitMS, s.maxWait.Milliseconds()))*time.Millisecond, s.maxWait)
		}
		owner := req.Owner
		if owner == "" {
			owner = nuid.Next()
		}
		return s.acquire(ctx, key, owner, ttl, wait)
	case messages.OpRelease, messages.OpRefresh:
		if req.Lease == "" {
			return nil, messages.BadRequest("lease", "lease is required for %s: give the lease the acquire answered (the owner alone no longer proves who holds a lock)", req.Op)
		}
		if req.Op == messages.OpRelease {
			res, err := s.b.ReleaseLock(ctx, key, req.Lease)
			return res, AsError(err)
		}
		ttl, err := duration("ttl", req.TTLMS, req.TTLSeconds, s.lockTTL, MaxTTL, false)
		if err != nil {
			return nil, err
		}
		res, err := s.b.RefreshLock(ctx, key, req.Lease, ttl)
		return res, AsError(err)
	case messages.OpStatus:
		res, err := s.b.LockStatus(ctx, key)
		return res, AsError(err)
	case "":
		return nil, messages.BadRequest("op", "op is required: acquire, release, refresh or status")
	}
	return nil, messages.BadRequest("op", "unknown op %q: use acquire, release, refresh or status", req.Op)
}

// acquire tries until the lock is taken or wait has passed, backing off with
// jitter between tries. Only MaxWaiters acquires wait at once: past that an
// acquire of a held lock answers at once, with WaitRefused.
func (s *Service) acquire(ctx context.Context, key LockKey, owner string, ttl, wait time.Duration) (messages.LockAcquireResult, error) {
	deadline := time.Now().Add(wait)
	backoff := 10 * time.Millisecond
	waiting := false
	defer func() {
		if waiting {
			<-s.waiters
		}
	}()
	for {
		res, err := s.b.AcquireLock(ctx, key, owner, ttl)
		if err != nil || res.Acquired {
			return res, AsError(err)
		}
		if wait > 0 && !waiting {
			select {
			case s.waiters <- struct{}{}:
				waiting = true
			default:
				res.WaitRefused = true
				return res, nil
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return res, nil
		}
		pause := min(backoff/2+rand.N(backoff/2+1), left)
		if res.ExpiresInMS > 0 {
			pause = min(pause, time.Duration(res.ExpiresInMS)*time.Millisecond+time.Millisecond)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, nil
		case <-t.C:
		}
		backoff = min(backoff*2, 250*time.Millisecond)
	}
}

// EmbeddingKey is the cache key of a text embedded by a model: the hex
// SHA-256 of model, a NUL byte and the text.
func EmbeddingKey(model, text string) string {
	h := sha256.New()
	h.Write([]byte(model))
	h.Write([]byte{0})
	h.Write([]byte(text))
	return hex.EncodeToString(h.Sum(nil))
}

func embeddingKey(field, hash string, text *string, model string) (string, error) {
	switch {
	case hash != "" && text != nil:
		return "", messages.BadRequest(field, "give hash or text and model, not both")
	case hash != "":
		return hash, checkKey(field, hash)
	case text != nil:
		if model == "" {
			return "", messages.BadRequest("model", "model is required with text")
		}
		return EmbeddingKey(model, *text), nil
	}
	return "", messages.BadRequest(field, "hash (or text and model) is required")
}

// PackVector stores float32s as 4 little-endian bytes a dimension, checking
// each is finite and fits a float32.
func PackVector(v []float64) ([]byte, error) {
	switch {
	case len(v) == 0:
		return nil, messages.BadRequest("vector", "vector is required")
	case len(v) > MaxVectorDims:
		return nil, messages.BadRequest("vector", "vector has %d dimensions; the limit is %d", len(v), MaxVectorDims)
	}
	out := make([]byte, 4*len(v))
	for i, x := range v {
		f := float32(x)
		if math.IsNaN(x) || math.IsInf(float64(f), 0) {
			return nil, messages.BadRequest("vector", "vector[%d] is not a finite float32", i)
		}
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(f))
	}
	return out, nil
}

// UnpackVector reverses PackVector.
func UnpackVector(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, errors.New("cached vector has a length that is not a multiple of 4")
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// Embedding carries out a cache.embedding request.
func (s *Service) Embedding(ctx context.Context, req *messages.EmbeddingRequest) (any, error) {
	switch req.Op {
	case messages.OpGet:
		key, err := embeddingKey("hash", req.Hash, req.Text, req.Model)
		if err != nil {
			return nil, err
		}
		vals, err := s.b.GetBlobs(ctx, []string{key})
		if err != nil {
			return nil, AsError(err)
		}
		res := messages.EmbeddingGetResult{Hash: key}
		if vals[0] != nil {
			if res.Vector, err = UnpackVector(vals[0]); err != nil {
				return nil, messages.Errorf(messages.CodeInternal, "%v", err)
			}
			res.Hit = true
		}
		return res, nil
	case messages.OpMGet:
		if err := checkHashes(req.Hashes); err != nil {
			return nil, err
		}
		vals, err := s.b.GetBlobs(ctx, req.Hashes)
		if err != nil {
			return nil, AsError(err)
		}
		res := messages.EmbeddingMGetResult{Vectors: make([][]float32, len(vals))}
		for i, v := range vals {
			if v == nil {
				continue
			}
			if res.Vectors[i], err = UnpackVector(v); err != nil {
				return nil, messages.Errorf(messages.CodeInternal, "%v", err)
			}
			res.Hits++
		}
		return res, nil
	case messages.OpSet, messages.OpMSet:
		ttl, err := optionalTTL(req.TTLMS, s.embeddingTTL)
		if err != nil {
			return nil, err
		}
		items := req.Items
		if req.Op == messages.OpSet {
			items = []messages.EmbeddingItem{{Hash: req.Hash, Text: req.Text, Model: req.Model, Vector: req.Vector}}
		} else if len(items) == 0 || len(items) > MaxBatchItems {
			return nil, messages.BadRequest("items", "items must hold 1 to %d vectors", MaxBatchItems)
		}
		blobs := make([]Blob, len(items))
		res := messages.EmbeddingSetResult{Hashes: make([]string, len(items))}
		for i, it := range items {
			if blobs[i].Key, err = embeddingKey("hash", it.Hash, it.Text, it.Model); err != nil {
				return nil, err
			}
			if blobs[i].Value, err = PackVector(it.Vector); err != nil {
				return nil, err
			}
			res.Hashes[i] = blobs[i].Key
		}
		if err := s.b.SetBlobs(ctx, blobs, ttl); err != nil {
			return nil, AsError(err)
		}
		res.Stored = len(blobs)
		return res, nil
	case messages.OpDelete:
		keys := req.Hashes
		if len(keys) == 0 {
			key, err := embeddingKey("hash", req.Hash, req.Text, req.Model)
			if err != nil {
				return nil, err
			}
			keys = []string{key}
		}
		if len(keys) > MaxBatchItems {
			return nil, messages.BadRequest("hashes", "hashes must list at most %d hashes", MaxBatchItems)
		}
		n, err := s.b.DeleteBlobs(ctx, keys)
		if err != nil {
			return nil, AsError(err)
		}
		return messages.DeletedResult{Deleted: n}, nil
	case "":
		return nil, messages.BadRequest("op", "op is required: get, set, mget, mset or delete")
	}
	return nil, messages.BadRequest("op", "unknown op %q: use get, set, mget, mset or delete", req.Op)
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
			return nil, AsError(err)
		}
		return messages.KVGetResult{Found: found, Value: v}, nil
	case messages.OpSet:
		if len(req.Value) == 0 {
			return nil, messages.BadRequest("value", "value is required")
		}
		ttl, err := optionalTTL(req.TTLMS, 0)
		if err != nil {
			return nil, err
		}
		if err := s.b.KVSet(ctx, req.Key, req.Value, ttl); err != nil {
			return nil, AsError(err)
		}
		return messages.KVSetResult{Stored: true}, nil
	case messages.OpDelete:
		ok, err := s.b.KVDelete(ctx, req.Key)
		if err != nil {
			return nil, AsError(err)
		}
		return messages.KVDeleteResult{Deleted: ok}, nil
	case messages.OpIncr:
		amount := int64(1)
		if req.Amount != nil {
			amount = *req.Amount
		}
		v, err := s.b.KVIncr(ctx, req.Key, amount)
		if err != nil {
			return nil, AsError(err)
		}
		return messages.KVIncrResult{Value: v}, nil
	}
	return nil, messages.BadRequest("op", "unknown op %q: use get, set, delete or incr", req.Op)
}
