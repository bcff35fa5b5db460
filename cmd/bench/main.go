// Command bench measures every path through the worker next to the baseline a
// user would otherwise use, in one run on one machine, and writes
// docs/benchmarks.md, docs/benchmarks.json and docs/benchmarks.svg.
//
//	make bench                    # builds bin/worker and runs this
//	go run ./cmd/bench -duration 1s -out docs
//
// It starts two real workers (bin/worker, with state in memory and in Redis)
// on an embedded nats-server, a no-op micro endpoint (the NATS ceiling) in this
// process, and talks to PostgreSQL and Redis directly for the baselines.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 2*time.Second, "measuring time of each path at each concurrency")
	flag.StringVar(&o.out, "out", "docs", "folder for benchmarks.md, .json and .svg")
	flag.StringVar(&o.workerBin, "worker", "bin/worker", "the worker binary")
	flag.StringVar(&o.pgURL, "postgres", envOr("POSTGRES_URL", "postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL URL")
	flag.BoolVar(&o.streamOnly, "stream-only", false, "measure only the large results and print their section (writes no file)")
	flag.StringVar(&o.redisURL, "redis", envOr("REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis URL")
	noopURL := flag.String("noop", "", "internal: serve the no-op endpoint on this NATS URL (a process of its own, like a worker)")
	noopSize := flag.Int("noop-size", 100, "internal: the no-op answer's size")
	flag.Parse()
	if *noopURL != "" {
		if err := serveNoop(*noopURL, *noopSize); err != nil {
			fmt.Fprintln(os.Stderr, "bench noop:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// serveNoop answers bench.noop at once with a body of size bytes until
// interrupted: the NATS ceiling, in a process of its own as the workers are.
func serveNoop(url string, size int) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	body := make([]byte, size)
	for i := range body {
		body[i] = 'x'
	}
	svc, err := micro.AddService(nc, micro.Config{Name: "noop", Version: "1.0.0", QueueGroup: "noop",
		Endpoint: &micro.EndpointConfig{Subject: "bench.noop", Handler: micro.HandlerFunc(func(r micro.Request) { _ = r.Respond(body) })}})
	if err != nil {
		return err
	}
	defer svc.Stop()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

type options struct {
	duration  time.Duration
	out       string
	workerBin string
	pgURL     string
	redisURL  string
	// streamOnly measures only the large results, for working on them.
	streamOnly bool
}
