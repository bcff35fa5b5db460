package worker

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

var flatSeeds = []string{
	`{"key":"bench","limit":1000000000,"window_ms":1000}`,
	`{"key":"k","limit":5,"window_seconds":1.5,"cost":0}`,
	` { "key" : "k" , "limit" : -3 , "cost" : 2 } `,
	`{"op":"acquire","key":"bench-1","owner":"o","ttl_ms":30000}`,
	`{"op":"release","key":"k","lease":"abc","ttl_seconds":2e3,"wait_ms":0}`,
	`{}`, `{"KEY":"k"}`, `{"key":"k","key":"j"}`, `{"key":"\u00e9"}`, `{"key":"é"}`, `{"limit":1.0}`, `{"limit":01}`,
	`{"limit":null}`, `{"limit":"5"}`, `{"key":"k"} x`, `{"key":"k",}`, `{"limit":9223372036854775807}`, `{"limit":1e2}`,
	`{"window_seconds":-0.0}`, `{"window_seconds":1e400}`, `{"bogus":1}`, `{"key":"a\tb"}`, `[]`, `{"key":"k"}{}`,
	`{"sql":"SELECT 1"}`, `{"op":"one","sql":"SELECT * FROM t WHERE id = :id","params":{"id":5,"s":"a\"b]}"},"read_only":true,"max_rows":10,"timeout_ms":500,"row_format":"array"}`,
	`{"sql":"x","params":[1,[2,{"a":null}]]}`, `{"sql":"x","params": {"a":"\u00e9"} }`, `{"sql":"x","params":{"a":1]}`, `{"sql":"x","params":{"a":"\xff"}}`,
	`{"sql":"x","params":null}`, `{"sql":"x","params":"s"}`, `{"read_only":false,"all_rows":true,"deferrable":true}`, `{"read_only":truex}`,
	`{"op":"update","table":"t","where":"id = :id","where_params":{"id":1},"isolation":"serializable"}`, `{"sql":"x","statements":[]}`,
	"{\"sql\":\"x\",\"params\":{\"a\":\"\xff\"}}", // not UTF-8
	`{"op":"query","query":"q","sql":"x","params":[],"where":"w","where_params":[1],"table":"t","row_format":"object","max_rows":1,"timeout_ms":-0,"read_only":true,"all_rows":false,"isolation":"","deferrable":false,"safe_numbers":true}`,
	`{"sql":"x","max_rows":123456789012345678}`, `{"sql":"x","max_rows":1234567890123456789}`, `{"sql":"x","max_rows":-01}`, "{\"sql\":\"x\"\f}",
	`{"sql":"SELECT 1","safe_numbers":true}`, `{"sql":"x","safe_numbers":false}`, `{"sql":"x","safe_numbers":null}`, `{"sql":"x","safe_numbers":1}`,
}

// TestFlatDecodeTakesTypicalBodies: the bodies callers send take the fast
// path, and decode to what DecodeStrict gives.
func TestFlatDecodeTakesTypicalBodies(t *testing.T) {
	var rl messages.RateLimitRequest
	require.True(t, fastDecode([]byte(flatSeeds[0]), &rl))
	require.Equal(t, "bench", rl.Key)
	require.Equal(t, int64(1000000000), *rl.Limit)
	require.Equal(t, int64(1000), *rl.WindowMS)
	require.Nil(t, rl.WindowSeconds)
	require.Nil(t, rl.Cost)
	var lk messages.LockRequest
	require.True(t, fastDecode([]byte(flatSeeds[3]), &lk))
	require.Equal(t, messages.LockRequest{Op: "acquire", Key: "bench-1", Owner: "o", TTLMS: ptr(int64(30000))}, lk)
	// What it does not take goes to DecodeStrict, with DecodeStrict's answer.
	for _, body := range []string{`{"KEY":"k"}`, `{"key":"k","key":"j"}`, `{"limit":null}`, `{"bogus":1}`, `{"key":"k"} x`, `{"limit":1.0}`} {
		require.False(t, fastDecode([]byte(body), &rl), body)
	}
	require.ErrorContains(t, (&request{data: []byte(`{"bogus":1}`)}).decode(&rl), `unknown field "bogus"`)
	var ex messages.ExecuteRequest
	require.True(t, fastDecode([]byte(flatSeeds[25]), &ex))
	require.Equal(t, messages.ExecuteRequest{Op: "one", SQL: "SELECT * FROM t WHERE id = :id", Params: json.RawMessage(`{"id":5,"s":"a\"b]}"}`),
		ReadOnly: true, MaxRows: ptr(10), TimeoutMS: ptr(500), RowFormat: "array"}, ex)
	// safe_numbers, which the TypeScript client always sends, takes it too;
	// false is kept (it overrides DB_SAFE_NUMBERS), null goes to DecodeStrict.
	ex = messages.ExecuteRequest{}
	require.True(t, fastDecode([]byte(`{"sql":"SELECT 1","safe_numbers":true}`), &ex))
	require.Equal(t, messages.ExecuteRequest{SQL: "SELECT 1", SafeNumbers: ptr(true)}, ex)
	ex = messages.ExecuteRequest{}
	require.True(t, fastDecode([]byte(`{"sql":"x","safe_numbers":false}`), &ex))
	require.Equal(t, ptr(false), ex.SafeNumbers)
	require.False(t, fastDecode([]byte(`{"sql":"x","safe_numbers":null}`), &ex))
	for _, body := range []string{`{"sql":"x","params":{"a":1]}`, `{"sql":"x","params":null}`, `{"sql":"x","statements":[]}`, `{"sql":"x","params":{"a":"\xff"}}`} {
		require.False(t, fastDecode([]byte(body), &ex), body)
	}
	// Every field of the fast path's list is one DecodeStrict knows, by
	// that name and type: a body with each takes the fast path, and
	// checkFlat below compares it with DecodeStrict's.
	ex = messages.ExecuteRequest{}
	require.True(t, fastDecode([]byte(flatSeeds[37]), &ex), flatSeeds[37])
	require.Equal(t, "q", ex.Query)
	for _, s := range flatSeeds {
		checkFlat(t, []byte(s))
	}
}

func ptr[T any](v T) *T { return &v }

// FuzzFlatDecode: whatever the fast path decodes, DecodeStrict decodes to
// the same request.
func FuzzFlatDecode(f *testing.F) {
	for _, s := range flatSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkFlat)
}

func checkFlat(t *testing.T, data []byte) {
	var fastRL, strictRL messages.RateLimitRequest
	if fastDecode(data, &fastRL) {
		require.NoError(t, messages.DecodeStrict(data, &strictRL), "%q", data)
		require.Equal(t, strictRL, fastRL, "%q", data)
	}
	var fastLock, strictLock messages.LockRequest
	if fastDecode(data, &fastLock) {
		require.NoError(t, messages.DecodeStrict(data, &strictLock), "%q", data)
		require.Equal(t, strictLock, fastLock, "%q", data)
	}
	var fastExec, strictExec messages.ExecuteRequest
	if fastDecode(data, &fastExec) {
		require.NoError(t, messages.DecodeStrict(data, &strictExec), "%q", data)
		require.Equal(t, strictExec, fastExec, "%q", data)
	}
}

// BenchmarkDecodeRateLimit is the request decoder on state.ratelimit's body:
// the fast path, and DecodeStrict.
func BenchmarkDecodeRateLimit(b *testing.B) {
	body := []byte(flatSeeds[0])
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var req messages.RateLimitRequest
			if err := (&request{data: body}).decode(&req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("strict", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var req messages.RateLimitRequest
			if err := messages.DecodeStrict(body, &req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestAppendRateLimit: the hand-written answer is json.Marshal's, byte for
// byte, and the field list is still the struct's (a field added to
// RateLimitResult fails here until appendRateLimit writes it).
func TestAppendRateLimit(t *testing.T) {
	for _, r := range []messages.RateLimitResult{
		{}, {Allowed: true, Remaining: 999999999, Limit: 1000000000, RetryAfterMS: 0, ResetMS: 1000},
		{Allowed: false, Remaining: 0, Limit: 5, RetryAfterMS: -1, ResetMS: math.MaxInt64},
		{Remaining: math.MinInt64, Limit: -7, RetryAfterMS: 42, ResetMS: 3},
	} {
		want, err := json.Marshal(r)
		require.NoError(t, err)
		require.Equal(t, string(want), string(appendRateLimit(nil, r)))
	}
}
