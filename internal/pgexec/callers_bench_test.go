package pgexec_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// BenchmarkExecuteSelect1Callers is db.execute SELECT 1 from 16 callers at
// once on a pool of 8 connections, the executor's part of the issue's
// 16-caller figure. pg-cpu-µs/req is the CPU of the pool's backends per
// request (/proc/<pid>/schedstat), client-cpu-µs/req this process's (the
// callers, the executor and pgconn).
func BenchmarkExecuteSelect1Callers(b *testing.B) {
	for _, readOnly := range []bool{false, true} {
		name := map[bool]string{true: "read_only", false: "read_write"}[readOnly]
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			c, err := pgexec.Connect(ctx, pgexec.Config{DSN: testenv.BaseURL(), MaxConns: 8})
			if err != nil {
				testenv.Unavailable(b, "PostgreSQL", err)
			}
			defer c.Close()
			ex, err := pgexec.NewExecutor(c, pgexec.ExecutorConfig{})
			if err != nil {
				b.Fatal(err)
			}
			conns := acquireN(b, c, 8) // all of the pool's connections, to know their backends
			pids := make([]uint32, len(conns))
			for i, conn := range conns {
				pids[i] = conn.Conn().PgConn().PID()
				conn.Release()
			}
			req := &messages.ExecuteRequest{SQL: "SELECT 1", ReadOnly: readOnly}
			if _, err := ex.Execute(ctx, req, pgjson.Output{MaxBytes: 1 << 20}); err != nil {
				b.Fatal(err)
			}
			cpu := startCPU(b, pids)
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/16 + 1
			for range 16 {
				wg.Go(func() {
					for range per {
						if _, err := ex.Execute(ctx, req, pgjson.Output{MaxBytes: 1 << 20}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			cpu.report(b, per*16)
		})
	}
}
