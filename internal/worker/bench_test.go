package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/procstat"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
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

// BenchmarkServeEmbeddingMGet is cache.embedding mget of 32 cached vectors
// of 384 dimensions through a worker in this process, serially, answered as
// JSON arrays and as base64 (encoding f32le), on each state backend.
func BenchmarkServeEmbeddingMGet(b *testing.B) {
	for _, backend := range []string{"memory", "redis"} {
		bb := setup(b, backends[backend])
		hashes := make([]string, 32)
		blobs := make([]state.Blob, len(hashes))
		rng := rand.New(rand.NewPCG(1, 1))
		for i := range hashes {
			v := make([]float64, 384)
			for j := range v {
				v[j] = rng.NormFloat64() / 20 // as a unit-norm embedding's values
			}
			packed, err := state.PackVector(v)
			require.NoError(b, err)
			hashes[i] = fmt.Sprintf("bench-%02d", i)
			blobs[i] = state.Blob{Key: hashes[i], Value: packed}
		}
		require.NoError(b, bb.state.SetBlobs(context.Background(), blobs, time.Hour))
		for _, enc := range []string{messages.EncodingJSON, messages.EncodingF32LE} {
			body, err := json.Marshal(messages.EmbeddingRequest{Op: messages.OpMGet, Hashes: hashes, Encoding: enc})
			require.NoError(b, err)
			b.Run(backend+"/"+enc, func(b *testing.B) {
				b.ReportAllocs()
				var n int
				for b.Loop() {
					msg, err := bb.nc.Request(bb.sub.Of(subjects.CacheEmbedding), body, 5*time.Second)
					if err != nil {
						b.Fatal(err)
					}
					if msg.Header.Get("Nats-Service-Error-Code") != "" {
						b.Fatalf("%.300s", msg.Data)
					}
					n = len(msg.Data)
				}
				b.ReportMetric(float64(n), "answer-bytes")
			})
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
