package pgexec_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pooler"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

// A request's messages as the executor sends them for SELECT 1 (session.go),
// written straight on pgconn so that one connection can carry several
// requests' sequences in one pipeline.
type benchSeq struct {
	name string
	send func(p *pgconn.Pipeline)
	// results is how many results, ReadyForQuery included, a request reads.
	results int
}

var benchSeed = [][]byte{[]byte("0.25")}

func sendReset(p *pgconn.Pipeline) {
	p.SendQueryParams("DISCARD ALL", nil, nil, nil, nil)
	p.SendQueryParams("SELECT pg_catalog.setseed($1)", benchSeed, nil, nil, nil)
	p.SendPipelineSync()
}

var benchSeqs = []benchSeq{
	{"bare", func(p *pgconn.Pipeline) { // no reset: the floor
		p.SendQueryParams("SELECT 1", nil, nil, nil, []int16{1})
		p.SendPipelineSync()
	}, 2},
	{"read_write", func(p *pgconn.Pipeline) { // what db.execute sends today
		p.SendQueryParams("SELECT 1", nil, nil, nil, []int16{1})
		p.SendPipelineSync()
		sendReset(p)
	}, 5},
	{"read_write_timeout", func(p *pgconn.Pipeline) { // with a server-side timeout of its own
		p.SendQueryParams(pooler.LocalSettingsSQL(pooler.None), [][]byte{[]byte("30000")}, nil, nil, nil)
		p.SendQueryParams("SELECT 1", nil, nil, nil, []int16{1})
		p.SendPipelineSync()
		sendReset(p)
	}, 6},
	{"read_write_discard_only", func(p *pgconn.Pipeline) { // what setseed costs
		p.SendQueryParams("SELECT 1", nil, nil, nil, []int16{1})
		p.SendPipelineSync()
		p.SendQueryParams("DISCARD ALL", nil, nil, nil, nil)
		p.SendPipelineSync()
	}, 4},
	{"read_only_merged_end", func(p *pgconn.Pipeline) { // ROLLBACK and the reset share a Sync
		p.SendQueryParams("BEGIN READ ONLY", nil, nil, nil, nil)
		p.SendQueryParams(pooler.LocalSettingsSQL(pooler.None), [][]byte{[]byte("30000")}, nil, nil, nil)
		p.SendQueryParams("SELECT 1", nil, nil, nil, []int16{1})
		p.SendPipelineSync()
		p.SendQueryParams("ROLLBACK", nil, nil, nil, nil)
		sendReset(p)
	}, 7},
	{"reset_first_rw", func(p *pgconn.Pipeline) { // the reset opens the request's segment
		p.SendQueryParams("DISCARD ALL", nil, nil, nil, nil)
		p.SendQueryParams("SELECT pg_catalog.setseed($1), pg_catalog.set_config('statement_timeout', $2, true)", [][]byte{[]byte("0.25"), []byte("30000")}, nil, nil, nil)
		p.SendQueryParams("SELECT 1", nil, nil, nil, []int16{1})
		p.SendPipelineSync()
	}, 4},
	{"reset_first_guard", func(p *pgconn.Pipeline) { // the guard as package pipeline sends it
		p.SendQueryParams("DISCARD ALL", nil, nil, nil, nil)
		p.SendQueryParams(guardSQLForBench, [][]byte{[]byte("0.25"), []byte(strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10))}, nil, nil, nil)
		p.SendQueryParams("SELECT 1", nil, nil, nil, []int16{1})
		p.SendPipelineSync()
	}, 4},
	{"reset_first_seed", func(p *pgconn.Pipeline) {
		p.SendQueryParams("DISCARD ALL", nil, nil, nil, nil)
		p.SendQueryParams("SELECT pg_catalog.setseed($1)", benchSeed, nil, nil, nil)
		p.SendQueryParams("SELECT 1", nil, nil, nil, []int16{1})
		p.SendPipelineSync()
	}, 4},
	{"reset_first_bare", func(p *pgconn.Pipeline) {
		p.SendQueryParams("DISCARD ALL", nil, nil, nil, nil)
		p.SendQueryParams("SELECT 1", nil, nil, nil, []int16{1})
		p.SendPipelineSync()
	}, 3},
	{"reset_first_ro", func(p *pgconn.Pipeline) {
		p.SendQueryParams("ROLLBACK", nil, nil, nil, nil)
		p.SendQueryParams("DISCARD ALL", nil, nil, nil, nil)
		p.SendQueryParams("BEGIN READ ONLY", nil, nil, nil, nil)
		p.SendQueryParams("SELECT pg_catalog.setseed($1), pg_catalog.set_config('statement_timeout', $2, true)", [][]byte{[]byte("0.25"), []byte("30000")}, nil, nil, nil)
		p.SendQueryParams("SELECT 1", nil, nil, nil, []int16{1})
		p.SendPipelineSync()
	}, 6},
	{"read_write_set_seed", func(p *pgconn.Pipeline) { // the reseed as SET seed, a utility statement
		p.SendQueryParams("SELECT 1", nil, nil, nil, []int16{1})
		p.SendPipelineSync()
		p.SendQueryParams("DISCARD ALL", nil, nil, nil, nil)
		p.SendQueryParams("SET seed = 0.25", nil, nil, nil, nil)
		p.SendPipelineSync()
	}, 5},
	{"read_only_set_seed_merged", func(p *pgconn.Pipeline) { // both
		p.SendQueryParams("BEGIN READ ONLY", nil, nil, nil, nil)
		p.SendQueryParams(pooler.LocalSettingsSQL(pooler.None), [][]byte{[]byte("30000")}, nil, nil, nil)
		p.SendQueryParams("SELECT 1", nil, nil, nil, []int16{1})
		p.SendPipelineSync()
		p.SendQueryParams("ROLLBACK", nil, nil, nil, nil)
		p.SendQueryParams("DISCARD ALL", nil, nil, nil, nil)
		p.SendQueryParams("SET seed = 0.25", nil, nil, nil, nil)
		p.SendPipelineSync()
	}, 7},
	{"read_only", func(p *pgconn.Pipeline) { // what db.execute sends today
		p.SendQueryParams("BEGIN READ ONLY", nil, nil, nil, nil)
		p.SendQueryParams(pooler.LocalSettingsSQL(pooler.None), [][]byte{[]byte("30000")}, nil, nil, nil)
		p.SendQueryParams("SELECT 1", nil, nil, nil, []int16{1})
		p.SendPipelineSync()
		p.SendQueryParams("ROLLBACK", nil, nil, nil, nil)
		p.SendPipelineSync()
		sendReset(p)
	}, 9},
}

// BenchmarkSelect1PipelineAcrossCallers compares K requests' complete
// sequences (the reset included) sent as one pipeline on one connection, a
// Sync after each request's parts, with K connections each carrying one
// request at a time (K at most 8: the shared server's connections). Metrics
// per request: pg-cpu-µs (the backends' CPU, from /proc/<pid>/schedstat) and
// client-cpu-µs (this process's user+system CPU).
func BenchmarkSelect1PipelineAcrossCallers(b *testing.B) {
	ctx := context.Background()
	c, err := pgexec.Connect(ctx, pgexec.Config{DSN: testenv.BaseURL(), MaxConns: 8})
	if err != nil {
		testenv.Unavailable(b, "PostgreSQL", err)
	}
	defer c.Close()
	for _, seq := range benchSeqs {
		for _, k := range []int{1, 4, 8, 16} {
			b.Run(fmt.Sprintf("%s/pipelined/K=%d", seq.name, k), func(b *testing.B) {
				conn := acquireN(b, c, 1)[0]
				defer conn.Release()
				pg := conn.Conn().PgConn()
				pids := []uint32{pg.PID()}
				cpu := startCPU(b, pids)
				n := 0
				for b.Loop() {
					p := pg.StartPipeline(ctx)
					for range k {
						seq.send(p)
					}
					if err := p.Flush(); err != nil {
						b.Fatal(err)
					}
					readResults(b, p, k*seq.results)
					if err := p.Close(); err != nil {
						b.Fatal(err)
					}
					n += k
				}
				cpu.report(b, n)
			})
		}
		for _, k := range []int{1, 4, 8} {
			b.Run(fmt.Sprintf("%s/separate/K=%d", seq.name, k), func(b *testing.B) {
				conns := acquireN(b, c, k)
				pids := make([]uint32, k)
				for i, conn := range conns {
					defer conn.Release()
					pids[i] = conn.Conn().PgConn().PID()
				}
				cpu := startCPU(b, pids)
				n := 0
				for b.Loop() {
					var wg sync.WaitGroup
					for _, conn := range conns {
						wg.Go(func() {
							p := conn.Conn().PgConn().StartPipeline(ctx)
							seq.send(p)
							if err := p.Flush(); err != nil {
								b.Error(err)
								return
							}
							readResults(b, p, seq.results)
							if err := p.Close(); err != nil {
								b.Error(err)
							}
						})
					}
					wg.Wait()
					n += k
				}
				cpu.report(b, n)
			})
		}
	}
}

func acquireN(b *testing.B, c *pgexec.Client, k int) []*pgxpool.Conn {
	conns := make([]*pgxpool.Conn, k)
	for i := range conns {
		conn, err := c.Acquire(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = conn
	}
	return conns
}

// readResults reads n results of a pipeline, failing on any error.
func readResults(tb testing.TB, p *pgconn.Pipeline, n int) {
	for range n {
		res, err := p.GetResults()
		if err != nil {
			tb.Error(err)
			return
		}
		if rr, ok := res.(*pgconn.ResultReader); ok {
			if _, err := rr.Close(); err != nil {
				tb.Error(err)
				return
			}
		}
	}
}

// benchCPU is the CPU time of some backends and of this process at a start.
type benchCPU struct {
	pids   []uint32
	pg     time.Duration
	client time.Duration
}

func startCPU(b *testing.B, pids []uint32) benchCPU {
	return benchCPU{pids: pids, pg: schedCPU(b, pids), client: selfCPU()}
}

func (c benchCPU) report(b *testing.B, requests int) {
	b.ReportMetric(float64(schedCPU(b, c.pids)-c.pg)/1e3/float64(requests), "pg-cpu-µs/req")
	b.ReportMetric(float64(selfCPU()-c.client)/1e3/float64(requests), "client-cpu-µs/req")
}

// schedCPU sums the CPU time of processes in nanoseconds, from the first
// field of /proc/<pid>/schedstat (finer than /proc/<pid>/stat's ticks).
func schedCPU(tb testing.TB, pids []uint32) time.Duration {
	var sum time.Duration
	for _, pid := range pids {
		raw, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/schedstat")
		if err != nil {
			tb.Fatalf("read the CPU time of process %d (is PostgreSQL on this machine?): %v", pid, err)
		}
		ns, err := strconv.ParseInt(strings.Fields(string(raw))[0], 10, 64)
		if err != nil {
			tb.Fatal(err)
		}
		sum += time.Duration(ns)
	}
	return sum
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const guardSQLForBench = `SELECT pg_catalog.setseed($1::float8), pg_catalog.set_config('statement_timeout', ` +
	`CASE WHEN ms OPERATOR(pg_catalog.>=) 1 THEN ms::text ELSE 'deadline passed' END, true) ` +
	`FROM (SELECT ($2::float8 OPERATOR(pg_catalog.-) (pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) ` +
	`OPERATOR(pg_catalog.*) 1000))::int8 AS ms) AS left_ms`
