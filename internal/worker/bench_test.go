package worker

import (
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/procstat"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
)

// BenchmarkServeSelect1 is db.execute SELECT 1 through a worker in this
// process, serially; BenchmarkServeNoop is a micro endpoint answering at once
// on the same server: their difference is the worker's own cost.
func BenchmarkServeSelect1(b *testing.B) {
	bb := setup(b)
	body := []byte(`{"sql":"SELECT 1"}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := bb.nc.Request(bb.sub.Of(subjects.DBExecute), body, 5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkServeNoop(b *testing.B) {
	bb := setup(b)
	noop(b, bb)
	nc2 := bb.nc
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := nc2.Request("noop", []byte(`{"sql":"SELECT 1"}`), 5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeRateLimit is state.ratelimit (memory backend) through a
// worker in this process from 16 callers; BenchmarkServeNoopParallel is a
// micro endpoint answering at once, the same way. cpu-µs/op is this
// process's CPU (worker, embedded nats-server and callers) per request.
func BenchmarkServeRateLimit(b *testing.B) {
	bb := setup(b)
	parallel(b, bb, bb.sub.Of(subjects.StateRateLimit), []byte(`{"key":"bench","limit":1000000000,"window_ms":1000}`))
}

func BenchmarkServeNoopParallel(b *testing.B) {
	bb := setup(b)
	noop(b, bb)
	parallel(b, bb, "noop", []byte(`{"key":"bench","limit":1000000000,"window_ms":1000}`))
}

// noop serves a micro endpoint on subject noop that answers at once, until
// the benchmark ends.
func noop(b *testing.B, bb *bundle) {
	svc, err := micro.AddService(bb.nc, micro.Config{Name: "noop", Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{Subject: "noop", Handler: micro.HandlerFunc(func(r micro.Request) { _ = r.Respond([]byte(`{"x":1}`)) })}})
	require.NoError(b, err)
	b.Cleanup(func() { _ = svc.Stop() })
}

func parallel(b *testing.B, bb *bundle, subject string, body []byte) {
	b.ReportAllocs()
	b.SetParallelism(8) // 16 callers on 2 cores
	before, _ := procstat.CPU(os.Getpid())
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := bb.nc.Request(subject, body, 5*time.Second); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	after, _ := procstat.CPU(os.Getpid())
	b.ReportMetric(float64((after-before).Microseconds())/float64(b.N), "cpu-µs/op")
}
