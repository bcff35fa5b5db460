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
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// KeyPrefixDefault namespaces every key dbworker writes.
const KeyPrefixDefault = "dbw:"

// Backend is the Redis state backend.
type Backend struct {
	c       goredis.UniversalClient
	prefix  string
	scripts scriptRunner // batch.go
}

// Factory opens a Redis backend; it is registered as "redis".
func Factory(ctx context.Context, o state.Options) (state.Backend, error) {
	c, err := NewClient(o.RedisURL)
	if err != nil {
		return nil, err
	}
	var opts []Option
	if o.RedisPipelines != nil {
		opts = append(opts, WithPipelines(*o.RedisPipelines))
	}
	b := New(c, o.KeyPrefix, opts...)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("ping redis: %w", err)
	}
	return b, nil
}

// New wraps a client; prefix namespaces the keys ("dbw:" when empty).
// Script calls (rate limits, locks) share pipelines, PipelinesDefault at
// most in flight (batch.go), unless an option says otherwise.
func New(c goredis.UniversalClient, prefix string, opts ...Option) *Backend {
	if prefix == "" {
		prefix = KeyPrefixDefault
	}
	b := &Backend{c: c, prefix: prefix}
	b.scripts = newBatcher(c, PipelinesDefault, BatchMax)
	for _, o := range opts {
		o(b)
	}
	return b
}

// Option tunes a Backend.
type Option func(*Backend)

// Script pipelining defaults: pipelines in flight at once, and calls in one.
const (
	PipelinesDefault = 4
	BatchMax         = 128
)

// WithPipelines sets how many pipelines of script calls may be in flight at
// once; n <= 0 sends every call on its own round trip, with no batching.
func WithPipelines(n int) Option {
	return func(b *Backend) {
		if n <= 0 {
			b.scripts = direct{b.c}
			return
		}
		b.scripts = newBatcher(b.c, n, BatchMax)
	}
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
