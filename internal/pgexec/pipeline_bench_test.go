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

// A request's messages for SELECT 1, written straight on pgconn so that one
// connection can carry several requests' sequences in one pipeline: what
// db.execute sends (session.go), what it sent before, and what a request
// would send if it shared a pipeline with other callers' (each request a
// segment opened by its own reset, with its own timeout and seed, so that
// the server skips it when a neighbour left the session unclean; built and
// not kept, docs/benchmarks.md).
//
// read_write and read_only take their statements from the executor's own
// pieces (the reset, the seed, pooler.LocalSettings), but their order is a
// copy of session.go's comment and code: a change to the sequence there must
// be made here too. BenchmarkExecuteSelect1Callers runs the executor itself.
type benchSeq struct {
	name  string
	steps []benchStep
}

// benchStep is a statement and its parameters, or a Sync (sql "").
type benchStep struct {
	sql  string
	args [][]byte
}

func st(sql string, args ...string) benchStep {
	s := benchStep{sql: sql}
	for _, a := range args {
		s.args = append(s.args, []byte(a))
	}
	return s
}

var syncStep = benchStep{}

const guardSQL = `SELECT pg_catalog.setseed($1::float8), pg_catalog.set_config('statement_timeout', ` +
	`CASE WHEN ms OPERATOR(pg_catalog.>=) 1 THEN ms::text ELSE 'deadline passed' END, true) ` +
	`FROM (SELECT ($2::float8 OPERATOR(pg_catalog.-) (pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) ` +
	`OPERATOR(pg_catalog.*) 1000))::int8 AS ms) AS left_ms`

// localTimeout is what a read-only request sets its timeout with.
var localTimeout, _ = pooler.LocalSettings(pooler.None, 30*time.Second, true)

var benchSeqs = []benchSeq{
	{"bare", []benchStep{st("SELECT 1"), syncStep}}, // no reset: the floor
	{"read_write", []benchStep{st("SELECT 1"), syncStep, st(pgexec.ResetSQL), st(pgexec.SeedSQL()), syncStep}},
	{"read_only", []benchStep{st("BEGIN READ ONLY"), st(localTimeout), st("SELECT 1"), syncStep,
		st("ROLLBACK"), st(pgexec.ResetSQL), st(pgexec.SeedSQL()), syncStep}},
	{"read_write_before", []benchStep{st("SELECT 1"), syncStep, st("DISCARD ALL"), st("SELECT pg_catalog.setseed($1)", "0.25"), syncStep}},
	{"read_only_before", []benchStep{st("BEGIN READ ONLY"), st(pooler.LocalSettingsSQL(pooler.None), "30000"), st("SELECT 1"), syncStep,
		st("ROLLBACK"), syncStep, st("DISCARD ALL"), st("SELECT pg_catalog.setseed($1)", "0.25"), syncStep}},
	{"shared_read_write", []benchStep{st("DISCARD ALL"),
		st("SELECT pg_catalog.setseed($1), pg_catalog.set_config('statement_timeout', $2, true)", "0.25", "30000"), st("SELECT 1"), syncStep}},
	{"shared_read_write_deadline", []benchStep{st("DISCARD ALL"), st(guardSQL, "0.25", "GUARD"), st("SELECT 1"), syncStep}},
}

// send queues one request's sequence.
func (q benchSeq) send(p *pgconn.Pipeline) int {
	for _, s := range q.steps {
		if s.sql == "" {
			p.SendPipelineSync()
			continue
		}
		args := s.args
		if len(args) == 2 && string(args[1]) == "GUARD" { // a deadline a minute away, by the clock
			args = [][]byte{args[0], []byte(strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10))}
		}
		p.SendQueryParams(s.sql, args, nil, nil, nil)
	}
	return len(q.steps)
}

// BenchmarkSelect1ResetSequences runs, in every iteration, each sequence
// above 16 times in one pipeline, each sequence on a connection of its own,
// one after the other: the load of the shared machine falls on all of them
// alike. <sequence>-pg-µs/req is that backend's CPU per request
// (/proc/<pid>/schedstat): what its statements cost PostgreSQL, with the
// round trip shared by 16 requests.
func BenchmarkSelect1ResetSequences(b *testing.B) {
	ctx := context.Background()
	c, err := pgexec.Connect(ctx, pgexec.Config{DSN: testenv.BaseURL(), MaxConns: int32(len(benchSeqs))})
	if err != nil {
		testenv.Unavailable(b, "PostgreSQL", err)
	}
	defer c.Close()
	conns := acquireN(b, c, len(benchSeqs))
	cpu := make([]benchCPU, len(conns))
	for i, conn := range conns {
		defer conn.Release()
		cpu[i] = startCPU(b, []uint32{conn.Conn().PgConn().PID()})
	}
	n := 0
	for b.Loop() {
		for i, q := range benchSeqs {
			runPipeline(b, conns[i].Conn().PgConn(), q, 16)
		}
		n += 16
	}
	for i, q := range benchSeqs {
		b.ReportMetric(float64(schedCPU(b, cpu[i].pids)-cpu[i].pg)/1e3/float64(n), q.name+"-pg-µs/req")
	}
}

// BenchmarkSelect1PipelineAcrossCallers compares K requests' sequences sent
// as one pipeline on one connection with K connections each carrying one
// request at a time (K at most 8: the shared server's connections), for
// what db.execute sends and what a request sharing a pipeline would send.
// Metrics per request: pg-cpu-µs (the backends' CPU) and client-cpu-µs (this
// process's user and system CPU).
func BenchmarkSelect1PipelineAcrossCallers(b *testing.B) {
	ctx := context.Background()
	c, err := pgexec.Connect(ctx, pgexec.Config{DSN: testenv.BaseURL(), MaxConns: 8})
	if err != nil {
		testenv.Unavailable(b, "PostgreSQL", err)
	}
	defer c.Close()
	for _, q := range []benchSeq{benchSeqs[1], benchSeqs[5], benchSeqs[6]} {
		for _, k := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("%s/pipelined/K=%d", q.name, k), func(b *testing.B) {
				conn := acquireN(b, c, 1)[0]
				defer conn.Release()
				cpu := startCPU(b, []uint32{conn.Conn().PgConn().PID()})
				n := 0
				for b.Loop() {
					runPipeline(b, conn.Conn().PgConn(), q, k)
					n += k
				}
				cpu.report(b, n)
			})
		}
		for _, k := range []int{1, 4, 8} {
			b.Run(fmt.Sprintf("%s/separate/K=%d", q.name, k), func(b *testing.B) {
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
						wg.Go(func() { runPipeline(b, conn.Conn().PgConn(), q, 1) })
					}
					wg.Wait()
					n += k
				}
				cpu.report(b, n)
			})
		}
	}
}

// runPipeline sends k requests' sequences in one pipeline and reads every
// result, failing on any error.
func runPipeline(tb testing.TB, pg *pgconn.PgConn, q benchSeq, k int) {
	p := pg.StartPipeline(context.Background())
	n := 0
	for range k {
		n += q.send(p)
	}
	if err := p.Flush(); err != nil {
		tb.Error(err)
		return
	}
	for range n {
		res, err := p.GetResults()
		if err != nil {
			tb.Error(err)
			break
		}
		if rr, ok := res.(*pgconn.ResultReader); ok {
			if _, err := rr.Close(); err != nil {
				tb.Error(err)
				break
			}
		}
	}
	if err := p.Close(); err != nil {
		tb.Error(err)
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
