package main

import (
	"fmt"
	"math"
	"os"
	"strings"
)

type report struct {
	Env      environment `json:"environment"`
	Duration string      `json:"duration_per_point"`
	Callers  []int       `json:"callers"`
	MaxRSSMB float64     `json:"max_worker_rss_mb"`
	Results  []result    `json:"results"`
	// Stream is the large-result paths (stream.go).
	Stream []streamResult `json:"large_results"`
}

func (r report) find(path string, c int) (result, bool) {
	for _, x := range r.Results {
		if x.Path == path && x.Concurrency == c {
			return x, true
		}
	}
	return result{}, false
}

var groups = []struct{ key, title string }{
	{"select1", "db.execute SELECT 1"},
	{"rows100", "db.execute 100 rows x 6 columns"},
	{"rows10k", "db.execute 10,000 rows x 6 columns"},
	{"ratelimit", "state.ratelimit"},
	{"lock", "state.lock acquire + release"},
	{"cache", "cache.embedding"},
}

func markdown(r report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run %s on %d cores (%s), %s; PostgreSQL %s, Redis %s, nats-server %s (a process of its own). Each point: %s of calls after a warm-up; latency is per call as the caller sees it. CPU is each process's time on a CPU during a point (/proc), divided by the calls answered.\n\n",
		r.Env.Date, r.Env.Cores, r.Env.CPU, r.Env.Go, r.Env.Postgres, r.Env.Redis, r.Env.NATS, r.Duration)
	conc := r.Callers
	if len(conc) == 0 {
		conc = []int{1, 16, 64}
	}
	top := conc[len(conc)-1]
	for _, g := range groups {
		if !r.has(g.key) {
			continue
		}
		fmt.Fprintf(&b, "### %s\n\n| path |", g.title)
		for i, c := range conc {
			if i == 0 {
				fmt.Fprintf(&b, " %s: ops/s, p50, p99 |", callersWord(c))
			} else {
				fmt.Fprintf(&b, " %s |", callersWord(c))
			}
		}
		fmt.Fprintf(&b, " worker RSS at %d |\n|---|%s---|\n", top, strings.Repeat("---|", len(conc)))
		var worker, base []string
		seen := map[string]bool{}
		for _, x := range r.Results {
			if x.Group != g.key || seen[x.Path] {
				continue
			}
			seen[x.Path] = true
			if x.Baseline {
				base = append(base, x.Path)
			} else {
				worker = append(worker, x.Path)
			}
			fmt.Fprintf(&b, "| %s%s |", x.Path, map[bool]string{true: " *(baseline)*", false: ""}[x.Baseline])
			for _, c := range conc {
				p, _ := r.find(x.Path, c)
				fmt.Fprintf(&b, " %s/s, %s, %s |", human(p.OpsPerSec), us(p.P50us), us(p.P99us))
			}
			if p, _ := r.find(x.Path, top); p.RSSMB > 0 {
				fmt.Fprintf(&b, " %.0f MB |", p.RSSMB)
			} else {
				b.WriteString(" |")
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
		r.cpuTable(&b, g.key, conc)
		fmt.Fprintf(&b, "\nThroughput as a share of each baseline (%s callers):\n\n", joinInts(conc, " / "))
		for _, w := range worker {
			for _, bl := range base {
				fmt.Fprintf(&b, "- %s vs %s:", w, bl)
				for _, c := range conc {
					x, _ := r.find(w, c)
					y, _ := r.find(bl, c)
					fmt.Fprintf(&b, " %s", pct(x.OpsPerSec, y.OpsPerSec))
				}
				b.WriteString("\n")
			}
		}
		b.WriteString("\n")
	}
	if len(r.Stream) > 0 {
		b.WriteString(streamMarkdown(r))
	}
	r.targets(&b)
	b.WriteString("\n![throughput and p99 against callers](benchmarks.svg)\n")
	return b.String()
}

func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func us(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f ms", v/1000)
	}
	return fmt.Sprintf("%.0f µs", v)
}

func pct(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f%%", 100*a/b)
}

const (
	beginMark = "<!-- bench:begin (written by make bench; edit outside these marks) -->"
	endMark   = "<!-- bench:end -->"
)

// writeMarkdown puts the generated section between the marks of path,
// keeping the hand-written analysis around it.
func writeMarkdown(path, generated string) error {
	old, err := os.ReadFile(path)
	body := string(old)
	section := beginMark + "\n" + generated + "\n" + endMark
	if err != nil || !strings.Contains(body, beginMark) || !strings.Contains(body, endMark) {
		body = "# Benchmarks\n\n" + section + "\n"
	} else {
		body = body[:strings.Index(body, beginMark)] + section + body[strings.Index(body, endMark)+len(endMark):]
	}
	return os.WriteFile(path, []byte(body), 0o644)
}

// chart draws throughput, p99 and the service's CPU per request against
// callers for the main paths, as SVG.
func chart(results []result, conc []int) string {
	paths := []string{"db.execute SELECT 1", "no-op micro endpoint (NATS ceiling)", "direct pgx SELECT 1",
		"state.ratelimit (memory)", "state.ratelimit (redis)", "db.execute 100 rows (arrays)"}
	colors := []string{"#1f77b4", "#7f7f7f", "#2ca02c", "#d62728", "#ff7f0e", "#9467bd"}
	get := func(p string, c int, f func(result) float64) float64 {
		for _, r := range results {
			if r.Path == p && r.Concurrency == c {
				return f(r)
			}
		}
		return 0
	}
	const w, h, pad = 420.0, 260.0, 50.0
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`, int(3*w+60), int(h+140))
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>`)
	panel := func(x0 float64, title string, f func(result) float64, unit string) {
		maxV := 0.0
		for _, p := range paths {
			for _, c := range conc {
				maxV = math.Max(maxV, get(p, c, f))
			}
		}
		if maxV == 0 {
			maxV = 1
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="20" font-size="13">%s</text>`, x0+pad, title)
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`, x0+pad, h, x0+w, h)
		fmt.Fprintf(&b, `<line x1="%.0f" y1="30" x2="%.0f" y2="%.0f" stroke="black"/>`, x0+pad, x0+pad, h)
		for i, c := range conc {
			x := x0 + pad + float64(i)*(w-pad-20)/float64(max(len(conc)-1, 1))
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">%d</text>`, x, h+15, c)
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">callers</text>`, x0+w/2+pad/2, h+30)
		for i := 0; i <= 4; i++ {
			v := maxV * float64(i) / 4
			y := h - (h-30)*float64(i)/4
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end">%s</text>`, x0+pad-4, y+4, unitFmt(v, unit))
		}
		for pi, p := range paths {
			seen := false
			for _, c := range conc {
				seen = seen || get(p, c, f) != 0
			}
			if !seen {
				continue // not measured, or no such process (a direct baseline's service CPU)
			}
			var pts []string
			for i, c := range conc {
				x := x0 + pad + float64(i)*(w-pad-20)/float64(max(len(conc)-1, 1))
				y := h - (h-30)*get(p, c, f)/maxV
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, x, y, colors[pi])
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`, strings.Join(pts, " "), colors[pi])
		}
	}
	panel(0, "throughput (ops/s)", func(r result) float64 { return r.OpsPerSec }, "ops")
	panel(w+20, "p99 latency", func(r result) float64 { return r.P99us }, "us")
	panel(2*w+40, "CPU per request of the worker (or no-op endpoint)", func(r result) float64 {
		if r.CPU == nil {
			return 0
		}
		return r.CPU.Service
	}, "us")
	for i, p := range paths {
		y := h + 55 + float64(i)*13
		fmt.Fprintf(&b, `<rect x="60" y="%.0f" width="10" height="10" fill="%s"/><text x="76" y="%.0f">%s</text>`, y-9, colors[i], y, p)
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func unitFmt(v float64, unit string) string {
	if unit == "us" {
		return us(v)
	}
	return human(v)
}

// streamMarkdown is the section of the large-result paths.
func streamMarkdown(r report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s rows x 4 columns, read whole (best of 3 runs)\n\n", human(float64(bigRows)))
	b.WriteString("Through a worker of its own, started for these paths: its peak RSS (VmHWM, reset before each run) is the stream's.\n\n")
	b.WriteString("| path | time | rows/s | MB read | worker peak RSS |\n|---|---|---|---|---|\n")
	for _, x := range r.Stream {
		rate, size, rss := "", "", ""
		if x.Rows > 0 {
			rate = human(float64(x.Rows)/x.Seconds) + "/s"
		}
		if x.Bytes > 0 {
			size = fmt.Sprintf("%.0f", float64(x.Bytes)/1e6)
		}
		if x.PeakRSSMB > 0 {
			rss = fmt.Sprintf("%.0f MB", x.PeakRSSMB)
		}
		took := ""
		if x.Seconds > 0 {
			took = fmt.Sprintf("%.2f s", x.Seconds)
		}
		fmt.Fprintf(&b, "| %s%s | %s | %s | %s | %s |\n", x.Path, map[bool]string{true: " *(baseline)*", false: ""}[x.Baseline], took, rate, size, rss)
	}
	b.WriteString("\n")
	return b.String()
}

// streamPeak is the highest worker peak RSS over the large-result paths,
// and whether there were any.
func (r report) streamPeak() (bool, float64) {
	peak := 0.0
	for _, x := range r.Stream {
		peak = max(peak, x.PeakRSSMB)
	}
	return len(r.Stream) > 0, peak
}
