package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// events is a VACUUM as the worker reports it, one event a second: waiting,
// a scan of 1000 blocks, an index pass, the heap vacuumed, ANALYZE.
func events() []messages.VacuumProgress {
	ev := []messages.VacuumProgress{{Phase: "waiting"}, {Phase: "initializing"}}
	for i := int64(0); i <= 10; i++ {
		ev = append(ev, messages.VacuumProgress{Phase: "scanning heap", HeapBlksTotal: 1000, HeapBlksScanned: 100 * i})
	}
	ev = append(ev, messages.VacuumProgress{Phase: "vacuuming indexes", HeapBlksTotal: 1000, HeapBlksScanned: 1000})
	for i := int64(0); i <= 8; i++ {
		ev = append(ev, messages.VacuumProgress{Phase: "vacuuming heap", HeapBlksTotal: 1000, HeapBlksScanned: 1000, HeapBlksVacuumed: 125 * i})
	}
	return append(ev, messages.VacuumProgress{Phase: "waiting"}, messages.VacuumProgress{Phase: "done", Done: true})
}

// play shows the events to p, a second apart on its clock.
func play(p *progress) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return at }
	for _, ev := range events() {
		p.show(ev)
		at = at.Add(time.Second)
	}
	p.finish(messages.StatusOK)
}

func TestProgressLines(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf)
	require.False(t, p.tty, "a buffer is not a terminal")
	play(p)
	require.Equal(t, `vacuum: waiting to start, 0s elapsed
vacuum: initializing, 1s elapsed
vacuum: scanning heap (blocks scanned) 0/1000 (0%), 2s elapsed
vacuum: scanning heap (blocks scanned) 500/1000 (50%), 7s elapsed, 100 blocks/s, ETA 5s
vacuum: scanning heap (blocks scanned) 1000/1000 (100%), 12s elapsed, 100 blocks/s, ETA 0s
vacuum: vacuuming indexes, 13s elapsed
vacuum: vacuuming heap (blocks vacuumed) 0/1000 (0%), 14s elapsed
vacuum: vacuuming heap (blocks vacuumed) 625/1000 (62%), 19s elapsed, 125 blocks/s, ETA 3s
vacuum: finishing (ANALYZE), 23s elapsed
vacuum: ok after 25s
`, buf.String())
}

// TestProgressBars draws the same run as on a terminal, with progressbar:
// a bar per counting phase, a spinner for the others, never 0/0.
func TestProgressBars(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf)
	p.tty = true
	play(p)
	out := buf.String()
	require.NotContains(t, out, "0/0")
	require.Contains(t, out, "scanning heap (blocks scanned)")
	require.Contains(t, out, "vacuuming heap (blocks vacuumed)")
	require.Contains(t, out, "1000/1000")
	require.Contains(t, out, "blocks/s")
	require.Contains(t, out, "\r", "redrawn in place")
	require.True(t, strings.HasSuffix(out, "vacuum: ok after 25s\n"), out)
}
