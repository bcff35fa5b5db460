package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jeeves-avionics/dbworker/internal/startstop"
)

// ErrNotAcquired is returned by Lock when the lock stayed held by another owner.
var ErrNotAcquired = errors.New("lock held by another owner")

// Locker is a held lock whose TTL is refreshed in the background until
// Unlock. Lost is closed if a refresh fails or is refused: stop relying on the
// lock then, and use Token to fence writes. It keeps the acquisition's lease,
// which nobody else sees, so only this Locker can refresh or release the lock.
//
// Its refresh loop runs under startstop: Lock starts it once, Unlock stops it
// and waits for it to return, and a second Unlock does nothing.
type Locker struct {
	locks   Locks
	key     string
	owner   string
	lease   string
	token   int64
	ttl     time.Duration
	life    startstop.Base // not embedded: its methods are not the Locker's
	lost    chan struct{}
	lostErr error // set before lost is closed
}

// Lock takes key (waiting for it as WithWait says) and keeps it refreshed
// every third of ttl until Unlock. ttl must be at least 3ms.
func (l Locks) Lock(ctx context.Context, key string, ttl time.Duration, opts ...LockOption) (*Locker, error) {
	if ttl < 3*time.Millisecond {
		return nil, fmt.Errorf("lock %q: ttl must be at least 3ms, got %s", key, ttl)
	}
	res, err := l.Acquire(ctx, key, ttl, opts...)
	if err != nil {
		return nil, err
	}
	if !res.Acquired {
		return nil, fmt.Errorf("lock %q: %w (holder %s, token %d)", key, ErrNotAcquired, res.Owner, res.Token)
	}
	lk := &Locker{locks: l, key: key, owner: res.Owner, lease: res.Lease, token: res.Token, ttl: ttl, lost: make(chan struct{})}
	if _, err := lk.life.StartInit(ctx); err != nil {
		return nil, err // a new Locker always starts
	}
	lk.life.Go(lk.refresh)
	return lk, nil
}

// Owner is the lock's owner (its display name).
func (l *Locker) Owner() string { return l.owner }

// Lease is the secret that releases or refreshes the lock. Keep it private:
// whoever has it can release the lock.
func (l *Locker) Lease() string { return l.lease }

// Token is the fencing token of this acquisition.
func (l *Locker) Token() int64 { return l.token }

// Lost is closed when the lock could not be refreshed.
func (l *Locker) Lost() <-chan struct{} { return l.lost }

// Err says why the lock was lost, once Lost is closed.
func (l *Locker) Err() error {
	select {
	case <-l.lost:
		return l.lostErr
	default:
		return nil
	}
}

// refresh refreshes the lock every third of its TTL until ctx ends (Unlock)
// or a refresh fails.
func (l *Locker) refresh(ctx context.Context) {
	every := l.ttl / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, every)
		res, err := l.locks.Refresh(rctx, l.key, l.lease, l.ttl)
		cancel()
		if ctx.Err() != nil {
			return // Unlock, not a loss
		}
		if err == nil && !res.Refreshed {
			err = fmt.Errorf("lock %q: refresh refused: %s", l.key, res.Reason)
		}
		if err != nil {
			l.lostErr = err
			close(l.lost)
			return
		}
	}
}

// Unlock stops refreshing, waits for the refresh loop to return and releases
// the lock. It is safe to call twice: the second call does nothing.
func (l *Locker) Unlock(ctx context.Context) error {
	if !l.life.StopInit() {
		return nil
	}
	l.life.Cancel()
	if err := l.life.Wait(ctx); err != nil {
		return fmt.Errorf("lock %q: stop refreshing: %w", l.key, err)
	}
	r, err := l.locks.Release(ctx, l.key, l.lease)
	switch {
	case err != nil:
		return err
	case !r.Released:
		return fmt.Errorf("lock %q: release refused: %s", l.key, r.Reason)
	}
	return nil
}
