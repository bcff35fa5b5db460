package pgexec

import (
	"context"
	"testing"

	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

// BenchmarkSessionReset is the cost of the reset that ends every request,
// run here as a round trip of its own (in a request it shares the last
// round trip). pg-cpu-µs/op is the PostgreSQL backend's CPU time per reset,
// read from /proc: the reset's price on the server.
func BenchmarkSessionReset(b *testing.B) {
	ctx := context.Background()
	c, err := Connect(ctx, Config{DSN: testenv.BaseURL(), MaxConns: 1})
	if err != nil {
		testenv.Unavailable(b, "PostgreSQL", err)
	}
	defer c.Close()
	conn, err := c.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	pg := conn.Conn().PgConn()
	s := &session{conn: conn, pg: pg, cache: c.stmtCacheFor(pg)}
	cpu0 := testenv.BackendCPU(b, pg.PID())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s.reset = false
		if err := s.finish(ctx, false); err != nil || s.broken {
			b.Fatalf("reset: %v (broken %v)", err, s.broken)
		}
	}
	b.StopTimer()
	testenv.ReportCPU(b, pg.PID(), cpu0, "pg-cpu-µs/op")
}
