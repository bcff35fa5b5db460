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
	if err := maintenance.CreateMissingStreams(ctx, js, c.maintenanceConfig()); err != nil {
		return c.fail(exitFailed, "%v", err)
	}
	if !cmd.Wait {
		ack, err := c.queue(ctx, js, &req)
		if err != nil {
			return c.fail(exitFailed, "queue job: %v", err)
		}
		out, _ := json.Marshal(messages.JobAccepted{JobID: req.JobID, Stream: ack.Stream, Sequence: ack.Sequence})
		fmt.Fprintln(c.stdout, string(out))
		return exitOK
	}

	// Listen before publishing, so neither progress nor the result is missed.
	subs := c.cfg.Subjects()
	events := make(chan *nats.Msg, 64)
	progressSub, err := nc.ChanSubscribe(subs.Of("db.vacuum.progress.*"), events)
	if err != nil {
		return c.fail(exitFailed, "subscribe to progress: %v", err)
	}
	defer progressSub.Unsubscribe()
	found := make(chan messages.VacuumResult, 1)
	// Results are read one message at a time from where DB_VACUUM ends now
	// (readers may create no consumer; maintenance/read.go).
	stream := maintenance.StreamName(subs, maintenance.StreamVacuum)
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return c.fail(exitFailed, "read %s: %v", stream, err)
	}
	next := st.CachedInfo().State.LastSeq + 1
	results := time.NewTicker(250 * time.Millisecond)
	defer results.Stop()
	poll := func() error {
		var bodies [][]byte
		bodies, next, err = maintenance.ResultsAfter(ctx, js, stream, subs.Of("db.vacuum.results.>"), next, 0)
		for _, b := range bodies {
			var r messages.VacuumResult
			if json.Unmarshal(b, &r) == nil && r.JobID == req.JobID {
				select {
				case found <- r:
				default:
				}
			}
		}
		return err
	}
	ack, err := c.queue(ctx, js, &req)
	if err != nil {
		return c.fail(exitFailed, "queue job: %v", err)
	}
	fmt.Fprintf(c.stderr, "queued job %s (DB_JOBS #%d)\n", req.JobID, ack.Sequence)
	shown := newProgress(c.stderr)
	ctx, cancel := context.WithTimeout(ctx, cmd.Timeout)
	defer cancel()
	for {
		select {
		case m := <-events:
			var p messages.VacuumProgress
			if json.Unmarshal(m.Data, &p) == nil && p.JobID == req.JobID {
				shown.show(p)
			}
		case <-results.C:
			if err := poll(); err != nil && ctx.Err() == nil {
				fmt.Fprintf(c.stderr, "reading results: %v\n", err)
			}
		case r := <-found:
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
				return c.fail(exitTimeout, "no result for job %s within %s (it stays queued)", req.JobID, cmd.Timeout)
			}
			return c.fail(exitTimeout, "interrupted; job %s stays queued", req.JobID)
		}
	}
}

// queue publishes a VACUUM job to DB_JOBS, its id as Nats-Msg-Id.
func (c *cli) queue(ctx context.Context, js jetstream.JetStream, req *messages.VacuumRequest) (*jetstream.PubAck, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	return js.Publish(ctx, c.cfg.Subjects().Of(subjects.DBVacuumJobs), body, jetstream.WithMsgID(req.JobID))
}
