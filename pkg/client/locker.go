package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrNotAcquired is returned by Lock when the lock stayed held by another owner.
var ErrNotAcquired = errors.New("lock held by another owner")

// Locker is a held lock whose TTL is refreshed in the background until
// Unlock. Lost is closed if a refresh fails or is refused: stop relying on the
// lock then, and use Token to fence writes. It keeps the acquisition's lease,
// which nobody else sees, so only this Locker can refresh or release the lock.
type Locker struct {
	c       *Client
	key     string
	owner   string
	lease   string
	token   int64
	ttl     time.Duration
	lost    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	lostErr error
}

// Lock takes key (waiting up to wait for it) and keeps it refreshed every
// third of ttl until Unlock. owner may be empty: the worker makes one.
func (c *Client) Lock(ctx context.Context, key, owner string, ttl, wait time.Duration) (*Locker, error) {
	res, err := c.AcquireLock(ctx, key, owner, ttl, wait)
	if err != nil {
		return nil, err
	}
	if !res.Acquired {
		return nil, fmt.Errorf("lock %q: %w (holder %s, token %d)", key, ErrNotAcquired, res.Owner, res.Token)
	}
	l := &Locker{c: c, key: key, owner: res.Owner, lease: res.Lease, token: res.Token, ttl: ttl,
		lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go l.refresh()
	return l, nil
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

func (l *Locker) refresh() {
	defer close(l.done)
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
		res, err := l.c.RefreshLock(ctx, l.key, l.lease, l.ttl)
		cancel()
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

// Unlock stops refreshing and releases the lock. It is safe to call twice.
func (l *Locker) Unlock(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		r, rerr := l.c.ReleaseLock(ctx, l.key, l.lease)
		switch {
		case rerr != nil:
			err = rerr
		case !r.Released:
			err = fmt.Errorf("lock %q: release refused: %s", l.key, r.Reason)
		}
	})
	return err
}
