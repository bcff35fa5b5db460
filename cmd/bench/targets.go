package main

import (
	"fmt"
	"strconv"
	"strings"
)

// mgetToday is cache.embedding mget 32x384's throughput at 16 callers when
// issue 15 set its target (five times this), in JSON.
const mgetToday = 965.0

const (
	selectPath = "db.execute SELECT 1"
	noopPath   = "no-op micro endpoint (NATS ceiling)"
	pgxPath    = "direct pgx SELECT 1"
	mgetPath   = "cache.embedding mget 32x384 (redis)"
	// mgetBinaryPath is the same mget answered as base64 float32s.
	mgetBinaryPath = "cache.embedding mget 32x384 f32le (redis)"
)

// targets writes the targets' table: each with what this run measured and
// whether it is met. A target whose paths were not measured says so.
func (r report) targets(b *strings.Builder) {
	b.WriteString("### Targets\n\nAll from this run; CPU in µs per request, with the ratio to the process that would do the work without the worker.\n\n| target | measured | met |\n|---|---|---|\n")
	row := func(name, measured string, ok bool) {
		fmt.Fprintf(b, "| %s | %s | %s |\n", name, measured, map[bool]string{true: "yes", false: "**no**"}[ok])
	}
	missing := func(name string) { fmt.Fprintf(b, "| %s | not measured | |\n", name) }
	at := func(path string, c int) (result, bool) {
		x, ok := r.find(path, c)
		return x, ok && x.Ops > 0
	}
	cpuTarget := func(name, path string, max float64, part func(cpuPerRequest) float64, ref, refName string) {
		x, ok := at(path, 16)
		if !ok || x.CPU == nil {
			missing(name)
			return
		}
		v := part(*x.CPU)
		m := fmt.Sprintf("%.1f µs", v)
		if y, ok := at(ref, 16); ok && y.CPU != nil && part(*y.CPU) > 0 {
			m += fmt.Sprintf(" (%.1f× %s's %.1f µs)", v/part(*y.CPU), refName, part(*y.CPU))
		}
		row(name, m, v <= max)
	}
	share := func(name, path, base string, want float64) {
		x, ok1 := at(path, 16)
		y, ok2 := at(base, 16)
		if !ok1 || !ok2 {
			missing(name)
			return
		}
		row(name, fmt.Sprintf("%s (%s/s of %s/s)", pct(x.OpsPerSec, y.OpsPerSec), human(x.OpsPerSec), human(y.OpsPerSec)), x.OpsPerSec >= want*y.OpsPerSec)
	}
	service := func(c cpuPerRequest) float64 { return c.Service }
	pg := func(c cpuPerRequest) float64 { return c.Postgres }

	cpuTarget("db.execute SELECT 1 at 16 callers: worker CPU <= 30 µs/request", selectPath, 30, service, noopPath, "the no-op endpoint")
	cpuTarget("db.execute SELECT 1 at 16 callers: PostgreSQL CPU <= 20 µs/request", selectPath, 20, pg, pgxPath, "direct pgx")
	share("db.execute SELECT 1 at 16 callers >= 50% of the no-op ceiling (the median of 3 runs; this run's)", selectPath, noopPath, 0.5)
	cpuTarget("state.ratelimit (memory) at 16 callers: worker CPU <= 18 µs/request", "state.ratelimit (memory)", 18, service, noopPath, "the no-op endpoint")
	share("state.ratelimit (memory) at 16 callers >= 80% of the ceiling", "state.ratelimit (memory)", noopPath, 0.8)
	share("state.ratelimit (redis) at 16 callers >= 60% of the ceiling", "state.ratelimit (redis)", noopPath, 0.6)
	mgetName := fmt.Sprintf("cache.embedding mget 32x384, binary form, at 16 callers >= 5x %s/s (issue 15's figure)", human(mgetToday))
	if x, ok := at(mgetBinaryPath, 16); ok {
		m := fmt.Sprintf("%s/s (%.1fx)", human(x.OpsPerSec), x.OpsPerSec/mgetToday)
		if y, ok := at(mgetPath, 16); ok {
			m += fmt.Sprintf("; %.1fx this run's JSON form (%s/s)", x.OpsPerSec/y.OpsPerSec, human(y.OpsPerSec))
		}
		row(mgetName, m, x.OpsPerSec >= 5*mgetToday)
	} else {
		missing(mgetName)
	}

	s1, ok1 := at(selectPath, 1)
	n1, ok2 := at(noopPath, 1)
	p1, ok3 := at(pgxPath, 1)
	if name := "serial SELECT 1 p50 within 50 µs of no-op p50 + pgx p50"; ok1 && ok2 && ok3 {
		budget := n1.P50us + p1.P50us + 50
		row(name, fmt.Sprintf("%s vs %s + %s + 50 µs = %s", us(s1.P50us), us(n1.P50us), us(p1.P50us), us(budget)), s1.P50us <= budget)
	} else {
		missing(name)
	}
	for _, form := range []string{"objects", "arrays"} {
		name := "10k rows (" + form + ") end to end no slower than json_agg"
		w, ok1 := at("db.execute 10k rows ("+form+")", 1)
		j, ok2 := at("direct pgx json_agg 10k rows", 1)
		if !ok1 || !ok2 {
			missing(name)
			continue
		}
		row(name, fmt.Sprintf("p50 %s vs %s", us(w.P50us), us(j.P50us)), w.P50us <= j.P50us)
	}
	if rss, ok := at(selectPath, 64); ok {
		row("worker RSS under 100 MB at 64 callers (SELECT 1)", fmt.Sprintf("%.0f MB (%.0f MB at most over every path, 10k-row answers included)", rss.RSSMB, r.MaxRSSMB), rss.RSSMB < 100)
	} else {
		missing("worker RSS under 100 MB at 64 callers (SELECT 1)")
	}
	name := "worker peak RSS under 100 MB streaming 1,000,000 rows (about 95 MB of JSON) end to end"
	if streamed, peak := r.streamPeak(); streamed {
		row(name, fmt.Sprintf("%.0f MB", peak), peak < 100)
	} else {
		missing(name)
	}
}

// cpuTable writes the CPU per request of each process on group's paths, a
// row per path and concurrency.
func (r report) cpuTable(b *strings.Builder, group string, conc []int) {
	b.WriteString("CPU µs per request (service: the worker, or the no-op endpoint's process):\n\n| path | callers | service | nats-server | PostgreSQL | Redis | callers' process | all |\n|---|---|---|---|---|---|---|---|\n")
	seen := map[string]bool{}
	for _, x := range r.Results {
		if x.Group != group || seen[x.Path] {
			continue
		}
		seen[x.Path] = true
		for _, c := range conc {
			p, ok := r.find(x.Path, c)
			if !ok || p.CPU == nil {
				continue
			}
			cu := p.CPU
			svc := fmt.Sprintf("%.1f", cu.Service)
			if cu.Service == 0 {
				svc = ""
			}
			fmt.Fprintf(b, "| %s | %d | %s | %.1f | %.1f | %.1f | %.1f | %.1f |\n", x.Path, c, svc, cu.NATS, cu.Postgres, cu.Redis, cu.Callers, cu.Total())
		}
	}
}

// has reports whether the run measured any path of group.
func (r report) has(group string) bool {
	for _, x := range r.Results {
		if x.Group == group {
			return true
		}
	}
	return false
}

func callersWord(c int) string {
	if c == 1 {
		return "1 caller"
	}
	return strconv.Itoa(c) + " callers"
}

func joinInts(v []int, sep string) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, sep)
}
