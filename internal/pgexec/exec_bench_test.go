package pgexec_test

import (
	"context"
	"testing"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// BenchmarkExecuteSelect1 is the executor's part of db.execute SELECT 1, to
// compare with BenchmarkPgxSelect1 (direct pgx) on the same server.
func BenchmarkExecuteSelect1(b *testing.B) {
	c, err := pgexec.Connect(context.Background(), pgexec.Config{DSN: testenv.BaseURL(), MaxConns: 4})
	if err != nil {
		testenv.Unavailable(b, "PostgreSQL", err)
	}
	defer c.Close()
	ex := pgexec.NewExecutor(c, pgexec.ExecutorConfig{})
	req := &messages.ExecuteRequest{SQL: "SELECT 1"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := ex.Execute(context.Background(), req, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPgxSelect1(b *testing.B) {
	c, err := pgexec.Connect(context.Background(), pgexec.Config{DSN: testenv.BaseURL(), MaxConns: 4})
	if err != nil {
		testenv.Unavailable(b, "PostgreSQL", err)
	}
	defer c.Close()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var x int
		if err := c.Pool().QueryRow(context.Background(), "SELECT 1").Scan(&x); err != nil {
			b.Fatal(err)
		}
	}
}
