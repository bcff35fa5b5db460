package memory

import (
	"context"
	"crypto/subtle"
	"time"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// lock is a held lock: its holder, secret lease, fencing token and expiry.
type lock struct {
	owner   string
	lease   string
	token   int64
	expires time.Time
}

// holds reports whether lease is the lock's, in constant time.
func (l *lock) holds(lease string) bool {
	return subtle.ConstantTimeCompare([]byte(l.lease), []byte(lease)) == 1
}

func (b *Backend) liveLock(key state.LockKey, now time.Time) *lock {
	l := b.locks[key]
	if l != nil && !now.Before(l.expires) {
		delete(b.locks, key)
		return nil
	}
	return l
}

// AcquireLock implements state.Backend.
func (b *Backend) AcquireLock(_ context.Context, key state.LockKey, owner string, ttl time.Duration) (messages.LockAcquireResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if l := b.liveLock(key, now); l != nil {
		return messages.LockAcquireResult{Owner: l.owner, Token: l.token, ExpiresInMS: remainingMS(l.expires, now)}, nil
	}
	b.fence = state.NextToken(b.fence, now.UnixMicro())
	l := &lock{owner: owner, lease: state.NewLease(), token: b.fence, expires: now.Add(ttl)}
	b.locks[key] = l
	at := l.expires.UTC().Truncate(time.Millisecond)
	return messages.LockAcquireResult{Acquired: true, Owner: owner, Lease: l.lease, Token: l.token, ExpiresAt: &at}, nil
}

// ReleaseLock implements state.Backend.
func (b *Backend) ReleaseLock(_ context.Context, key state.LockKey, lease string) (messages.LockReleaseResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.liveLock(key, b.now())
	switch {
	case l == nil:
		return messages.LockReleaseResult{Reason: messages.ReasonNotHeld}, nil
	case !l.holds(lease):
		return messages.LockReleaseResult{Reason: messages.ReasonNotOwner}, nil
	}
	delete(b.locks, key)
	return messages.LockReleaseResult{Released: true}, nil
}

// RefreshLock implements state.Backend.
func (b *Backend) RefreshLock(_ context.Context, key state.LockKey, lease string, ttl time.Duration) (messages.LockRefreshResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	l := b.liveLock(key, now)
	switch {
	case l == nil:
		return messages.LockRefreshResult{Reason: messages.ReasonNotHeld}, nil
	case !l.holds(lease):
		return messages.LockRefreshResult{Reason: messages.ReasonNotOwner}, nil
	}
	l.expires = now.Add(ttl)
	at := l.expires.UTC().Truncate(time.Millisecond)
	return messages.LockRefreshResult{Refreshed: true, ExpiresAt: &at}, nil
}

// LockStatus implements state.Backend.
func (b *Backend) LockStatus(_ context.Context, key state.LockKey) (messages.LockStatusResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	l := b.liveLock(key, now)
	if l == nil {
		return messages.LockStatusResult{}, nil
	}
	return messages.LockStatusResult{Held: true, Owner: l.owner, Token: l.token, ExpiresInMS: remainingMS(l.expires, now)}, nil
}

// remainingMS is the time left until t in whole milliseconds, rounded up as
// Redis's PTTL would not undershoot a live key (at least 1).
func remainingMS(t, now time.Time) int64 {
	return max(state.MillisCeil(t.Sub(now).Microseconds()), 1)
}
