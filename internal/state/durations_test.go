package state_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/memory"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// clocked is a Service over a memory backend whose clock the test moves.
type clocked struct {
	s   *state.Service
	now atomic.Int64 // ns added to the start
}

func newClocked(t *testing.T, cfg state.ServiceConfig) *clocked {
	t.Helper()
	c := &clocked{}
	start := time.Now()
	mem := memory.New(memory.Options{Now: func() time.Time { return start.Add(time.Duration(c.now.Load())) }})
	t.Cleanup(func() { mem.Close() })
	var err error
	c.s, err = state.NewService(mem, cfg)
	require.NoError(t, err)
	return c
}

// at sets the clock to d after the start.
func (c *clocked) at(d time.Duration) { c.now.Store(int64(d)) }

func (c *clocked) kvFound(t *testing.T, key string) bool {
	t.Helper()
	res, err := c.s.KV(context.Background(), &messages.KVRequest{Op: messages.OpGet, Key: key})
	require.NoError(t, err)
	return res.(messages.KVGetResult).Found
}

func (c *clocked) embeddingHit(t *testing.T, hash string) bool {
	t.Helper()
	res, err := c.s.Embedding(context.Background(), &messages.EmbeddingRequest{Op: messages.OpGet, Hash: hash})
	require.NoError(t, err)
	return res.(messages.EmbeddingGetResult).Hit
}

func ms(v int64) *int64       { return &v }
func secs(v float64) *float64 { return &v }

// TestTTLSeconds: state.kv and cache.embedding take ttl_seconds as well as
// ttl_ms (they used to refuse it, though the protocol promised *_seconds);
// a positive TTL never becomes "no expiry", and 0 is "no expiry" either way.
func TestTTLSeconds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	day := 24 * time.Hour
	for _, tc := range []struct {
		name  string
		ms    *int64
		secs  *float64
		lives time.Duration // found just before, gone at; 0: never expires
	}{
		{"ttl_seconds 1.5", nil, secs(1.5), 1500 * time.Millisecond},
		{"ttl_seconds 0.3 is 300ms, not 301", nil, secs(0.3), 300 * time.Millisecond},
		{"ttl_seconds under a millisecond is rounded up to one", nil, secs(0.0004), time.Millisecond},
		{"ttl_seconds a nanosecond is still a millisecond", nil, secs(1e-9), time.Millisecond},
		{"ttl_seconds 1.0001 rounds up", nil, secs(1.0001), 1001 * time.Millisecond},
		{"ttl_seconds 0 never expires", nil, secs(0), 0},
		{"ttl_ms 250", ms(250), nil, 250 * time.Millisecond},
		{"ttl_ms 0 never expires", ms(0), nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newClocked(t, state.ServiceConfig{})
			_, err := c.s.KV(ctx, &messages.KVRequest{Op: messages.OpSet, Key: "k", Value: []byte(`1`), TTLMS: tc.ms, TTLSeconds: tc.secs})
			require.NoError(t, err)
			_, err = c.s.Embedding(ctx, &messages.EmbeddingRequest{Op: messages.OpSet, Hash: "h", Vector: []float64{1}, TTLMS: tc.ms, TTLSeconds: tc.secs})
			require.NoError(t, err)
			_, err = c.s.Embedding(ctx, &messages.EmbeddingRequest{Op: messages.OpMSet, TTLMS: tc.ms, TTLSeconds: tc.secs,
				Items: []messages.EmbeddingItem{{Hash: "m", Vector: []float64{2}}}})
			require.NoError(t, err)
			if tc.lives == 0 {
				c.at(state.MaxTTL * 10)
				require.True(t, c.kvFound(t, "k"), "kv: no expiry")
				require.True(t, c.embeddingHit(t, "h"), "set: no expiry")
				require.True(t, c.embeddingHit(t, "m"), "mset: no expiry")
				return
			}
			c.at(tc.lives - time.Nanosecond)
			require.True(t, c.kvFound(t, "k"), "kv: alive just before its TTL")
			require.True(t, c.embeddingHit(t, "h"), "set: alive just before its TTL")
			require.True(t, c.embeddingHit(t, "m"), "mset: alive just before its TTL")
			c.at(tc.lives)
			require.False(t, c.kvFound(t, "k"), "kv: gone at its TTL")
			require.False(t, c.embeddingHit(t, "h"), "set: gone at its TTL")
			require.False(t, c.embeddingHit(t, "m"), "mset: gone at its TTL")
		})
	}

	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		embTTL := time.Hour
		c := newClocked(t, state.ServiceConfig{EmbeddingTTL: &embTTL})
		_, err := c.s.KV(ctx, &messages.KVRequest{Op: messages.OpSet, Key: "k", Value: []byte(`1`)})
		require.NoError(t, err)
		_, err = c.s.Embedding(ctx, &messages.EmbeddingRequest{Op: messages.OpSet, Hash: "h", Vector: []float64{1}})
		require.NoError(t, err)
		c.at(embTTL - time.Nanosecond)
		require.True(t, c.embeddingHit(t, "h"))
		c.at(embTTL)
		require.False(t, c.embeddingHit(t, "h"), "an embedding without a TTL lives CACHE_EMBEDDING_TTL")
		c.at(1000 * day)
		require.True(t, c.kvFound(t, "k"), "a kv value without a TTL never expires")
	})
}

// TestTTLRefused: a TTL the protocol cannot take is BAD_REQUEST naming it.
func TestTTLRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClocked(t, state.ServiceConfig{})
	for _, tc := range []struct {
		name  string
		ms    *int64
		secs  *float64
		param string
	}{
		{"both", ms(1000), secs(1), "ttl"},
		{"both zero", ms(0), secs(0), "ttl"},
		{"negative ms", ms(-1), nil, "ttl_ms"},
		{"negative seconds", nil, secs(-0.5), "ttl_seconds"},
		{"ms past the cap", ms(state.MaxTTL.Milliseconds() + 1), nil, "ttl_ms"},
		{"seconds past the cap", nil, secs(state.MaxTTL.Seconds() + 1), "ttl_seconds"},
	} {
		for name, call := range map[string]func() error{
			"kv set": func() error {
				_, err := c.s.KV(ctx, &messages.KVRequest{Op: messages.OpSet, Key: "k", Value: []byte(`1`), TTLMS: tc.ms, TTLSeconds: tc.secs})
				return err
			},
			"embedding set": func() error {
				_, err := c.s.Embedding(ctx, &messages.EmbeddingRequest{Op: messages.OpSet, Hash: "h", Vector: []float64{1}, TTLMS: tc.ms, TTLSeconds: tc.secs})
				return err
			},
			"embedding mset": func() error {
				_, err := c.s.Embedding(ctx, &messages.EmbeddingRequest{Op: messages.OpMSet, TTLMS: tc.ms, TTLSeconds: tc.secs,
					Items: []messages.EmbeddingItem{{Hash: "m", Vector: []float64{2}}}})
				return err
			},
		} {
			err := call()
			var me *messages.Error
			require.ErrorAs(t, err, &me, "%s: %s", name, tc.name)
			require.Equal(t, messages.CodeBadRequest, me.Code)
			require.Equal(t, tc.param, me.Param, "%s: %s", name, tc.name)
		}
	}
	require.False(t, c.kvFound(t, "k"), "nothing refused was stored")
	require.False(t, c.embeddingHit(t, "h"))
}

// TestLockTTLSeconds: a lock's ttl_seconds under a millisecond is rounded
// up to one, as every *_seconds is.
func TestLockTTLSeconds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClocked(t, state.ServiceConfig{})
	res, err := c.s.Lock(ctx, &messages.LockRequest{Op: messages.OpAcquire, Key: "l", TTLSeconds: secs(0.0001)})
	require.NoError(t, err)
	require.True(t, res.(messages.LockAcquireResult).Acquired)
	st, err := c.s.Lock(ctx, &messages.LockRequest{Op: messages.OpStatus, Key: "l"})
	require.NoError(t, err)
	require.True(t, st.(messages.LockStatusResult).Held)
	require.EqualValues(t, 1, st.(messages.LockStatusResult).ExpiresInMS)
	c.at(time.Millisecond)
	st, err = c.s.Lock(ctx, &messages.LockRequest{Op: messages.OpStatus, Key: "l"})
	require.NoError(t, err)
	require.False(t, st.(messages.LockStatusResult).Held)
}
