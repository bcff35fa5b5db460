package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// lineEvery spaces the plain lines of one phase: a line when the phase
// starts, then at most one per lineEvery.
const lineEvery = 5 * time.Second

// progress shows a VACUUM's progress events. Each phase has its own
// progress: "scanning heap" counts scanned blocks, "vacuuming heap" vacuumed
// ones; the others (waiting, vacuuming indexes, cleaning up...) have no
// count and show only their name and elapsed time, never 0/0.
//
// On a terminal it draws progressbar bars, one per phase, redrawn in place;
// elsewhere (a pipe, a log) it writes plain lines: one as each phase starts,
// then one every lineEvery, each with the count, elapsed time, rate and ETA.
type progress struct {
	w       io.Writer
	tty     bool
	now     func() time.Time
	start   time.Time // of the display, then of the run's first event
	phase   string
	since   time.Time // the current phase began
	done0   int64     // its count when first seen, for the rate
	line    time.Time // the last plain line
	bar     *progressbar.ProgressBar
	started bool
}

func newProgress(w io.Writer) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &progress{w: w, tty: tty, now: time.Now, start: time.Now()}
}

// counted returns the blocks done and the total of ev's phase, and whether
// the phase counts blocks at all.
func counted(ev messages.VacuumProgress) (done, total int64, ok bool) {
	if ev.HeapBlksTotal <= 0 {
		return 0, 0, false
	}
	switch ev.Phase {
	case "scanning heap":
		return ev.HeapBlksScanned, ev.HeapBlksTotal, true
	case "vacuuming heap":
		return ev.HeapBlksVacuumed, ev.HeapBlksTotal, true
	}
	return 0, 0, false
}

// phaseName is what a phase is called on screen. The worker reports
// "waiting" while PostgreSQL shows no VACUUM for the run: before it starts,
// and after it, while ANALYZE runs.
func (p *progress) phaseName(ev messages.VacuumProgress) string {
	switch {
	case ev.Phase == "waiting" && p.phase != "" && p.phase != "waiting to start":
		return "finishing (ANALYZE)"
	case ev.Phase == "waiting":
		return "waiting to start"
	case ev.Phase == "vacuuming indexes" && ev.IndexVacuumCount > 0:
		return fmt.Sprintf("vacuuming indexes (pass %d)", ev.IndexVacuumCount+1)
	case ev.Phase == "scanning heap":
		return "scanning heap (blocks scanned)"
	case ev.Phase == "vacuuming heap":
		return "vacuuming heap (blocks vacuumed)"
	}
	return ev.Phase
}

// show draws one event. The final event (Done) is left to finish.
func (p *progress) show(ev messages.VacuumProgress) {
	if ev.Done {
		return
	}
	now := p.now()
	if !p.started {
		p.start, p.started = now, true
	}
	done, total, isCounted := counted(ev)
	name := p.phaseName(ev)
	if name != p.phase {
		p.endBar()
		p.phase, p.since, p.done0, p.line = name, now, done, time.Time{}
		if p.tty {
			p.bar = p.newBar(name, total, isCounted)
		}
	}
	if p.tty {
		if isCounted {
			_ = p.bar.Set64(done)
		} else {
			_ = p.bar.Add(1) // turns the spinner
		}
		return
	}
	if !p.line.IsZero() && now.Sub(p.line) < lineEvery {
		return
	}
	p.line = now
	if !isCounted {
		fmt.Fprintf(p.w, "vacuum: %s, %s elapsed\n", name, p.elapsed(now))
		return
	}
	msg := fmt.Sprintf("vacuum: %s %d/%d (%d%%), %s elapsed", name, done, total, 100*done/total, p.elapsed(now))
	if d := now.Sub(p.since); d >= time.Second && done > p.done0 {
		rate := float64(done-p.done0) / d.Seconds()
		eta := time.Duration(float64(total-done) / rate * float64(time.Second))
		msg += fmt.Sprintf(", %.0f blocks/s, ETA %s", rate, eta.Round(time.Second))
	}
	fmt.Fprintln(p.w, msg)
}

func (p *progress) elapsed(now time.Time) time.Duration {
	return now.Sub(p.start).Round(100 * time.Millisecond)
}

func (p *progress) newBar(name string, total int64, isCounted bool) *progressbar.ProgressBar {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription(name),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }),
	}
	if !isCounted {
		return progressbar.NewOptions64(-1, append(opts, progressbar.OptionSpinnerType(14))...)
	}
	return progressbar.NewOptions64(total, append(opts,
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("blocks"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetWidth(30),
	)...)
}

// endBar leaves the current phase's bar on its own line.
func (p *progress) endBar() {
	if p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
	}
}

// finish closes the display once the result is in, with the run's
// status: after a short run, which sent no event, the only line.
func (p *progress) finish(status string) {
	p.endBar()
	fmt.Fprintf(p.w, "vacuum: %s after %s\n", status, p.elapsed(p.now()))
}
