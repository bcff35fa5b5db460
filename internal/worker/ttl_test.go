package worker

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
)

// TestTTLSecondsOnTheWire: state.kv and cache.embedding take ttl_seconds as
// the protocol says every duration does (they used to refuse it as an
// unknown field), on both backends; ttl_ms keeps working, and both at once
// is BAD_REQUEST naming ttl.
func TestTTLSecondsOnTheWire(t *testing.T) {
	t.Parallel()
	for name, opt := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, opt)
			found := func(key string) (bool, error) {
				a, err := b.send(subjects.StateKV, []byte(`{"op":"get","key":"`+key+`"}`))
				if err != nil || a.status != "" {
					return false, err
				}
				var res struct{ Found bool }
				return res.Found, json.Unmarshal(a.body, &res)
			}
			hit := func(hash string) (bool, error) {
				a, err := b.send(subjects.CacheEmbedding, []byte(`{"op":"get","hash":"`+hash+`"}`))
				if err != nil || a.status != "" {
					return false, err
				}
				var res struct{ Hit bool }
				return res.Hit, json.Unmarshal(a.body, &res)
			}
			gone := func(check func(string) (bool, error), key string) {
				t.Helper()
				require.EventuallyWithT(t, func(c *assert.CollectT) {
					ok, err := check(key)
					assert.NoError(c, err)
					assert.False(c, ok)
				}, 5*time.Second, 20*time.Millisecond, "%s expires", key)
			}

			b.ok(`{"op":"set","key":"short","value":1,"ttl_seconds":0.15}`, subjects.StateKV)
			b.ok(`{"op":"set","key":"tiny","value":1,"ttl_seconds":0.0001}`, subjects.StateKV)
			b.ok(`{"op":"set","key":"forever","value":1,"ttl_seconds":0}`, subjects.StateKV)
			b.ok(`{"op":"set","key":"long","value":1,"ttl_seconds":3600}`, subjects.StateKV)
			b.ok(`{"op":"set","key":"ms","value":1,"ttl_ms":150}`, subjects.StateKV)
			b.ok(`{"op":"set","hash":"short","vector":[1],"ttl_seconds":0.15}`, subjects.CacheEmbedding)
			b.ok(`{"op":"mset","items":[{"hash":"mshort","vector":[1]}],"ttl_seconds":0.15}`, subjects.CacheEmbedding)
			b.ok(`{"op":"set","hash":"forever","vector":[1],"ttl_seconds":0}`, subjects.CacheEmbedding)
			gone(found, "short")
			gone(found, "tiny") // a TTL under a millisecond is one, never "no expiry"
			gone(found, "ms")
			gone(hit, "short")
			gone(hit, "mshort")
			for _, k := range []string{"forever", "long"} {
				ok, err := found(k)
				require.NoError(t, err)
				require.True(t, ok, k)
			}
			ok, err := hit("forever")
			require.NoError(t, err)
			require.True(t, ok)

			for _, tc := range []struct{ subject, body string }{
				{subjects.StateKV, `{"op":"set","key":"k","value":1,"ttl_ms":1000,"ttl_seconds":1}`},
				{subjects.CacheEmbedding, `{"op":"set","hash":"h","vector":[1],"ttl_ms":1000,"ttl_seconds":1}`},
				{subjects.CacheEmbedding, `{"op":"mset","items":[{"hash":"h","vector":[1]}],"ttl_ms":0,"ttl_seconds":0}`},
			} {
				a := b.request(tc.subject, []byte(tc.body))
				require.Equal(t, "400", a.status, "%s %s: %s", tc.subject, tc.body, a.body)
				e := a.errorOf(t)
				require.Equal(t, "BAD_REQUEST", e["code"])
				require.Equal(t, "ttl", e["param"])
				require.Contains(t, e["message"], "not both")
			}
			for _, tc := range []struct{ subject, body string }{
				{subjects.StateKV, `{"op":"set","key":"k","value":1,"ttl_seconds":-1}`},
				{subjects.CacheEmbedding, `{"op":"set","hash":"h","vector":[1],"ttl_seconds":"1"}`},
				{subjects.CacheEmbedding, `{"op":"set","hash":"h","vector":[1],"ttl_seconds":1e400}`},
			} {
				a := b.request(tc.subject, []byte(tc.body))
				require.Equal(t, "400", a.status, "%s %s: %s", tc.subject, tc.body, a.body)
			}
		})
	}
}
