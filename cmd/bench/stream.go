package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/jeeves-avionics/dbworker/pkg/client"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// bigRows is the size of the large-result table: about 95 bytes of JSON a
// row as objects, so about 95 MB in all.
const bigRows = 1_000_000

// bigSetup makes the table the large-result paths read.
const bigSetup = `CREATE TABLE big AS SELECT g::int8 AS id, 'name-' || g AS name, g * 1.5::float8 AS score, gen_random_uuid() AS uid
	FROM generate_series(1, %d) g; ANALYZE big`

// streamResult is one path reading every row of big, its best time over
// the runs and, through a worker, the worker's peak RSS.
type streamResult struct {
	Path      string  `json:"path"`
	Baseline  bool    `json:"baseline"`
	Rows      int64   `json:"rows"`
	Bytes     int64   `json:"bytes"` // JSON bytes read (worker paths), or COPY's text
	Seconds   float64 `json:"seconds"`
	PeakRSSMB float64 `json:"worker_peak_rss_mb,omitempty"`
}

// benchStream measures 1M rows streamed end to end through a worker of its
// own (so that its peak RSS is the stream's), against pgx reading the same
// rows and COPY ... TO STDOUT, and a caller that stops granting credit.
func benchStream(ctx context.Context, start func(prefix string, env ...string) (*exec.Cmd, error), natsURL string, pool *pgxpool.Pool, runs int) ([]streamResult, error) {
	if _, err := pool.Exec(ctx, fmt.Sprintf(bigSetup, bigRows)); err != nil {
		return nil, err
	}
	w, err := start("stream.")
	if err != nil {
		return nil, fmt.Errorf("start the streaming worker: %w", err)
	}
	defer stopProcess(w)
	pid := w.Process.Pid
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	if err := waitFor(ctx, nc, "stream.db.health"); err != nil {
		return nil, err
	}
	c, err := client.New(nc, client.WithPrefix("stream"), client.WithTimeout(5*time.Minute))
	if err != nil {
		return nil, err
	}
	const sql = "SELECT id, name, score, uid FROM big"
	long := client.WithStatementTimeout(5 * time.Minute)
	readRows := func(scan bool, opts ...client.QueryOption) func(context.Context) (int64, int64, error) {
		return func(ctx context.Context) (int64, int64, error) {
			rows, err := c.QueryStream(ctx, sql, nil, append(opts, long)...)
			if err != nil {
				return 0, 0, err
			}
			defer rows.Close()
			var n, size int64
			var row struct {
				ID    int64   `json:"id"`
				Name  string  `json:"name"`
				Score float64 `json:"score"`
				UID   string  `json:"uid"`
			}
			for rows.Next() {
				n++
				size += int64(len(rows.RawRow()))
				if scan {
					if err := rows.Scan(&row); err != nil {
						return n, size, err
					}
				}
			}
			return n, size, rows.Err()
		}
	}
	paths := []struct {
		name     string
		baseline bool
		fn       func(context.Context) (int64, int64, error)
	}{
		{"db.execute streamed, objects (pkg/client Rows, raw rows)", false, readRows(false)},
		{"db.execute streamed, arrays (pkg/client Rows, raw rows)", false, readRows(false, client.WithArrayRows())},
		{"db.execute streamed, objects (pkg/client Rows.Scan into a struct)", false, readRows(true)},
		{"pgx Query, rows.Values()", true, func(ctx context.Context) (int64, int64, error) {
			rows, err := pool.Query(ctx, sql)
			if err != nil {
				return 0, 0, err
			}
			defer rows.Close()
			var n int64
			for rows.Next() {
				if _, err := rows.Values(); err != nil {
					return n, 0, err
				}
				n++
			}
			return n, 0, rows.Err()
		}},
		{"COPY (SELECT ...) TO STDOUT (text, to io.Discard)", true, func(ctx context.Context) (int64, int64, error) {
			conn, err := pool.Acquire(ctx)
			if err != nil {
				return 0, 0, err
			}
			defer conn.Release()
			cw := &countingWriter{}
			tag, err := conn.Conn().PgConn().CopyTo(ctx, cw, "COPY ("+sql+") TO STDOUT")
			return tag.RowsAffected(), cw.n, err
		}},
	}
	out := []streamResult{{Path: "the worker at rest, after start", PeakRSSMB: rssMB(pid)}}
	for _, p := range paths {
		r := streamResult{Path: p.name, Baseline: p.baseline}
		for i := 0; i < runs; i++ {
			if err := resetPeakRSS(pid); err != nil {
				return nil, err
			}
			t := time.Now()
			n, size, err := p.fn(ctx)
			d := time.Since(t).Seconds()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.name, err)
			}
			if n != bigRows {
				return nil, fmt.Errorf("%s: %d rows, want %d", p.name, n, bigRows)
			}
			if r.Seconds == 0 || d < r.Seconds {
				r.Seconds = d
			}
			r.Rows, r.Bytes = n, size
			if !p.baseline {
				r.PeakRSSMB = max(r.PeakRSSMB, peakRSSMB(pid))
			}
		}
		fmt.Fprintf(os.Stderr, "%-66s %6.2fs  %6.0f MB  worker peak %4.0f MB\n", r.Path, r.Seconds, float64(r.Bytes)/1e6, r.PeakRSSMB)
		out = append(out, r)
	}
	slow, err := slowReader(ctx, nc, pid, sql)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "%-66s %6.2fs  worker peak %4.0f MB\n", slow.Path, slow.Seconds, slow.PeakRSSMB)
	return append(out, slow), nil
}

// slowReader starts a stream with a window of one message, reads that
// message and grants nothing for 5 seconds, sampling the worker's RSS, then
// cancels: the worker holds one message's worth of the result, not the
// result.
func slowReader(ctx context.Context, nc *nats.Conn, pid int, sql string) (streamResult, error) {
	r := streamResult{Path: "a caller that reads one message and grants no credit for 5 s"}
	if err := resetPeakRSS(pid); err != nil {
		return r, err
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return r, err
	}
	defer sub.Unsubscribe()
	msg := nats.NewMsg("stream.db.execute")
	msg.Reply, msg.Data = inbox, []byte(`{"sql":"`+sql+`","timeout_ms":60000}`)
	msg.Header.Set(messages.HeaderStreamWindow, "1")
	if err := nc.PublishMsg(msg); err != nil {
		return r, err
	}
	first, err := sub.NextMsg(time.Minute)
	if err != nil {
		return r, err
	}
	r.Bytes = int64(len(first.Data))
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		r.PeakRSSMB = max(r.PeakRSSMB, rssMB(pid))
	}
	r.Seconds = time.Since(start).Seconds()
	r.PeakRSSMB = max(r.PeakRSSMB, peakRSSMB(pid))
	return r, nc.Publish(first.Header.Get(messages.HeaderStreamCredit), []byte(`{"cancel":true}`))
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

var _ io.Writer = (*countingWriter)(nil)

// resetPeakRSS resets a process's peak RSS (VmHWM) to its current RSS.
func resetPeakRSS(pid int) error {
	if err := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("reset the worker's peak RSS: %w", err)
	}
	return nil
}

// peakRSSMB reads a process's peak resident set size (VmHWM).
func peakRSSMB(pid int) float64 { return memoryMB(pid, "VmHWM") }
