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
	"strconv"
	"strings"
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
	flag.IntVar(&o.pgConns, "pg-conns", 64, "connections of the direct pgx baselines' pool")
	flag.StringVar(&o.pprofDir, "pprof", "", "write a CPU profile of the worker for each path through one into this folder (<path>.pprof)")
	only := flag.String("only", "", "measure only these paths, comma-separated: a group (select1, rows100, rows10k, ratelimit, lock, cache, stream) or words of a path's name; prints the report and writes no file")
	callers := flag.String("callers", "1,16,64", "the concurrencies measured, comma-separated")
	noopURL := flag.String("noop", "", "internal: serve the no-op endpoint on this NATS URL (a process of its own, like a worker)")
	noopSize := flag.Int("noop-size", 100, "internal: the no-op answer's size")
	flag.Parse()
	var err error
	if o.callers, err = parseCallers(*callers); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if *only != "" {
		o.only = map[string]bool{}
		for _, w := range strings.Split(*only, ",") {
			if w = strings.TrimSpace(w); w != "" {
				o.only[w] = true
			}
		}
	}
	if o.pprofDir != "" {
		if err := os.MkdirAll(o.pprofDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
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
	// only, when not nil, names the groups or words of path names measured.
	only map[string]bool
	// callers are the concurrencies measured.
	callers  []int
	pgConns  int
	pprofDir string
}

// selects reports whether -only takes path p: its group, or a word of it
// that its name contains.
func (o options) selects(p path) bool {
	if o.only == nil || o.only[p.group] {
		return true
	}
	for w := range o.only {
		if strings.Contains(p.name, w) {
			return true
		}
	}
	return false
}

func parseCallers(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-callers %q: want positive numbers separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}
