package main

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// result is one path at one concurrency.
type result struct {
	Path        string  `json:"path"`
	Group       string  `json:"group"`
	Baseline    bool    `json:"baseline"`
	Concurrency int     `json:"concurrency"`
	Ops         int64   `json:"ops"`
	Errors      int64   `json:"errors"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	P50us       float64 `json:"p50_us"`
	P99us       float64 `json:"p99_us"`
	RSSMB       float64 `json:"worker_rss_mb,omitempty"`
	// CPU is each process's CPU time per request (cpu.go).
	CPU *cpuPerRequest `json:"cpu_us_per_request,omitempty"`
}

// measure runs fn from conc goroutines for d (after a short warm-up) and
// reports throughput and latency percentiles. Every call's latency is kept
// (bounded by the run's length), so percentiles are exact. cpu, when not
// nil, is called as the measured calls begin, and what it returns as they
// end, with the number of calls answered.
func measure(ctx context.Context, conc int, d time.Duration, fn func(context.Context) error, cpu func() func(int64) *cpuPerRequest) result {
	warm, cancelWarm := context.WithTimeout(ctx, d/5)
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for warm.Err() == nil {
				_ = fn(warm)
			}
		}()
	}
	wg.Wait()
	cancelWarm()

	var ops, errs atomic.Int64
	lat := make([][]time.Duration, conc)
	var cpuDone func(int64) *cpuPerRequest
	if cpu != nil {
		cpuDone = cpu()
	}
	deadline := time.Now().Add(d)
	start := time.Now()
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t := time.Now()
				if err := fn(ctx); err != nil {
					errs.Add(1)
					continue
				}
				lat[i] = append(lat[i], time.Since(t))
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var used *cpuPerRequest
	if cpuDone != nil {
		used = cpuDone(ops.Load())
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(p*float64(len(all)-1))].Nanoseconds()) / 1e3
	}
	return result{Concurrency: conc, Ops: ops.Load(), Errors: errs.Load(), OpsPerSec: float64(ops.Load()) / elapsed.Seconds(), P50us: pct(0.50), P99us: pct(0.99), CPU: used}
}
