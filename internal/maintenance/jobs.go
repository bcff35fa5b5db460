package maintenance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	pgtable "github.com/jeeves-avionics/dbworker/internal/pgexec/table"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/jeeves-avionics/dbworker/internal/metrics"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// consume takes jobs one at a time until taking ends (Stop). Fetching one
// job only when free to run it keeps jobs in the stream, not in a worker's
// buffer where their AckWait would run out. A fetch is not cut short at Stop,
// so that no pull request outlives its reader: a job that comes in after Stop
// began is given back at once, for another worker. Runs take ctx, which ends
// only when Stop runs out of time.
func (s *Service) consume(ctx, taking context.Context, cons jetstream.Consumer) {
	for taking.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		batch, err := cons.Fetch(1, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			if taking.Err() == nil {
				s.log.Warn().Err(err).Msg("fetch maintenance job")
				select {
				case <-taking.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		for msg := range batch.Messages() {
			if taking.Err() != nil {
				_ = msg.Nak()
				continue
			}
			s.handleJob(ctx, msg)
		}
		cancel()
	}
}

// handleJob runs one job and settles it: acked once its result is stored,
// terminated when it can never succeed (with a failed result), dropped
// without one when it is not a job at all (drop), delayed when a
// previous delivery's lock has not expired yet, left unacked (so redelivered)
// when its result could not be stored.
func (s *Service) handleJob(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		s.term(msg, "no JetStream metadata")
		return
	}
	log := s.log.With().Uint64("job_seq", meta.Sequence.Stream).Uint64("delivery", meta.NumDelivered).Logger()
	if meta.NumDelivered > 1 {
		s.cfg.Metrics.JobRedelivered()
	}
	switch {
	case msg.Subject() == s.cfg.Subjects.Of(subjects.DBVacuumJobs):
		var req messages.VacuumRequest
		if err := decodeJob(msg.Data(), &req); err != nil {
			s.drop(msg, meta, err)
			return
		}
		if req.JobID == "" {
			req.JobID = jobID(msg, meta)
		}
		res, err := s.vacuum(ctx, &req, msg)
		var el *lockedError
		switch {
		case errors.As(err, &el) && meta.NumDelivered > 1:
			// Perhaps our own earlier delivery, on a worker that died: wait
			// for its lock to expire rather than skip the job.
			log.Info().Str("holder", el.holder).Msg("vacuum job redelivered while its target is locked; retrying after the lock's TTL")
			_ = msg.NakWithDelay(el.expiresIn + 100*time.Millisecond)
		case errors.As(err, &el):
			s.settle(ctx, msg, s.skipped(ctx, &req, el))
		case err != nil && res == nil:
			var me *messages.Error
			if errors.As(err, &me) && me.Status < 500 {
				s.terminate(ctx, msg, meta, requested(req.Schema, req.Table), err) // bad table, FULL refused: retrying cannot help
				return
			}
			log.Warn().Err(err).Msg("vacuum job failed before it ran; will be redelivered")
			_ = msg.NakWithDelay(time.Second)
		case retryable(ctx, res):
			// Recorded failed, and done again: the database went away, the
			// run timed out, or this worker is shutting down.
			if err != nil {
				log.Error().Err(err).Msg("vacuum result not stored")
			}
			log.Warn().Str("run_id", res.RunID).Msg("vacuum run failed for a passing reason; the job will be redelivered")
			_ = msg.NakWithDelay(time.Second)
		default:
			s.settle(ctx, msg, err)
		}
	case msg.Subject() == s.cfg.Subjects.Of(subjects.DBStatsJobs):
		var req messages.StatsRequest
		if err := decodeJob(msg.Data(), &req); err != nil {
			s.drop(msg, meta, err)
			return
		}
		if req.JobID == "" {
			req.JobID = jobID(msg, meta)
		}
		_, err := s.Stats(ctx, &req)
		var me *messages.Error
		if errors.As(err, &me) && me.Status < 500 {
			s.terminate(ctx, msg, meta, requested(req.Schema, req.Table), err)
			return
		}
		s.settle(ctx, msg, err)
	default:
		s.drop(msg, meta, fmt.Errorf("unknown job subject %s", msg.Subject()))
	}
}

// drop terminates a message that is not a job (a body no request decodes
// into, or a subject that is no jobs subject) and stores nothing for it, so
// that no stored result can come back as a job and feed a loop between the
// results streams and DB_JOBS (a stored result never decodes as a request).
// It is logged and counted (dbworker_jobs_dropped_total).
func (s *Service) drop(msg jetstream.Msg, meta *jetstream.MsgMetadata, cause error) {
	s.cfg.Metrics.JobDropped()
	s.log.Warn().Err(cause).Str("subject", msg.Subject()).Uint64("job_seq", meta.Sequence.Stream).
		Msg("message on DB_JOBS is not a job: dropped without a result")
	s.term(msg, "not a job: "+cause.Error())
}

// sourceOf is the metrics source of a run: a job when it has a job id (only
// the jobs consumer gives one), a request otherwise.
func sourceOf(jobID string) string {
	if jobID != "" {
		return metrics.SourceJob
	}
	return metrics.SourceRequest
}

// retryable reports a failed run worth doing again.
func retryable(ctx context.Context, res *messages.VacuumResult) bool {
	if res == nil || res.Status != messages.StatusFailed {
		return false
	}
	return ctx.Err() != nil || res.Error == nil || res.Error.Status >= 500 || res.Error.Code == messages.CodeTimeout
}

func jobID(msg jetstream.Msg, meta *jetstream.MsgMetadata) string {
	if id := msg.Headers().Get(jetstream.MsgIDHeader); id != "" {
		return id
	}
	return "seq-" + strconv.FormatUint(meta.Sequence.Stream, 10)
}

// decodeJob reads a job body as strictly as a request (an empty body is no
// job, though: nothing makes it {}).
func decodeJob(data []byte, v any) error {
	if err := messages.DecodeStrict(data, v); err != nil {
		return fmt.Errorf("invalid job body: %w", err)
	}
	return nil
}

// settle acks a job whose result is stored (err nil) and leaves it for
// redelivery otherwise.
func (s *Service) settle(ctx context.Context, msg jetstream.Msg, err error) {
	if err != nil {
		s.log.Error().Err(err).Msg("job result not stored; the job will be redelivered")
		_ = msg.NakWithDelay(time.Second)
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := msg.DoubleAck(actx); err != nil {
		s.log.Warn().Err(err).Msg("ack job")
	}
}

// skipped records a job whose target was locked by another run.
func (s *Service) skipped(ctx context.Context, req *messages.VacuumRequest, el *lockedError) error {
	t := el.target
	now := time.Now().UTC()
	res := &messages.VacuumResult{RunID: nuid.Next(), JobID: req.JobID, WorkerID: s.cfg.WorkerID, Schema: t.schema, Table: t.table,
		Status: messages.StatusSkipped, StartedAt: now, FinishedAt: now, Holder: el.holder}
	s.cfg.Metrics.MaintenanceRun("vacuum", metrics.SourceJob, messages.StatusSkipped)
	s.log.Info().Str("job_id", req.JobID).Stringer("target", t.lockKey()).Str("holder", el.holder).Msg("vacuum job skipped: target locked")
	return s.storeVacuum(context.WithoutCancel(ctx), res)
}

// requested is the target a job names, as it names it, for filing the
// result of a job that never ran (the table may not exist): schema "" when
// the job gave a bare name. No table is the whole database.
func requested(schema, table string) target {
	if table == "" {
		return target{}
	}
	if schema == "" {
		if s, t, err := pgtable.Split(table); err == nil {
			schema, table = s, t
		}
	}
	return target{schema: schema, table: table}
}

// terminate records a failed result for a job that can never succeed, under
// the target it names (t; the whole database when it names none or its body
// cannot be read), and stops its redelivery.
func (s *Service) terminate(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, t target, cause error) {
	me := messages.Errorf(messages.CodeBadRequest, "%v", cause)
	_ = errors.As(cause, &me)
	now := time.Now().UTC()
	res := &messages.VacuumResult{RunID: nuid.Next(), JobID: jobID(msg, meta), WorkerID: s.cfg.WorkerID, Status: messages.StatusFailed,
		Schema: t.schema, Table: t.table, StartedAt: now, FinishedAt: now, Error: me}
	kind := "vacuum"
	var err error
	if msg.Subject() == s.cfg.Subjects.Of(subjects.DBStatsJobs) {
		kind = "stats"
		err = s.storeInvalidStats(ctx, res)
	} else {
		err = s.storeVacuum(ctx, res)
	}
	if err != nil {
		s.log.Error().Err(err).Msg("could not record a failed job; it will be redelivered")
		_ = msg.NakWithDelay(time.Second)
		return
	}
	s.cfg.Metrics.MaintenanceRun(kind, metrics.SourceJob, messages.StatusFailed)
	s.log.Warn().Str("job_id", res.JobID).Str("error", me.Message).Msg("job terminated")
	s.term(msg, "job failed: "+me.Message)
}

// storeInvalidStats records a failed stats job in DB_STATS, under the table
// it names (database-wide when it names none).
func (s *Service) storeInvalidStats(ctx context.Context, res *messages.VacuumResult) error {
	body, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = s.js.Publish(ctx, s.cfg.Subjects.StatsResults(res.Schema, res.Table), body, jetstream.WithMsgID(res.RunID))
	return err
}
