package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/natsserver"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// TestLoadMixed: 64 callers mixing execute, ratelimit, lock and cache calls
// for LOAD_DURATION (5s by default; 60s for the long form). No unexpected
// errors; goroutines back to their baseline afterwards.
func TestLoadMixed(t *testing.T) {
	d := 5 * time.Second
	if v := os.Getenv("LOAD_DURATION"); v != "" {
		var err error
		d, err = time.ParseDuration(v)
		require.NoError(t, err)
	}
	b := setup(t, func(o *options) { o.maxConcurrent = 64; o.maxConns = 16 })
	b.pg.Exec(t, "CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 1000) g")
	b.ok(`{"op":"set","hash":"h","vector":[1,2,3]}`, subjects.CacheEmbedding)
	baseline := runtime.NumGoroutine()

	calls := []struct{ subject, body string }{
		{subjects.DBExecute, `{"sql":"SELECT id, v FROM items WHERE id <= :n","params":{"n":20}}`},
		{subjects.DBExecute, `{"op":"one","sql":"SELECT count(*) FROM items"}`},
		{subjects.StateRateLimit, `{"key":"load","limit":1000000000,"window_ms":1000}`},
		{subjects.StateLock, `{"op":"status","key":"load"}`},
		{subjects.CacheEmbedding, `{"op":"get","hash":"h"}`},
	}
	var sent, answered, failed atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for n := i; time.Now().Before(deadline); n++ {
				c := calls[n%len(calls)]
				sent.Add(1)
				start := time.Now()
				msg, err := b.nc.Request(b.sub.Of(c.subject), []byte(c.body), 10*time.Second)
				if err != nil || msg.Header.Get("Nats-Service-Error-Code") != "" {
					failed.Add(1)
					continue
				}
				mine = append(mine, time.Since(start))
				answered.Add(1)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p99 := lat[len(lat)*99/100]
	t.Logf("load: %d sent, %d answered, %d failed in %s (%.0f/s), p50 %s, p99 %s, goroutines %d before",
		sent.Load(), answered.Load(), failed.Load(), d, float64(answered.Load())/d.Seconds(), lat[len(lat)/2], p99, baseline)
	require.Zero(t, failed.Load(), "no unexpected errors")
	require.Equal(t, sent.Load(), answered.Load(), "nothing lost")
	// Bounded, not one per request (26,000 of them): at most one per caller
	// in flight, plus the goroutines the pool keeps idle for the next
	// requests (at most its max; a request that arrives just before an
	// idle one is ready starts another, which then stays idle); they end
	// with the worker.
	require.LessOrEqual(t, runtime.NumGoroutine(), baseline+64+int(b.w.goPool.max)+10, "goroutines stay bounded")
	require.NoError(t, b.w.Stop(context.Background()))
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= baseline }, 10*time.Second, 50*time.Millisecond,
		"goroutines back to baseline: %d now, %d before", runtime.NumGoroutine(), baseline)
}

// TestNATSRestart: the server restarts on the same port with the same
// JetStream store; the worker reconnects and answers again, and no job or
// stored result is lost.
func TestNATSRestart(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	store := t.TempDir()
	ns, err := natsserver.Start(natsserver.Options{Port: port, StoreDir: store})
	require.NoError(t, err)
	b := &bundle{t: t, pg: pg, ns: ns}
	b.nc, err = nats.Connect(ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(b.nc.Close)
	b.sub, _ = subjects.New("")
	_, w := b.startWorker(t, "w1", options{maxConns: 4, acquire: 5 * time.Second, mode: "read_write", maxRows: 100, maxConcurrent: 8, maintenance: true})
	pg.Exec(t, "CREATE TABLE r (x int); CREATE TABLE r2 (x int)")

	js, err := jetstream.New(b.nc)
	require.NoError(t, err)
	ctx := context.Background()
	const jobs = 5
	for i := 0; i < jobs; i++ {
		_, err := js.Publish(ctx, "db.vacuum.jobs", []byte(`{"table":"r"}`), jetstream.WithMsgID(fmt.Sprint("restart-job-", i)))
		require.NoError(t, err)
	}
	b.ok(`{"table":"r2"}`, subjects.DBVacuum) // one stored result before the restart

	ns.Shutdown()
	ns.WaitForShutdown()
	down := time.Now()
	ns, err = natsserver.Start(natsserver.Options{Port: port, StoreDir: store})
	require.NoError(t, err)
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	require.Eventually(t, func() bool {
		msg, err := b.nc.Request("db.execute", []byte(`{"sql":"SELECT 1"}`), 500*time.Millisecond)
		return err == nil && msg.Header.Get("Nats-Service-Error-Code") == ""
	}, 20*time.Second, 50*time.Millisecond)
	t.Logf("answers resumed %s after the server went down", time.Since(down).Round(10*time.Millisecond))

	// Every job has a result, and the result stored before the restart is there.
	stream, err := js.Stream(ctx, maintenance.StreamVacuum)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return false
		}
		batch, err := cons.FetchNoWait(100)
		if err != nil {
			return false
		}
		jobsDone, sync := map[string]bool{}, 0
		for m := range batch.Messages() {
			var r messages.VacuumResult
			if json.Unmarshal(m.Data(), &r) == nil {
				if r.JobID != "" {
					jobsDone[r.JobID] = true
				} else {
					sync++
				}
			}
		}
		return len(jobsDone) == jobs && sync == 1
	}, 30*time.Second, 200*time.Millisecond, "every job yields a result and nothing stored is lost")
	require.NoError(t, w.Stop(ctx)) // while the server still runs
}
