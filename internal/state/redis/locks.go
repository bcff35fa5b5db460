package redis

import (
	"context"
	"fmt"
	"time"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// expiresAt is when a lock taken or refreshed at Redis's nowMS expires.
func expiresAt(nowMS, ttlMS int64) *time.Time {
	t := time.UnixMilli(nowMS + ttlMS).UTC()
	return &t
}

// AcquireLock implements state.Backend with scripts/lock_acquire.lua.
func (b *Backend) AcquireLock(ctx context.Context, key state.LockKey, owner string, ttl time.Duration) (messages.LockAcquireResult, error) {
	lease := state.NewLease()
	r, err := run(ctx, b.scripts, lockAcquireScript, b.lockKeys(key), owner, lease, ttl.Milliseconds())
	if err != nil {
		return messages.LockAcquireResult{}, fmt.Errorf("acquire lock %q: %w", key, err)
	}
	if toInt(r[0]) == 1 && len(r) == 3 {
		return messages.LockAcquireResult{Acquired: true, Owner: owner, Lease: lease, Token: toInt(r[1]), ExpiresAt: expiresAt(toInt(r[2]), ttl.Milliseconds())}, nil
	}
	if len(r) != 4 {
		return messages.LockAcquireResult{}, fmt.Errorf("acquire lock %q: reply of %d values", key, len(r))
	}
	holder, _ := r[1].(string)
	return messages.LockAcquireResult{Owner: holder, Token: toInt(r[2]), ExpiresInMS: max(toInt(r[3]), 1)}, nil
}

func reason(code int64) string {
	if code == -1 {
		return messages.ReasonNotOwner
	}
	return messages.ReasonNotHeld
}

// ReleaseLock implements state.Backend with scripts/lock_release.lua.
func (b *Backend) ReleaseLock(ctx context.Context, key state.LockKey, lease string) (messages.LockReleaseResult, error) {
	r, err := run(ctx, b.scripts, lockReleaseScript, b.lockKeys(key)[:1], lease)
	if err != nil {
		return messages.LockReleaseResult{}, fmt.Errorf("release lock %q: %w", key, err)
	}
	if code := toInt(r[0]); code != 1 {
		return messages.LockReleaseResult{Reason: reason(code)}, nil
	}
	return messages.LockReleaseResult{Released: true}, nil
}

// RefreshLock implements state.Backend with scripts/lock_refresh.lua.
func (b *Backend) RefreshLock(ctx context.Context, key state.LockKey, lease string, ttl time.Duration) (messages.LockRefreshResult, error) {
	r, err := run(ctx, b.scripts, lockRefreshScript, b.lockKeys(key)[:1], lease, ttl.Milliseconds())
	if err != nil {
		return messages.LockRefreshResult{}, fmt.Errorf("refresh lock %q: %w", key, err)
	}
	if code := toInt(r[0]); code != 1 {
		return messages.LockRefreshResult{Reason: reason(code)}, nil
	}
	return messages.LockRefreshResult{Refreshed: true, ExpiresAt: expiresAt(toInt(r[1]), ttl.Milliseconds())}, nil
}

// LockStatus implements state.Backend with scripts/lock_status.lua.
func (b *Backend) LockStatus(ctx context.Context, key state.LockKey) (messages.LockStatusResult, error) {
	r, err := run(ctx, b.scripts, lockStatusScript, b.lockKeys(key)[:1])
	if err != nil {
		return messages.LockStatusResult{}, fmt.Errorf("lock status %q: %w", key, err)
	}
	if len(r) < 3 {
		return messages.LockStatusResult{}, nil
	}
	owner, _ := r[0].(string)
	return messages.LockStatusResult{Held: true, Owner: owner, Token: toInt(r[1]), ExpiresInMS: max(toInt(r[2]), 1)}, nil
}
