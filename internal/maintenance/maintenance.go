// Package maintenance runs db.stats and db.vacuum: on request, and as jobs
// from the DB_JOBS JetStream work queue shared by every worker of the pool.
//
// # Flow
//
//	publisher / db.vacuum async ──► db.vacuum.jobs ┐
//	                                db.stats.jobs  ┴─► DB_JOBS (work queue)
//	                                                     │ durable pull consumer "maintenance"
//	                                                     ▼
//	db.vacuum / db.stats request ──► worker ──► maintenance lock (state backend,
//	                                   │            internal space) vacuum:<schema>.<table>
//	                                   ├─► VACUUM on a dedicated connection (one of
//	                                   │   MaxConnections), holding the target's
//	                                   │   PostgreSQL advisory lock
//	                                   ├─► db.vacuum.progress.<run_id>  (core NATS, ~1/s)
//	                                   └─► DB_VACUUM / DB_STATS results ──► ack job / answer
//
// Every run's result is stored in its stream before the job is acked or the
// request answered; if storing fails the job is not acked and comes back. One
// lock per target makes a second run for a busy target answer LOCKED (a
// request) or record "skipped" (a job); so does the target's advisory lock,
// held by the run's connection, should the state backend forget the lock. A
// job redelivered after its worker died waits for the dead run's lock to
// expire, then runs.
package maintenance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jeeves-avionics/dbworker/internal/metrics"
	"github.com/jeeves-avionics/dbworker/internal/startstop"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
)

// Stream and consumer names. With a subject prefix the streams are named
// after it too (StreamName), so environments sharing a NATS account keep
// apart: prefix "prod." gives PROD_DB_JOBS.
const (
	StreamStats   = "DB_STATS"
	StreamVacuum  = "DB_VACUUM"
	StreamJobs    = "DB_JOBS"
	ConsumerJobs  = "maintenance"
	lockKeyPrefix = "vacuum:"
)

// Defaults of Config.
const (
	SchemaDefault               = "public"
	ConcurrencyDefault          = 1
	LockTTLDefault              = time.Minute
	AckWaitDefault              = time.Minute
	MaxDeliverDefault           = 10
	LockTimeoutDefault          = 5 * time.Second
	VacuumTimeoutDefault        = time.Hour
	ReplicasDefault             = ReplicasAuto
	ResultsMaxAgeDefault        = 30 * 24 * time.Hour
	ResultsMaxPerSubjectDefault = 1000
	DuplicateWindowDefault      = 10 * time.Minute
	ProgressIntervalDefault     = time.Second
	MaxConnectionsDefault       = 2
)

// ReplicasMax is the most replicas a JetStream stream may have.
const ReplicasMax = 5

// Config configures a Service. A field left zero takes its default (the
// XxxDefault constants); a negative one is refused by New.
type Config struct {
	// WorkerID is recorded in every result. Required.
	WorkerID string
	// Subjects carries the subject prefix.
	Subjects subjects.Subjects
	// Schemas are the schemas db.stats covers when no table or schema is
	// named. Defaults to public.
	Schemas []string
	// Concurrency is how many jobs this worker runs at once. Defaults to 1;
	// 0 consumes no jobs (requests are still served).
	Concurrency *int
	// LockTTL is the maintenance lock's TTL, refreshed every third of it while
	// a run lasts. Defaults to 1m.
	LockTTL time.Duration
	// AckWait is how long a job may go without an ack or in-progress ack before
	// it is redelivered; a run sends in-progress acks every third of it.
	// Defaults to 1m.
	AckWait time.Duration
	// MaxDeliver bounds a job's deliveries. Defaults to 10.
	MaxDeliver int
	// BackOff, when set, spaces redeliveries (its length must be below
	// MaxDeliver).
	BackOff []time.Duration
	// MaxConnections bounds this worker's maintenance connections (one per
	// running VACUUM, opened outside the pool). Beyond it a job waits for a
	// connection and a request answers UNAVAILABLE at once. Defaults to 2.
	MaxConnections int
	// SQLConnections bounds the maintenance SQL pool: the connections, apart
	// from the shared pool and from the VACUUM connections, on which db.stats,
	// table lookups and VACUUM progress run. Defaults to 1.
	SQLConnections int
	// AllowFull permits VACUUM FULL. Defaults to false (FORBIDDEN).
	AllowFull bool
	// LockTimeout is VACUUM's lock_timeout. Defaults to 5s.
	LockTimeout time.Duration
	// VacuumTimeout is the default and cap of timeout_ms. Defaults to 1h.
	VacuumTimeout time.Duration
	// Replicas of the streams this process creates. Defaults to
	// ReplicasAuto (0): min(3, the cluster's size), so 1 on a single server.
	// An existing stream keeps its replicas unless UpdateStreams is set.
	Replicas int
	// UpdateStreams applies Replicas (when not auto), ResultsMaxAge,
	// ResultsMaxPerSubject and DuplicateWindow to streams that exist with
	// other values. Defaults to false: an existing stream is left as it is,
	// and each difference is logged and exported (dbworker_stream_config_drift).
	UpdateStreams bool
	// ResultsMaxAge and ResultsMaxPerSubject bound DB_STATS and DB_VACUUM.
	// Default to 30 days and 1000.
	ResultsMaxAge        time.Duration
	ResultsMaxPerSubject int64
	// DuplicateWindow is DB_JOBS's Nats-Msg-Id window. Defaults to 10m.
	DuplicateWindow time.Duration
	// ProgressInterval spaces progress events. Defaults to 1s.
	ProgressInterval time.Duration
	// Logger receives a line per run.
	Logger zerolog.Logger
	// Metrics, when set, counts runs by kind, source and status, their
	// durations, redelivered and dropped jobs, the jobs consumer's state and
	// the streams' drift.
	Metrics *metrics.Metrics
}

// StreamName is the name of stream (StreamJobs, StreamStats, StreamVacuum)
// under the subject prefix: the prefix upper-cased, dots made underscores.
func StreamName(prefix subjects.Subjects, stream string) string {
	p := prefix.Prefix()
	if p == "" {
		return stream
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(p) {
		if r == '.' || r == '*' || r == '>' || r == ' ' {
			r = '_'
		}
		b.WriteRune(r)
	}
	return b.String() + stream
}

// stream names a stream under this service's prefix.
func (s *Service) stream(name string) string { return StreamName(s.cfg.Subjects, name) }

// withDefaults fills the fields left zero. SetupStreams uses it alone; New
// validates first.
func (c *Config) withDefaults() {
	if len(c.Schemas) == 0 {
		c.Schemas = []string{SchemaDefault}
	}
	if c.Concurrency == nil {
		n := ConcurrencyDefault
		c.Concurrency = &n
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setDur(&c.LockTTL, LockTTLDefault)
	setDur(&c.AckWait, AckWaitDefault)
	setDur(&c.LockTimeout, LockTimeoutDefault)
	setDur(&c.VacuumTimeout, VacuumTimeoutDefault)
	setDur(&c.ResultsMaxAge, ResultsMaxAgeDefault)
	setDur(&c.DuplicateWindow, DuplicateWindowDefault)
	setDur(&c.ProgressInterval, ProgressIntervalDefault)
	setInt := func(n *int, def int) {
		if *n == 0 {
			*n = def
		}
	}
	setInt(&c.MaxDeliver, MaxDeliverDefault)
	setInt(&c.MaxConnections, MaxConnectionsDefault)
	setInt(&c.SQLConnections, SQLConnectionsDefault)
	if c.ResultsMaxPerSubject == 0 {
		c.ResultsMaxPerSubject = ResultsMaxPerSubjectDefault
	}
}

// validate checks a Config that withDefaults has filled: a value that is
// wrong is an error naming the field, never replaced by a default.
func (c *Config) validate() error {
	var errs []string
	bad := func(field, format string, args ...any) {
		errs = append(errs, "Config."+field+" "+fmt.Sprintf(format, args...))
	}
	if c.WorkerID == "" {
		bad("WorkerID", "is required")
	}
	for _, schema := range c.Schemas {
		if schema == "" {
			bad("Schemas", "holds an empty name")
		}
	}
	if *c.Concurrency < 0 {
		bad("Concurrency", "must not be negative (0 takes no jobs), got %d", *c.Concurrency)
	}
	for _, f := range []struct {
		name string
		d    time.Duration
		min  time.Duration
	}{
		{"LockTTL", c.LockTTL, time.Millisecond}, {"AckWait", c.AckWait, time.Millisecond},
		{"ProgressInterval", c.ProgressInterval, time.Millisecond}, {"LockTimeout", c.LockTimeout, 1},
		{"VacuumTimeout", c.VacuumTimeout, 1}, {"ResultsMaxAge", c.ResultsMaxAge, 1}, {"DuplicateWindow", c.DuplicateWindow, 1},
	} {
		if f.d < f.min {
			bad(f.name, "must be positive, at least %s (0 is the default), got %s", f.min, f.d)
		}
	}
	for _, f := range []struct {
		name string
		n    int64
	}{
		{"MaxDeliver", int64(c.MaxDeliver)}, {"MaxConnections", int64(c.MaxConnections)}, {"SQLConnections", int64(c.SQLConnections)},
		{"Replicas", int64(c.Replicas)}, {"ResultsMaxPerSubject", c.ResultsMaxPerSubject},
	} {
		if f.n < 0 {
			bad(f.name, "must not be negative (0 is the default), got %d", f.n)
		}
	}
	if c.Replicas > ReplicasMax {
		bad("Replicas", "must be at most %d, got %d", ReplicasMax, c.Replicas)
	}
	for i, d := range c.BackOff {
		if d <= 0 {
			bad("BackOff", "step %d must be positive, got %s", i, d)
		}
	}
	if len(c.BackOff) > 0 && len(c.BackOff) >= c.MaxDeliver {
		bad("BackOff", "has %d steps: MaxDeliver must be above %d, got %d", len(c.BackOff), len(c.BackOff), c.MaxDeliver)
	}
	if len(errs) > 0 {
		return errors.New("maintenance: " + strings.Join(errs, "; "))
	}
	return nil
}

// Service runs maintenance.
type Service struct {
	cfg   Config
	log   zerolog.Logger
	nc    *nats.Conn
	js    jetstream.JetStream
	pg    DB
	state state.Backend
	conns chan struct{} // the maintenance connection budget: a slot per open connection

	// TestSignals are hooks for tests, set before Start; they are not
	// configuration, and production code leaves them zero.
	TestSignals TestSignals

	life        startstop.Base     // the job loops: Start to Stop
	stopTaking  context.CancelFunc // ends the job loops' taking of jobs, at Stop
	mu          sync.Mutex
	catalogPool *pgxpool.Pool // maintenance SQL (catalog.go), from Start to Stop
}

// TestSignals are the hooks tests set on a Service (river's test signals):
// ways to make a run last or crawl, which no configuration offers.
type TestSignals struct {
	// BeforeVacuumSQL, when set, runs on the VACUUM connection just before
	// VACUUM: SELECT pg_sleep(1) makes a run last, SET vacuum_cost_delay
	// slows it down.
	BeforeVacuumSQL string
}

// New returns a Service; Start sets up the streams and consumes jobs. Fields
// of cfg left zero take their defaults; a value that is wrong is an error.
func New(cfg Config, nc *nats.Conn, pg DB, st state.Backend) (*Service, error) {
	cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Service{cfg: cfg, log: cfg.Logger, nc: nc, js: js, pg: pg, state: st, conns: make(chan struct{}, cfg.MaxConnections)}, nil
}

// Start sets up the streams (SetupStreams) and creates or updates the jobs
// consumer, retrying while the server or cluster is not ready, then starts
// Concurrency job loops. ctx bounds the set-up only (SetupTimeoutDefault
// when it has no deadline). A second Start returns
// startstop.ErrStarted; one after Stop, or after a Start that failed,
// startstop.ErrStopped.
func (s *Service) Start(ctx context.Context) error {
	runCtx, err := s.life.StartInit(ctx)
	if err != nil {
		return err
	}
	cons, err := s.setupStreams(ctx)
	if err != nil {
		s.life.StartFailed()
		return err
	}
	s.cfg.Metrics.WatchJobs(func(ctx context.Context) (metrics.JobsState, error) {
		ci, err := cons.Info(ctx)
		if err != nil {
			return metrics.JobsState{}, err
		}
		return metrics.JobsState{Pending: ci.NumPending, AckPending: ci.NumAckPending, Redelivered: ci.NumRedelivered}, nil
	})
	if err := s.openCatalog(); err != nil {
		s.life.StartFailed()
		return err
	}
	taking, stopTaking := context.WithCancel(runCtx)
	s.mu.Lock()
	s.stopTaking = stopTaking
	s.mu.Unlock()
	for range *s.cfg.Concurrency {
		s.life.Go(func(ctx context.Context) { s.consume(ctx, taking, cons) })
	}
	return nil
}

// Stop stops taking jobs and waits for the runs in progress. Past ctx's end
// the runs are cancelled, and not acked: their jobs come back. Stop is
// idempotent.
func (s *Service) Stop(ctx context.Context) error {
	if !s.life.StopInit() {
		return nil
	}
	s.mu.Lock()
	stopTaking := s.stopTaking
	s.mu.Unlock()
	stopTaking()
	defer s.closeCatalog()
	return s.life.Wait(ctx)
}
