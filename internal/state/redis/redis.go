// Package redis is the Redis state backend, for a pool of workers. Everything
// of dbworker that touches Redis is here: every multi-step operation is one Lua
// script (in scripts/, each with its KEYS, ARGV and return value documented),
// run through one typed helper, so each is atomic and uses Redis's clock.
//
// The client is go-redis's UniversalClient: a redis:// or rediss:// URL is a
// single server, one with addr= parameters a Redis Cluster, one with
// master_name= a Sentinel setup. Keys that a script touches together share a
// hash tag, so the scripts work on a cluster too.
package redis

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nuid"
	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// KeyPrefixDefault namespaces every key dbworker writes.
const KeyPrefixDefault = "dbw:"

var (
	//go:embed scripts/ratelimit.lua
	rateLimitSrc string
	//go:embed scripts/ratelimit_counter.lua
	rateCounterSrc string
	//go:embed scripts/lock_acquire.lua
	lockAcquireSrc string
	//go:embed scripts/lock_release.lua
	lockReleaseSrc string
	//go:embed scripts/lock_refresh.lua
	lockRefreshSrc string
	//go:embed scripts/lock_status.lua
	lockStatusSrc string

	rateLimitScript   = goredis.NewScript(rateLimitSrc)
	rateCounterScript = goredis.NewScript(rateCounterSrc)
	lockAcquireScript = goredis.NewScript(lockAcquireSrc)
	lockReleaseScript = goredis.NewScript(lockReleaseSrc)
	lockRefreshScript = goredis.NewScript(lockRefreshSrc)
	lockStatusScript  = goredis.NewScript(lockStatusSrc)
)

// SetLogger sends go-redis's own log lines (such as failed dials while Redis is
// down) to l at debug level; the worker reports an unreachable Redis through
// UNAVAILABLE answers and db.health instead of one line per dial. It is
// process-wide, as go-redis's logger is.
func SetLogger(l zerolog.Logger) { goredis.SetLogger(logger{l}) }

type logger struct{ l zerolog.Logger }

func (g logger) Printf(_ context.Context, format string, v ...any) {
	g.l.Debug().Str("component", "go-redis").Msgf(format, v...)
}

func init() { SetLogger(zerolog.Nop()) }

// Backend is the Redis state backend.
type Backend struct {
	c      goredis.UniversalClient
	prefix string
}

// Factory opens a Redis backend; it is registered as "redis".
func Factory(ctx context.Context, o state.Options) (state.Backend, error) {
	c, err := NewClient(o.RedisURL)
	if err != nil {
		return nil, err
	}
	b := New(c, o.KeyPrefix)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("ping redis: %w", err)
	}
	return b, nil
}

// NewClient makes a client from a URL: redis:// or rediss:// for one server,
// with addr= parameters for a cluster, with master_name= for Sentinel.
func NewClient(rawURL string) (goredis.UniversalClient, error) {
	if rawURL == "" {
		return nil, errors.New("REDIS_URL is required for the redis state backend")
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return nil, errors.New("REDIS_URL must be a redis:// or rediss:// URL")
	}
	q := u.Query()
	// Fail fast while Redis is down: go-redis's defaults (3 retries of 5
	// dials each) hold a caller for about two seconds before it learns the
	// state backend is unavailable. A max_retries parameter still wins.
	maxRetries := 1
	if q.Has("max_retries") {
		maxRetries = 0 // keep the URL's
	}
	switch {
	case q.Has("master_name"):
		o, err := goredis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL (sentinel): %v", redactErr(err))
		}
		if maxRetries > 0 {
			o.MaxRetries = maxRetries
		}
		o.DialerRetries = dialerRetries
		return goredis.NewFailoverClient(o), nil
	case q.Has("addr"):
		o, err := goredis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL (cluster): %v", redactErr(err))
		}
		if maxRetries > 0 {
			o.MaxRetries = maxRetries
		}
		o.DialerRetries = dialerRetries
		return goredis.NewClusterClient(o), nil
	}
	o, err := goredis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %v", redactErr(err))
	}
	if maxRetries > 0 {
		o.MaxRetries = maxRetries
	}
	o.DialerRetries = dialerRetries
	return goredis.NewClient(o), nil
}

// dialerRetries is how often a connection is dialled before a command fails.
const dialerRetries = 2

// redactErr keeps URL parse errors from echoing a password.
func redactErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// New wraps a client; prefix namespaces the keys ("dbw:" when empty).
func New(c goredis.UniversalClient, prefix string) *Backend {
	if prefix == "" {
		prefix = KeyPrefixDefault
	}
	return &Backend{c: c, prefix: prefix}
}

// Name implements state.Backend.
func (b *Backend) Name() string { return state.BackendRedis }

// Close closes the client.
func (b *Backend) Close() error { return b.c.Close() }

// Client returns the underlying client.
func (b *Backend) Client() goredis.UniversalClient { return b.c }

// Keys. A script's keys share a hash tag: {<key>}.

// rateKeys are a rate-limit key's: rl:{key}:<window µs>:<limit>, the window
// and limit being part of its identity, and for the exact log the running sum
// beside it.
func (b *Backend) rateKeys(key string, window time.Duration, limit int64) []string {
	k := b.prefix + "rl:{" + key + "}:" + strconv.FormatInt(window.Microseconds(), 10) + ":" + strconv.FormatInt(limit, 10)
	return []string{k, k + ":sum"}
}

// lockKeys are a lock's hash and fencing counter: lock:{name} for callers'
// locks, ilock:{name} for internal ones, so no caller name reaches an
// internal lock.
func (b *Backend) lockKeys(key state.LockKey) []string {
	kind := "lock:{"
	if key.Internal() {
		kind = "ilock:{"
	}
	k := b.prefix + kind + key.Name() + "}"
	return []string{k, k + ":fence"}
}

func (b *Backend) blobKey(key string) string { return b.prefix + "emb:" + key }
func (b *Backend) kvKey(key string) string   { return b.prefix + "kv:" + key }

// run is the one typed way a script runs: EVALSHA, then EVAL when Redis does
// not have the script yet; errors come back classified.
func run(ctx context.Context, c goredis.Scripter, s *goredis.Script, keys []string, args ...any) ([]any, error) {
	v, err := s.Run(ctx, c, keys, args...).Result()
	if err != nil {
		return nil, classify(err)
	}
	switch r := v.(type) {
	case []any:
		return r, nil
	case int64:
		return []any{r}, nil
	}
	return nil, fmt.Errorf("unexpected script reply %T", v)
}

// classify marks connection failures as state.ErrUnavailable.
func classify(err error) error {
	if err == nil || errors.Is(err, goredis.Nil) {
		return err
	}
	var re goredis.Error
	if errors.As(err, &re) && !isReadonlyOrLoading(re.Error()) {
		return err // a reply from Redis: it is up
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %w", state.ErrUnavailable, err)
}

func isReadonlyOrLoading(msg string) bool {
	return strings.HasPrefix(msg, "LOADING") || strings.HasPrefix(msg, "READONLY") ||
		strings.HasPrefix(msg, "MASTERDOWN") || strings.HasPrefix(msg, "CLUSTERDOWN") || strings.HasPrefix(msg, "TRYAGAIN")
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case string:
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	}
	return 0
}

// RateLimit implements state.Backend with scripts/ratelimit.lua (an exact
// log) up to state.ExactLimitMax and scripts/ratelimit_counter.lua above it.
func (b *Backend) RateLimit(ctx context.Context, key string, limit, cost int64, window time.Duration) (messages.RateLimitResult, error) {
	keys := b.rateKeys(key, window, limit)
	var r []any
	var err error
	if limit > state.ExactLimitMax {
		r, err = run(ctx, b.c, rateCounterScript, keys[:1], limit, window.Microseconds(), cost)
	} else {
		r, err = run(ctx, b.c, rateLimitScript, keys, limit, window.Microseconds(), cost, nuid.Next())
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

func expiresAt(nowMS, ttlMS int64) *time.Time {
	t := time.UnixMilli(nowMS + ttlMS).UTC()
	return &t
}

// AcquireLock implements state.Backend with scripts/lock_acquire.lua.
func (b *Backend) AcquireLock(ctx context.Context, key state.LockKey, owner string, ttl time.Duration) (messages.LockAcquireResult, error) {
	lease := state.NewLease()
	r, err := run(ctx, b.c, lockAcquireScript, b.lockKeys(key), owner, lease, ttl.Milliseconds())
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
	r, err := run(ctx, b.c, lockReleaseScript, b.lockKeys(key)[:1], lease)
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
	r, err := run(ctx, b.c, lockRefreshScript, b.lockKeys(key)[:1], lease, ttl.Milliseconds())
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
	r, err := run(ctx, b.c, lockStatusScript, b.lockKeys(key)[:1])
	if err != nil {
		return messages.LockStatusResult{}, fmt.Errorf("lock status %q: %w", key, err)
	}
	if len(r) < 3 {
		return messages.LockStatusResult{}, nil
	}
	owner, _ := r[0].(string)
	return messages.LockStatusResult{Held: true, Owner: owner, Token: toInt(r[1]), ExpiresInMS: max(toInt(r[2]), 1)}, nil
}

// GetBlobs implements state.Backend: one pipeline of GETs, so keys may live
// on different cluster nodes and a single server still sees one round trip.
func (b *Backend) GetBlobs(ctx context.Context, keys []string) ([][]byte, error) {
	cmds := make([]*goredis.StringCmd, len(keys))
	_, err := b.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, b.blobKey(k))
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("get %d vectors: %w", len(keys), classify(err))
	}
	out := make([][]byte, len(keys))
	for i, c := range cmds {
		v, err := c.Bytes()
		if errors.Is(err, goredis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get vector: %w", classify(err))
		}
		out[i] = v
	}
	return out, nil
}

// BlobSizes implements state.Backend: one pipeline of STRLENs.
func (b *Backend) BlobSizes(ctx context.Context, keys []string) ([]int64, error) {
	cmds := make([]*goredis.IntCmd, len(keys))
	_, err := b.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.StrLen(ctx, b.blobKey(k))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("size %d vectors: %w", len(keys), classify(err))
	}
	out := make([]int64, len(keys))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}

// SetBlobs implements state.Backend in one pipeline.
func (b *Backend) SetBlobs(ctx context.Context, blobs []state.Blob, ttl time.Duration) error {
	_, err := b.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, bl := range blobs {
			p.Set(ctx, b.blobKey(bl.Key), bl.Value, ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set %d vectors: %w", len(blobs), classify(err))
	}
	return nil
}

// DeleteBlobs implements state.Backend in one pipeline.
func (b *Backend) DeleteBlobs(ctx context.Context, keys []string) (int64, error) {
	cmds := make([]*goredis.IntCmd, len(keys))
	_, err := b.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Del(ctx, b.blobKey(k))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete %d vectors: %w", len(keys), classify(err))
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// KVGet implements state.Backend.
func (b *Backend) KVGet(ctx context.Context, key string) ([]byte, bool, error) {
	v, err := b.c.Get(ctx, b.kvKey(key)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("kv get %q: %w", key, classify(err))
	}
	return v, true, nil
}

// KVSet implements state.Backend.
func (b *Backend) KVSet(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := b.c.Set(ctx, b.kvKey(key), value, ttl).Err(); err != nil {
		return fmt.Errorf("kv set %q: %w", key, classify(err))
	}
	return nil
}

// KVDelete implements state.Backend.
func (b *Backend) KVDelete(ctx context.Context, key string) (bool, error) {
	n, err := b.c.Del(ctx, b.kvKey(key)).Result()
	if err != nil {
		return false, fmt.Errorf("kv delete %q: %w", key, classify(err))
	}
	return n == 1, nil
}

// KVIncr implements state.Backend with INCRBY, which keeps the key's TTL.
func (b *Backend) KVIncr(ctx context.Context, key string, amount int64) (int64, error) {
	n, err := b.c.IncrBy(ctx, b.kvKey(key), amount).Result()
	if err != nil {
		var re goredis.Error
		if errors.As(err, &re) && strings.Contains(re.Error(), "not an integer") || strings.Contains(err.Error(), "overflow") {
			return 0, state.ErrNotInteger
		}
		return 0, fmt.Errorf("kv incr %q: %w", key, classify(err))
	}
	return n, nil
}

// Health implements state.Backend with PING and INFO stats.
func (b *Backend) Health(ctx context.Context) messages.StateHealth {
	h := messages.StateHealth{Backend: state.BackendRedis, Status: messages.HealthUnhealthy}
	info, err := b.c.Info(ctx, "stats").Result()
	if err != nil {
		return h
	}
	h.Status = messages.HealthHealthy
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "total_commands_processed":
			h.TotalCommandsProcessed = &n
		case "total_connections_received":
			h.TotalConnectionsReceived = &n
		case "keyspace_hits":
			h.KeyspaceHits = &n
		case "keyspace_misses":
			h.KeyspaceMisses = &n
		}
	}
	return h
}

// DeletePrefix deletes every key that starts with prefix, scanning in
// batches. Tests and tools use it to clean up their namespace; on a Redis
// Cluster it covers the node the client's SCAN reaches.
func DeletePrefix(ctx context.Context, c goredis.UniversalClient, prefix string) error {
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := c.Del(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return c.Del(ctx, batch...).Err()
	}
	return nil
}
