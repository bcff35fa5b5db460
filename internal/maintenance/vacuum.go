package maintenance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// lockedError reports a target whose maintenance lock another run holds: the
// state backend's, or the PostgreSQL advisory lock (advisory).
type lockedError struct {
	target    target
	holder    string
	expiresIn time.Duration
	advisory  bool
}

func (e *lockedError) Error() string { return "maintenance target is locked by " + e.holder }

// Vacuum serves a db.vacuum request: async queues a job; otherwise the run
// happens now and its stored result is the answer. A target being vacuumed
// by another run answers LOCKED.
func (s *Service) Vacuum(ctx context.Context, req *messages.VacuumRequest) (any, error) {
	if err := refuseJobID(req.JobID); err != nil {
		return nil, err
	}
	if req.Async {
		return s.Enqueue(ctx, subjects.DBVacuumJobs, req)
	}
	res, err := s.vacuum(ctx, req, nil)
	var el *lockedError
	if errors.As(err, &el) {
		what := "lock"
		if el.advisory {
			what = "PostgreSQL advisory lock"
		}
		e := messages.Errorf(messages.CodeLocked, "a VACUUM of this target is running (%s held by %s)", what, el.holder)
		e.Detail = "holder: " + el.holder
		return nil, e
	}
	return res, err
}

// refuseJobID refuses a job id in a request: only the jobs consumer gives a
// run one (from the job's Nats-Msg-Id or body). A caller's own would let it
// store a job's outcome ahead of the job (job:<id>:done, deduplicated) and so
// suppress the real one, or label its runs as another's job.
func refuseJobID(id string) error {
	if id != "" {
		return messages.BadRequest("job_id", "job_id is set by the jobs consumer; a request must not name one")
	}
	return nil
}

// ServeStats serves a db.stats request: Stats, refusing a job id.
func (s *Service) ServeStats(ctx context.Context, req *messages.StatsRequest) (*messages.StatsResult, error) {
	if err := refuseJobID(req.JobID); err != nil {
		return nil, err
	}
	return s.Stats(ctx, req)
}

// Enqueue publishes a job to DB_JOBS and returns where it is.
func (s *Service) Enqueue(ctx context.Context, subject string, body any) (*messages.JobAccepted, error) {
	id := nuid.Next()
	var data []byte
	var err error
	switch b := body.(type) {
	case *messages.VacuumRequest:
		cp := *b
		cp.Async, cp.JobID = false, id
		data, err = json.Marshal(cp)
	case *messages.StatsRequest:
		cp := *b
		cp.JobID = id
		data, err = json.Marshal(cp)
	default:
		return nil, fmt.Errorf("enqueue %T", body)
	}
	if err != nil {
		return nil, err
	}
	ack, err := s.js.Publish(ctx, s.cfg.Subjects.Of(subject), data, jetstream.WithMsgID(id))
	if err != nil {
		return nil, fmt.Errorf("enqueue job: %w", err)
	}
	return &messages.JobAccepted{JobID: id, Stream: ack.Stream, Sequence: ack.Sequence}, nil
}

// vacuum runs one VACUUM under the target's lock and stores its result.
// It returns *lockedError, without a result, when another run holds the lock;
// a request error (bad table, FULL refused) before anything ran; or the stored
// result, whose status says whether VACUUM succeeded. An error storing the
// result is returned with the result: the caller must not ack.
func (s *Service) vacuum(ctx context.Context, req *messages.VacuumRequest, job jetstream.Msg) (*messages.VacuumResult, error) {
	if req.Full && !s.cfg.AllowFull {
		return nil, messages.Errorf(messages.CodeForbidden, "VACUUM FULL is disabled by configuration (MAINT_ALLOW_FULL)")
	}
	timeout := s.cfg.VacuumTimeout
	if req.TimeoutMS != nil {
		if *req.TimeoutMS <= 0 {
			return nil, messages.BadRequest("timeout_ms", "timeout_ms must be positive")
		}
		if *req.TimeoutMS < timeout.Milliseconds() {
			timeout = time.Duration(*req.TimeoutMS) * time.Millisecond
		}
	}
	t, err := s.resolve(ctx, req.Schema, req.Table)
	if err != nil {
		return nil, err
	}
	runID := nuid.Next()
	owner := s.cfg.WorkerID + "/" + runID
	got, err := s.state.AcquireLock(ctx, t.lockKey(), owner, s.cfg.LockTTL)
	if err != nil {
		return nil, state.AsError(fmt.Errorf("take maintenance lock: %w", err)) // fail closed: no lock, no run
	}
	if !got.Acquired {
		return nil, &lockedError{target: t, holder: got.Owner, expiresIn: time.Duration(got.ExpiresInMS) * time.Millisecond}
	}
	lease := got.Lease
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := s.state.ReleaseLock(rctx, t.lockKey(), lease); err != nil {
			s.log.Warn().Err(err).Stringer("lock", t.lockKey()).Msg("release maintenance lock")
		}
	}()

	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancelRun(nil) // runs before bg.Wait: stops the helpers
	bg.Add(1)
	go func() {
		defer bg.Done()
		s.keepLock(runCtx, cancelRun, t.lockKey(), lease)
	}()
	if job != nil {
		bg.Add(1)
		go func() {
			defer bg.Done()
			s.keepJob(runCtx, job)
		}()
	}

	// A job waits for a maintenance connection; a request does not.
	// Locked, over budget or cut short before it started, there is no run to
	// record; a PostgreSQL that cannot be reached is a failed run, as ever.
	mc, connErr := s.openConn(runCtx, t, timeout, job != nil)
	var el *lockedError
	var me *messages.Error
	if connErr != nil && (errors.As(connErr, &el) || errors.As(connErr, &me) || runCtx.Err() != nil) {
		return nil, connErr
	}
	if mc != nil {
		defer mc.close(context.WithoutCancel(ctx))
	}

	res := &messages.VacuumResult{RunID: runID, JobID: req.JobID, WorkerID: s.cfg.WorkerID, Schema: t.schema, Table: t.table, StartedAt: time.Now().UTC()}
	var out []string
	var before, after *messages.VacuumSnapshot
	runErr := connErr
	if mc != nil {
		out, before, after, runErr = s.runVacuum(runCtx, mc, t, req, res.RunID, &bg)
	}
	if cause := context.Cause(runCtx); runErr != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		runErr = cause
	}
	res.FinishedAt = time.Now().UTC()
	res.DurationMS = res.FinishedAt.Sub(res.StartedAt).Milliseconds()
	res.Output, res.Before, res.After = out, before, after
	res.Status = messages.StatusOK
	if runErr != nil {
		res.Status = messages.StatusFailed
		res.Error = pgerr.AsError(runErr)
	}
	s.cfg.Metrics.MaintenanceRun("vacuum", sourceOf(req.JobID), res.Status)
	if mc != nil {
		s.cfg.Metrics.MaintenanceDuration("vacuum", sourceOf(req.JobID), res.Status, res.FinishedAt.Sub(res.StartedAt))
	}
	s.log.Info().Str("run_id", runID).Str("job_id", req.JobID).Stringer("target", t.lockKey()).Str("status", res.Status).
		Int64("duration_ms", res.DurationMS).Msg("vacuum")
	return res, s.storeVacuum(context.WithoutCancel(ctx), res)
}

// every calls fn each period until ctx ends or fn returns false.
func every(ctx context.Context, period time.Duration, fn func() bool) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if ctx.Err() != nil || !fn() {
				return
			}
		}
	}
}

// keepLock refreshes the maintenance lock every third of its TTL; a lost lock
// cancels the run (fail closed).
func (s *Service) keepLock(ctx context.Context, cancel context.CancelCauseFunc, key state.LockKey, lease string) {
	every(ctx, s.cfg.LockTTL/3, func() bool {
		res, err := s.state.RefreshLock(ctx, key, lease, s.cfg.LockTTL)
		if ctx.Err() != nil {
			return false
		}
		if err != nil || !res.Refreshed {
			s.log.Error().Err(err).Stringer("lock", key).Str("reason", res.Reason).Msg("maintenance lock lost; cancelling the run")
			cancel(messages.Errorf(messages.CodeUnavailable, "maintenance lock lost during the run"))
			return false
		}
		return true
	})
}

// keepJob tells JetStream the job is still being worked on, every third of
// AckWait, so a long VACUUM is not redelivered.
func (s *Service) keepJob(ctx context.Context, job jetstream.Msg) {
	every(ctx, s.cfg.AckWait/3, func() bool {
		if err := job.InProgress(); err != nil {
			s.log.Warn().Err(err).Msg("in-progress ack")
		}
		return true
	})
}

// runVacuum runs VACUUM on the run's dedicated connection, outside any
// transaction, capturing server notices (VERBOSE) and sending progress events.
func (s *Service) runVacuum(ctx context.Context, mc *maintConn, t target, req *messages.VacuumRequest, runID string, bg *sync.WaitGroup) (output []string, before, after *messages.VacuumSnapshot, err error) {
	jobID := req.JobID
	conn := mc.conn
	before, err = s.snapshot(ctx, conn, t)
	if err != nil {
		return nil, nil, nil, err
	}
	progCtx, stopProgress := context.WithCancel(ctx)
	bg.Add(1)
	go func() {
		defer bg.Done()
		s.reportProgress(progCtx, conn.PgConn().PID(), runID, jobID)
	}()
	if sql := s.TestSignals.BeforeVacuumSQL; sql != "" {
		if _, err := conn.Exec(ctx, sql); err != nil {
			stopProgress()
			return nil, before, nil, err
		}
	}
	_, err = conn.Exec(ctx, vacuumSQL(t, req))
	stopProgress()
	s.publishProgress(messages.VacuumProgress{RunID: runID, JobID: jobID, Phase: "done", Done: true})
	if err != nil {
		return mc.output(), before, nil, err
	}
	after, err = s.snapshot(ctx, conn, t)
	return mc.output(), before, after, err
}

// vacuumSQL builds the VACUUM statement: options from the request, the table
// as found in the catalog, quoted.
func vacuumSQL(t target, req *messages.VacuumRequest) string {
	analyze := req.Analyze == nil || *req.Analyze
	skipLocked := req.SkipLocked == nil || *req.SkipLocked
	opts := []string{
		fmt.Sprintf("ANALYZE %t", analyze),
		fmt.Sprintf("FULL %t", req.Full),
		fmt.Sprintf("VERBOSE %t", req.Verbose),
		fmt.Sprintf("SKIP_LOCKED %t", skipLocked),
	}
	q := "VACUUM (" + strings.Join(opts, ", ") + ")"
	if !t.database() {
		q += " " + pgx.Identifier{t.schema, t.table}.Sanitize()
	}
	return q
}

// snapshot reads the target's figures on the run's own connection (conn),
// not from the shared pool.
func (s *Service) snapshot(ctx context.Context, conn *pgx.Conn, t target) (*messages.VacuumSnapshot, error) {
	var snap messages.VacuumSnapshot
	var err error
	if _, err := conn.Exec(ctx, clearStatsSnapshot); err != nil {
		return nil, err
	}
	if t.database() {
		err = conn.QueryRow(ctx, databaseSnapshotQuery).Scan(&snap.DeadRows, &snap.TableBytes)
	} else {
		err = conn.QueryRow(ctx, snapshotQuery, t.oid).Scan(&snap.DeadRows, &snap.TableBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("read table figures: %w", err)
	}
	return &snap, nil
}

// reportProgress publishes pg_stat_progress_vacuum for the VACUUM's backend
// every ProgressInterval until ctx ends.
func (s *Service) reportProgress(ctx context.Context, pid uint32, runID, jobID string) {
	every(ctx, s.cfg.ProgressInterval, func() bool {
		p := messages.VacuumProgress{RunID: runID, JobID: jobID}
		err := s.catalog().QueryRow(ctx, progressQuery, int32(pid)).Scan(&p.Phase, &p.HeapBlksTotal, &p.HeapBlksScanned, &p.HeapBlksVacuumed, &p.IndexVacuumCount)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			p.Phase = "waiting"
		case err != nil:
			return true // best effort: try again next tick
		}
		s.publishProgress(p)
		return true
	})
}

// publishProgress sends a progress event, best effort.
func (s *Service) publishProgress(p messages.VacuumProgress) {
	body, err := json.Marshal(p)
	if err == nil {
		_ = s.nc.Publish(s.cfg.Subjects.VacuumProgress(p.RunID), body)
	}
}

// storeVacuum writes a run's result to DB_VACUUM (deduplicated by run id) and
// records where it went.
func (s *Service) storeVacuum(ctx context.Context, res *messages.VacuumResult) error {
	body, err := json.Marshal(res)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// A job's outcome (ok or skipped) is stored once however often the job
	// runs: a second run after an ack lost in a failover is deduplicated by
	// the stream. Failed attempts are each recorded.
	id := res.RunID
	if res.JobID != "" && res.Status != messages.StatusFailed {
		id = "job:" + res.JobID + ":done"
	}
	ack, err := s.js.Publish(ctx, s.cfg.Subjects.VacuumResults(res.Schema, res.Table), body, jetstream.WithMsgID(id))
	if err != nil {
		return fmt.Errorf("store vacuum result %s: %w", res.RunID, err)
	}
	res.Stream, res.Sequence = ack.Stream, ack.Sequence
	return nil
}
