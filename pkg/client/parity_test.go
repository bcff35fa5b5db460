package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/named"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/pkg/client"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// TestTTLs: WithTTL(0) is "never expire" for KV values and embeddings alike;
// without WithTTL a KV value never expires and an embedding lives the
// worker's CACHE_EMBEDDING_TTL; a TTL under a millisecond is refused, never
// sent as 0 (which would mean "never").
func TestTTLs(t *testing.T) {
	ctx := context.Background()
	o := startOwnWorker(t, nil)
	kv, emb := o.c.KV(), o.c.Embeddings()

	require.NoError(t, kv.Set(ctx, "never", 1, client.WithTTL(0)))
	require.NoError(t, kv.Set(ctx, "default", 1))
	require.NoError(t, kv.Set(ctx, "hour", 1, client.WithTTL(time.Hour)))
	require.NoError(t, kv.Set(ctx, "milli", 1, client.WithTTL(time.Millisecond)))
	_, err := emb.Set(ctx, client.ByHash("never"), []float32{1}, client.WithTTL(0))
	require.NoError(t, err)
	_, err = emb.Set(ctx, client.ByHash("default"), []float32{1})
	require.NoError(t, err)
	_, err = emb.MSet(ctx, []client.Embedding{{Key: client.ByHash("mnever"), Vector: []float32{1}}}, client.WithTTL(0))
	require.NoError(t, err)
	_, err = emb.MSet(ctx, []client.Embedding{{Key: client.ByHash("mhour"), Vector: []float32{1}}}, client.WithTTL(time.Hour))
	require.NoError(t, err)

	for _, d := range []time.Duration{500 * time.Microsecond, time.Nanosecond} {
		require.Error(t, kv.Set(ctx, "sub", 1, client.WithTTL(d)))
		_, err = emb.Set(ctx, client.ByHash("sub"), []float32{1}, client.WithTTL(d))
		require.Error(t, err)
		_, err = emb.MSet(ctx, []client.Embedding{{Key: client.ByHash("sub"), Vector: []float32{1}}}, client.WithTTL(d))
		require.Error(t, err)
	}

	kvThere := func(key string) bool {
		t.Helper()
		var v int
		err := kv.Get(ctx, key, &v)
		if err != nil {
			require.ErrorIs(t, err, client.ErrKeyNotFound)
		}
		return err == nil
	}
	embThere := func(hash string) bool {
		t.Helper()
		_, err := emb.Get(ctx, client.ByHash(hash))
		if err != nil {
			require.ErrorIs(t, err, client.ErrKeyNotFound)
		}
		return err == nil
	}
	require.False(t, kvThere("sub"), "a refused set sends nothing")
	require.False(t, embThere("sub"))

	o.advance(time.Hour)
	require.False(t, kvThere("hour"))
	require.False(t, kvThere("milli"))
	require.False(t, embThere("mhour"))
	require.True(t, embThere("default"), "an embedding lives CACHE_EMBEDDING_TTL (24h) by default")

	o.advance(state.EmbeddingTTLDefault)
	require.False(t, embThere("default"))

	o.advance(1000 * 24 * time.Hour)
	require.True(t, kvThere("never"), "KV WithTTL(0) never expires")
	require.True(t, kvThere("default"), "a KV value without WithTTL never expires")
	require.True(t, embThere("never"), "embedding WithTTL(0) never expires")
	require.True(t, embThere("mnever"), "MSet WithTTL(0) never expires")
}

// TestNamed runs named queries, the only SQL a worker with
// DB_ALLOW_ADHOC=false takes.
func TestNamed(t *testing.T) {
	ctx := context.Background()
	c := startOwnWorker(t, map[string]named.Query{
		"twice":  {SQL: "SELECT :n::int * 2 AS twice", Op: messages.OpOne},
		"series": {SQL: "SELECT generate_series(1, :n::int) AS n", ReadOnly: true},
	}).c
	twice, err := client.CollectOneRow[int](c.Named(ctx, "twice", client.NamedArgs{"n": 21}))
	require.NoError(t, err)
	require.Equal(t, 42, twice)
	ns, err := client.CollectRows[int](c.Named(ctx, "series", client.NamedArgs{"n": 3}))
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 3}, ns)
	res, err := c.Named(ctx, "series", client.NamedArgs{"n": 5}, client.WithMaxRows(2))
	require.NoError(t, err)
	require.True(t, res.Truncated, "the common options apply")
	_, err = c.Named(ctx, "nope", nil)
	var e *client.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, messages.CodeNotFound, e.Code)
	_, err = c.Named(ctx, "twice", client.Args{make(chan int)})
	require.Error(t, err, "unencodable args fail before sending")
}

// TestEmbeddingsMDelete deletes several vectors by hash in one request.
func TestEmbeddingsMDelete(t *testing.T) {
	ctx := context.Background()
	e := newClient(t).Embeddings()
	_, err := e.MSet(ctx, []client.Embedding{{Key: client.ByHash("md1"), Vector: []float32{1}}, {Key: client.ByHash("md2"), Vector: []float32{2}}})
	require.NoError(t, err)
	n, err := e.MDelete(ctx, []string{"md1", "md2", "md3"})
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "two of the three existed")
	vs, err := e.MGet(ctx, []string{"md1", "md2"})
	require.NoError(t, err)
	require.Equal(t, [][]float32{nil, nil}, vs)
	n, err = e.MDelete(ctx, []string{"md1"})
	require.NoError(t, err)
	require.Zero(t, n)
	_, err = e.MDelete(ctx, nil)
	var ce *client.Error
	require.ErrorAs(t, err, &ce, "no hashes")
	require.Equal(t, messages.CodeBadRequest, ce.Code)
}
