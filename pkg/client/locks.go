package client

import (
	"context"
	"time"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// LockOption tunes a lock's Acquire or Lock.
type LockOption interface {
	applyLock(*messages.LockRequest) error
}

type lockOption func(*messages.LockRequest) error

func (f lockOption) applyLock(r *messages.LockRequest) error { return f(r) }

// WithOwner names the lock's owner, a display name that Status and a
// refused acquire show; without it the worker makes a random one, returned
// in the answer. The owner's name does not release or refresh a lock: the
// lease does.
func WithOwner(owner string) LockOption {
	return lockOption(func(r *messages.LockRequest) error {
		r.Owner = owner
		return nil
	})
}

// WithWait makes an acquire of a held lock retry for up to d (wait_ms,
// capped by the worker's STATE_LOCK_MAX_WAIT) instead of answering at once.
func WithWait(d time.Duration) LockOption {
	return lockOption(func(r *messages.LockRequest) error {
		if err := checkDuration("WithWait", d); err != nil {
			return err
		}
		if d > 0 {
			r.WaitMS = ms(d)
		}
		return nil
	})
}

// Locks is the handle of state.lock. Get it from Client.Locks.
type Locks struct{ c *Client }

func (l Locks) do(ctx context.Context, req messages.LockRequest, resp any) error {
	return l.c.do(ctx, subjects.StateLock, req, resp)
}

// Acquire tries to take key for ttl (0: the worker's STATE_LOCK_TTL, 30s by
// default). When taken, the answer's Lease is the secret that Release and
// Refresh need. A lock already held is a normal answer (Acquired false)
// naming the holder's owner and fencing token.
func (l Locks) Acquire(ctx context.Context, key string, ttl time.Duration, opts ...LockOption) (*messages.LockAcquireResult, error) {
	if err := checkDuration("lock ttl", ttl); err != nil {
		return nil, err
	}
	req := messages.LockRequest{Op: messages.OpAcquire, Key: key}
	if ttl > 0 {
		req.TTLMS = ms(ttl)
	}
	for _, o := range opts {
		if err := o.applyLock(&req); err != nil {
			return nil, err
		}
	}
	var res messages.LockAcquireResult
	if err := l.do(ctx, req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Release frees key if lease (from Acquire's answer) is the holder's.
func (l Locks) Release(ctx context.Context, key, lease string) (*messages.LockReleaseResult, error) {
	var res messages.LockReleaseResult
	if err := l.do(ctx, messages.LockRequest{Op: messages.OpRelease, Key: key, Lease: lease}, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Refresh gives the lock on key a new ttl (0: the worker's STATE_LOCK_TTL)
// if lease is the holder's.
func (l Locks) Refresh(ctx context.Context, key, lease string, ttl time.Duration) (*messages.LockRefreshResult, error) {
	if err := checkDuration("lock ttl", ttl); err != nil {
		return nil, err
	}
	req := messages.LockRequest{Op: messages.OpRefresh, Key: key, Lease: lease}
	if ttl > 0 {
		req.TTLMS = ms(ttl)
	}
	var res messages.LockRefreshResult
	if err := l.do(ctx, req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Status describes key's holder.
func (l Locks) Status(ctx context.Context, key string) (*messages.LockStatusResult, error) {
	var res messages.LockStatusResult
	if err := l.do(ctx, messages.LockRequest{Op: messages.OpStatus, Key: key}, &res); err != nil {
		return nil, err
	}
	return &res, nil
}
