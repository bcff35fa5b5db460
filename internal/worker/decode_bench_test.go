package worker

import (
	"errors"
	"testing"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// BenchmarkDecodeExecuteRequest is the strict request decoder on a typical
// db.execute body.
func BenchmarkDecodeExecuteRequest(b *testing.B) {
	body := []byte(`{"op":"query","sql":"SELECT * FROM users WHERE active = :active AND id > :id","params":{"active":true,"id":12345},"max_rows":100,"row_format":"array"}`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var req messages.ExecuteRequest
		if err := (&request{data: body}).decode(&req); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecodeRequests: every endpoint's strict decoder takes any bytes without
// panicking and answers a failure as BAD_REQUEST.
func FuzzDecodeRequests(f *testing.F) {
	for _, s := range []string{`{"sql":"select 1"}`, `{"op":"acquire","key":"k"}`, `{"key":"k","limit":1,"window_ms":1}`, `{`, `[]`, "\xff", `{"params":{"a":[1,{"b":null}]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []any{&messages.ExecuteRequest{}, &messages.LockRequest{}, &messages.RateLimitRequest{}, &messages.KVRequest{},
			&messages.EmbeddingRequest{}, &messages.StatsRequest{}, &messages.VacuumRequest{}, &messages.VectorRequest{}, &messages.GraphRequest{}} {
			err := (&request{data: data}).decode(v)
			var me *messages.Error
			if err != nil && (!errors.As(err, &me) || me.Code != messages.CodeBadRequest) {
				t.Fatalf("%T: %v", v, err)
			}
		}
	})
}
