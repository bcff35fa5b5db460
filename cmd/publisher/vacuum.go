package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// vacuum queues a VACUUM job and, with --wait, follows it to its result.
func (c *cli) vacuum(ctx context.Context, cmd *vacuumCmd) int {
	analyze := !cmd.NoAnalyze
	req := messages.VacuumRequest{Table: cmd.Table, Schema: cmd.Schema, Full: cmd.Full, Verbose: cmd.Verbose, Analyze: &analyze, JobID: nuid.Next()}
	nc, js, err := c.connect(zerolog.Nop())
	if err != nil {
		return c.fail(exitFailed, "%v", err)
	}
	defer nc.Close()
	if err := maintenance.SetupStreams(ctx, js, c.maintenanceConfig()); err != nil {
		return c.fail(exitFailed, "%v", err)
	}
	var w *watch
	if cmd.Wait {
		// Listen before publishing, so neither progress nor the result is missed.
		if w, err = c.watch(ctx, nc, js, req.JobID); err != nil {
			return c.fail(exitFailed, "%v", err)
		}
		defer w.close()
	}
	ack, err := c.queue(ctx, js, &req)
	if err != nil {
		return c.fail(exitFailed, "queue job: %v", err)
	}
	if w == nil {
		out, _ := json.Marshal(messages.JobAccepted{JobID: req.JobID, Stream: ack.Stream, Sequence: ack.Sequence})
		fmt.Fprintln(c.stdout, string(out))
		return exitOK
	}
	fmt.Fprintf(c.stderr, "queued job %s (DB_JOBS #%d)\n", req.JobID, ack.Sequence)
	return c.follow(ctx, w, cmd.Timeout)
}

// queue publishes a VACUUM job to DB_JOBS, its id as Nats-Msg-Id: the one
// place the publisher queues a VACUUM.
func (c *cli) queue(ctx context.Context, js jetstream.JetStream, req *messages.VacuumRequest) (*jetstream.PubAck, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	return js.Publish(ctx, c.cfg.Subjects().Of(subjects.DBVacuumJobs), body, jetstream.WithMsgID(req.JobID))
}

// watch listens for one job's progress events and result.
type watch struct {
	jobID    string
	js       jetstream.JetStream
	progress *nats.Subscription
	events   chan *nats.Msg
	stream   string // DB_VACUUM, read one message at a time from next on
	filter   string
	next     uint64
}

// watch starts listening for job's progress and notes where DB_VACUUM
// ends now, before the job is queued.
func (c *cli) watch(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, jobID string) (*watch, error) {
	subs := c.cfg.Subjects()
	w := &watch{jobID: jobID, js: js, events: make(chan *nats.Msg, 64),
		stream: maintenance.StreamName(subs, maintenance.StreamVacuum), filter: subs.Of("db.vacuum.results.>")}
	var err error
	if w.progress, err = nc.ChanSubscribe(subs.Of("db.vacuum.progress.*"), w.events); err != nil {
		return nil, fmt.Errorf("subscribe to progress: %w", err)
	}
	// Results are read one message at a time from where DB_VACUUM ends now
	// (readers may create no consumer; maintenance/read.go).
	st, err := js.Stream(ctx, w.stream)
	if err != nil {
		_ = w.progress.Unsubscribe()
		return nil, fmt.Errorf("read %s: %w", w.stream, err)
	}
	w.next = st.CachedInfo().State.LastSeq + 1
	return w, nil
}

func (w *watch) close() { _ = w.progress.Unsubscribe() }

// result reads the results stored since the last call and returns the
// job's, if it is among them.
func (w *watch) result(ctx context.Context) (*messages.VacuumResult, error) {
	bodies, next, err := maintenance.ResultsAfter(ctx, w.js, w.stream, w.filter, w.next, 0)
	w.next = next
	for _, b := range bodies {
		var r messages.VacuumResult
		if json.Unmarshal(b, &r) == nil && r.JobID == w.jobID {
			return &r, nil
		}
	}
	return nil, err
}

// follow shows the job's progress until its result is in, and prints it.
func (c *cli) follow(ctx context.Context, w *watch, timeout time.Duration) int {
	results := time.NewTicker(250 * time.Millisecond)
	defer results.Stop()
	shown := newProgress(c.stderr)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		select {
		case m := <-w.events:
			var p messages.VacuumProgress
			if json.Unmarshal(m.Data, &p) == nil && p.JobID == w.jobID {
				shown.show(p)
			}
		case <-results.C:
			r, err := w.result(ctx)
			if err != nil && ctx.Err() == nil {
				fmt.Fprintf(c.stderr, "reading results: %v\n", err)
			}
			if r == nil {
				continue
			}
			shown.finish(r.Status)
			out, _ := json.MarshalIndent(r, "", "  ")
			fmt.Fprintln(c.stdout, string(out))
			switch r.Status {
			case messages.StatusOK:
				return exitOK
			case messages.StatusSkipped:
				return exitSkipped
			}
			return exitFailed
		case <-ctx.Done():
			shown.endBar()
			if context.Cause(ctx) == context.DeadlineExceeded {
				return c.fail(exitTimeout, "no result for job %s within %s (it stays queued)", w.jobID, timeout)
			}
			return c.fail(exitTimeout, "interrupted; job %s stays queued", w.jobID)
		}
	}
}
