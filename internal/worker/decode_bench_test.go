package worker

import (
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
