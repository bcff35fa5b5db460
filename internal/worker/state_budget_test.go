package worker

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
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
