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
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
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
	LockTTLDefault              = time.Minute
	AckWaitDefault              = time.Minute
	MaxDeliverDefault           = 10
	LockTimeoutDefault          = 5 * time.Second
	VacuumTimeoutDefault        = time.Hour
	ResultsMaxAgeDefault        = 30 * 24 * time.Hour
	ResultsMaxPerSubjectDefault = 1000
	DuplicateWindowDefault      = 10 * time.Minute
	ProgressIntervalDefault     = time.Second
	MaxConnectionsDefault       = 2
)

// Config configures a Service.
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
	// Replicas of the streams, for a cluster. Defaults to 1.
	Replicas int
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
	// Metrics, when set, counts runs by kind and status.
	Metrics *metrics.Metrics

	// BeforeVacuumSQL, when set, runs on the VACUUM connection just before
	// VACUUM. Tests use it (SELECT pg_sleep(1)) to make runs last; leave it
	// empty otherwise.
	BeforeVacuumSQL string
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

func (c *Config) withDefaults() {
	if len(c.Schemas) == 0 {
		c.Schemas = []string{"public"}
	}
	if c.Concurrency == nil {
		one := 1
		c.Concurrency = &one
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
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
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = MaxDeliverDefault
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = MaxConnectionsDefault
	}
	if c.SQLConnections <= 0 {
		c.SQLConnections = SQLConnectionsDefault
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.ResultsMaxPerSubject <= 0 {
		c.ResultsMaxPerSubject = ResultsMaxPerSubjectDefault
	}
}

// Service runs maintenance.
type Service struct {
	cfg   Config
	log   zerolog.Logger
	nc    *nats.Conn
	js    jetstream.JetStream
	pg    *pgexec.Client
	state state.Backend
	conns chan struct{} // the maintenance connection budget: a slot per open connection

	mu          sync.Mutex
	catalogPool *pgxpool.Pool // maintenance SQL (catalog.go), from Start to Stop
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	stopped     bool
}

// New returns a Service; Start sets up the streams and consumes jobs.
func New(cfg Config, nc *nats.Conn, pg *pgexec.Client, st state.Backend) (*Service, error) {
	if cfg.WorkerID == "" {
		return nil, errors.New("maintenance: Config.WorkerID is required")
	}
	cfg.withDefaults()
	if len(cfg.BackOff) > 0 && len(cfg.BackOff) >= cfg.MaxDeliver {
		return nil, fmt.Errorf("maintenance: %d back-off steps need MaxDeliver above %d", len(cfg.BackOff), len(cfg.BackOff))
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Service{cfg: cfg, log: cfg.Logger, nc: nc, js: js, pg: pg, state: st, conns: make(chan struct{}, cfg.MaxConnections)}, nil
}

// Start creates or updates the streams and the jobs consumer, then starts
// Concurrency job runners.
func (s *Service) Start(ctx context.Context) error {
	cons, err := s.setupStreams(ctx)
	if err != nil {
		return err
	}
	if err := s.openCatalog(); err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.mu.Lock()
	s.cancel = cancel
	s.mu.Unlock()
	for i := 0; i < *s.cfg.Concurrency; i++ {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.consume(rctx, cons)
		}()
	}
	return nil
}

// Stop stops taking jobs and waits for the runs in progress. A run cut off
// by ctx is not acked: its job comes back.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	cancel := s.cancel
	s.stopped = true
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	defer s.closeCatalog()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		cancel()
		return nil
	case <-ctx.Done():
		cancel()
		<-done
		return ctx.Err()
	}
}

func (s *Service) stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}
