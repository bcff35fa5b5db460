package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// TestLockWaitersDoNotFillStateLane: with a lock held and enough waiting
// acquires (wait_ms) to fill the state lane and its queue, state.kv,
// state.ratelimit and cache.embedding still answer at once. Only
// MaxWaitersDefault acquires wait; the others answer at once, not acquired,
// with wait_refused (red-team finding 3: 320 waiting acquires shut every
// service out of state.* and cache.* for 30 s).
func TestLockWaitersDoNotFillStateLane(t *testing.T) {
	t.Parallel()
	for name, opt := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const lane, queue = 24, 8
			b := setup(t, opt, func(o *options) { o.stateLane = lane; o.maxQueued = queue })
			require.Equal(t, true, b.ok(`{"op":"acquire","key":"hog","ttl_ms":60000,"owner":"hog"}`, subjects.StateLock)["acquired"])
			b.ok(`{"op":"set","key":"k","value":1}`, subjects.StateKV)
			b.ok(`{"op":"set","hash":"h","vector":[1,2]}`, subjects.CacheEmbedding)

			const n = lane + queue
			inbox := b.nc.NewRespInbox()
			replies, err := b.nc.SubscribeSync(inbox + ".*")
			require.NoError(t, err)
			for i := 0; i < n; i++ {
				require.NoError(t, b.nc.PublishRequest(b.sub.Of(subjects.StateLock), fmt.Sprintf("%s.%d", inbox, i),
					[]byte(`{"op":"acquire","key":"hog","wait_ms":2000,"owner":"waiter"}`)))
			}
			require.NoError(t, b.nc.Flush())
			// The refused waiters answer at once; wait for them, so the others
			// are known to be waiting.
			refused := 0
			for refused < n-state.MaxWaitersDefault {
				msg, err := replies.NextMsg(time.Second)
				require.NoError(t, err, "%d acquires answered at once; want %d", refused, n-state.MaxWaitersDefault)
				require.Empty(t, msg.Header.Get("Nats-Service-Error-Code"), "%s", msg.Data)
				var res messages.LockAcquireResult
				require.NoError(t, json.Unmarshal(msg.Data, &res))
				require.False(t, res.Acquired)
				require.Equal(t, "hog", res.Owner, "a refused waiter names the holder")
				require.True(t, res.WaitRefused, "%s", msg.Data)
				refused++
			}

			for _, tc := range []struct{ subject, body string }{
				{subjects.StateKV, `{"op":"get","key":"k"}`},
				{subjects.StateRateLimit, `{"key":"r","limit":5,"window_ms":60000}`},
				{subjects.CacheEmbedding, `{"op":"get","hash":"h"}`},
				{subjects.StateLock, `{"op":"status","key":"hog"}`},
			} {
				a, took := b.timed(tc.subject, tc.body)
				require.Empty(t, a.status, "%s %s: %s", tc.subject, tc.body, a.body)
				require.Less(t, took, 500*time.Millisecond, "%s waited behind lock waiters", tc.subject)
			}
			h := b.request(subjects.DBHealth, nil)
			var health messages.HealthResult
			require.NoError(t, json.Unmarshal(h.body, &health))
			require.Equal(t, state.MaxWaitersDefault, health.Worker.Lanes["state"].Running, "only the waiters hold state slots")

			for i := 0; i < state.MaxWaitersDefault; i++ { // the waiters give up after wait_ms
				msg, err := replies.NextMsg(5 * time.Second)
				require.NoError(t, err)
				var res messages.LockAcquireResult
				require.NoError(t, json.Unmarshal(msg.Data, &res))
				require.False(t, res.Acquired)
				require.False(t, res.WaitRefused, "%s", msg.Data)
			}
		})
	}
}

// TestEmbeddingMGetMemory: an mget of 1000 cached vectors of 16,000
// dimensions, whose answer could never fit, is TOO_LARGE at once and the
// worker's peak RSS hardly moves (red-team finding 4: 45 MB → 266 MB for one
// request, 4 s). An mget that fits still answers the vectors exactly. Not
// parallel: it reads the process's peak RSS.
func TestEmbeddingMGetMemory(t *testing.T) {
	b := setup(t, func(o *options) { o.state = redisState })
	const n, dims = 1000, state.MaxVectorDims
	hashes := make([]string, n)
	vec := make([]float64, dims)
	for i := range vec {
		vec[i] = float64(i%997) / 7 // about 9 characters of JSON a dimension
	}
	packed, err := state.PackVector(vec)
	require.NoError(t, err)
	for i := range hashes {
		hashes[i] = fmt.Sprintf("big-%04d", i)
	}
	ctx := context.Background()
	for i := 0; i < n; i += 100 {
		blobs := make([]state.Blob, 100)
		for j := range blobs {
			blobs[j] = state.Blob{Key: hashes[i+j], Value: packed}
		}
		require.NoError(t, b.state.SetBlobs(ctx, blobs, time.Minute))
	}
	all, err := json.Marshal(messages.EmbeddingRequest{Op: messages.OpMGet, Hashes: hashes})
	require.NoError(t, err)

	testenv.ResetPeakRSS(t)
	base := testenv.RSS(t, 0)
	a, took := b.timed(subjects.CacheEmbedding, string(all))
	peak := testenv.PeakRSS(t, 0)
	t.Logf("mget of %d × %d dimensions: %s in %s, peak RSS %d MB (%+d MB)", n, dims, a.status, took, peak>>20, (peak-base)>>20)
	require.Equal(t, "413", a.status, "%.300s", a.body)
	require.Equal(t, "TOO_LARGE", a.errorOf(t)["code"])
	require.Less(t, took, time.Second)
	require.Less(t, peak-base, int64(40<<20), "the refused mget grew the peak RSS")
	require.Less(t, peak, int64(300<<20), "peak RSS")

	// 20 of them fit the 8 MB payload: each comes back exactly.
	some, err := json.Marshal(messages.EmbeddingRequest{Op: messages.OpMGet, Hashes: append(hashes[:20:20], "missing")})
	require.NoError(t, err)
	a = b.request(subjects.CacheEmbedding, some)
	require.Empty(t, a.status, "%.300s", a.body)
	var res messages.EmbeddingMGetResult
	require.NoError(t, json.Unmarshal(a.body, &res))
	require.Equal(t, 20, res.Hits)
	require.Len(t, res.Vectors, 21)
	require.Nil(t, res.Vectors[20])
	want := make([]float32, dims)
	for i, x := range vec {
		want[i] = float32(x)
	}
	require.Equal(t, want, res.Vectors[7])
}
