package worker

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

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
	svc, err := micro.AddService(bb.nc, micro.Config{Name: "noop", Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{Subject: "noop", Handler: micro.HandlerFunc(func(r micro.Request) { _ = r.Respond([]byte(`{"x":1}`)) })}})
	require.NoError(b, err)
	defer svc.Stop()
	nc2 := bb.nc
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := nc2.Request("noop", []byte(`{"sql":"SELECT 1"}`), 5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}
