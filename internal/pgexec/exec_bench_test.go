package pgexec_test

import (
	"context"
	"testing"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
	"github.com/stretchr/testify/require"
)

// BenchmarkExecuteSelect1 is the executor's part of db.execute SELECT 1
// (the session reset included), to compare with BenchmarkPgxSelect1 (direct
// pgx) on the same server. pg-cpu-µs/op is the one backend's CPU per request.
func BenchmarkExecuteSelect1(b *testing.B) {
	for _, c := range []struct {
		name     string
		readOnly bool
	}{{"read_write", false}, {"read_only", true}} {
		b.Run(c.name, func(b *testing.B) {
			cl, pid := benchClient(b)
			ex, err := pgexec.NewExecutor(cl, pgexec.ExecutorConfig{})
			require.NoError(b, err)
			req := &messages.ExecuteRequest{SQL: "SELECT 1", ReadOnly: c.readOnly}
			cpu0 := testenv.BackendCPU(b, pid)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := ex.Execute(context.Background(), req, pgjson.Output{}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			testenv.ReportCPU(b, pid, cpu0, "pg-cpu-µs/op")
		})
	}
}

func BenchmarkPgxSelect1(b *testing.B) {
	c, pid := benchClient(b)
	cpu0 := testenv.BackendCPU(b, pid)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var x int
		if err := c.Pool().QueryRow(context.Background(), "SELECT 1").Scan(&x); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	testenv.ReportCPU(b, pid, cpu0, "pg-cpu-µs/op")
}

// benchClient is a one-connection client and its backend's PID.
func benchClient(b *testing.B) (*pgexec.Client, uint32) {
	c, err := pgexec.Connect(context.Background(), pgexec.Config{DSN: testenv.BaseURL(), MaxConns: 1})
	if err != nil {
		testenv.Unavailable(b, "PostgreSQL", err)
	}
	b.Cleanup(c.Close)
	var pid uint32
	if err := c.Pool().QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		b.Fatal(err)
	}
	return c, pid
}
