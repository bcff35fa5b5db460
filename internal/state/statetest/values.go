package statetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/state"
)

// The seed's cases: cache hit, miss and expiry; mget in request order.
func cache(t *testing.T, b state.Backend) {
	require.NoError(t, b.SetBlobs(ctx, []state.Blob{{Key: "h1", Value: []byte{1, 2, 3, 4}}, {Key: "h2", Value: []byte{5, 6, 7, 8}}}, 0))
	got, err := b.GetBlobs(ctx, []string{"h2", "missing", "h1"})
	require.NoError(t, err)
	require.Equal(t, [][]byte{{5, 6, 7, 8}, nil, {1, 2, 3, 4}}, got)

	require.NoError(t, b.SetBlobs(ctx, []state.Blob{{Key: "short", Value: []byte{9, 9, 9, 9}}}, 150*time.Millisecond))
	got, err = b.GetBlobs(ctx, []string{"short"})
	require.NoError(t, err)
	require.NotNil(t, got[0])
	require.Eventually(t, func() bool {
		got, err := b.GetBlobs(ctx, []string{"short"})
		return err == nil && got[0] == nil
	}, 3*time.Second, 10*time.Millisecond)

	n, err := b.DeleteBlobs(ctx, []string{"h1", "missing"})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	got, err = b.GetBlobs(ctx, []string{"h1"})
	require.NoError(t, err)
	require.Nil(t, got[0])
}

func kv(t *testing.T, b state.Backend) {
	_, found, err := b.KVGet(ctx, "k")
	require.NoError(t, err)
	require.False(t, found)
	require.NoError(t, b.KVSet(ctx, "k", []byte(`{"a":[1,2],"b":"x"}`), 0))
	v, found, err := b.KVGet(ctx, "k")
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, `{"a":[1,2],"b":"x"}`, string(v))

	n, err := b.KVIncr(ctx, "n", 1)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	n, err = b.KVIncr(ctx, "n", -6)
	require.NoError(t, err)
	require.EqualValues(t, -5, n)
	v, _, err = b.KVGet(ctx, "n")
	require.NoError(t, err)
	require.Equal(t, "-5", string(v))
	_, err = b.KVIncr(ctx, "k", 1)
	require.ErrorIs(t, err, state.ErrNotInteger)
	require.NoError(t, b.KVSet(ctx, "big", []byte("9223372036854775807"), 0))
	_, err = b.KVIncr(ctx, "big", 1)
	require.ErrorIs(t, err, state.ErrNotInteger, "overflow is refused")

	ok, err := b.KVDelete(ctx, "k")
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = b.KVDelete(ctx, "k")
	require.NoError(t, err)
	require.False(t, ok)

	require.NoError(t, b.KVSet(ctx, "ttl", []byte(`"soon gone"`), 150*time.Millisecond))
	_, err = b.KVIncr(ctx, "ttl", 1)
	require.ErrorIs(t, err, state.ErrNotInteger)
	require.Eventually(t, func() bool {
		_, found, err := b.KVGet(ctx, "ttl")
		return err == nil && !found
	}, 3*time.Second, 10*time.Millisecond)
}
