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
)

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 2*time.Second, "measuring time of each path at each concurrency")
	flag.StringVar(&o.out, "out", "docs", "folder for benchmarks.md, .json and .svg")
	flag.StringVar(&o.workerBin, "worker", "bin/worker", "the worker binary")
	flag.StringVar(&o.pgURL, "postgres", envOr("POSTGRES_URL", "postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL URL")
	flag.StringVar(&o.redisURL, "redis", envOr("REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis URL")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
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
}
