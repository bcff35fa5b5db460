package state

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nuid"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

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
			return res, err
		}
		ttl, err := duration("ttl", req.TTLMS, req.TTLSeconds, s.lockTTL, MaxTTL, false)
		if err != nil {
			return nil, err
		}
		res, err := s.b.RefreshLock(ctx, key, req.Lease, ttl)
		return res, err
	case messages.OpStatus:
		res, err := s.b.LockStatus(ctx, key)
		return res, err
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
			return res, err
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
