// Package worker serves dbworker's NATS endpoints: one micro service whose
// endpoints share a queue group, so any number of workers split the load and
// `nats micro ls/info/stats` see them all.
//
// # Lanes
//
// Each kind of work has a concurrency budget of its own, a lane: db
// (db.execute, db.vector, db.graph; MaxConcurrent), state (state.*, cache.*;
// StateConcurrent), maint (db.stats, db.vacuum; MaintConcurrent) and health
// (db.health; HealthConcurrent). Slow queries fill the db lane and nothing
// else: state requests and health checks keep their own slots, and db.health
// pings PostgreSQL on a connection of its own, outside the pool.
//
// micro calls an endpoint's handler for one message at a time. The handler
// never blocks: it gives the request a free slot of its lane, or a place in
// the lane's bounded queue (MaxQueued requests, MaxQueuedBytes bytes), or,
// with both full, answers UNAVAILABLE at once. Admitted requests run on
// goroutines of their own, which are kept for the next request (goPool). A
// request's deadline starts
// when the worker receives it: its timeout_ms, or DefaultTimeout, capped by
// MaxTimeout. A queued request whose deadline passes before a slot frees is
// answered TIMEOUT then, not when the requests ahead of it finish; db lane
// requests also run under that deadline, so the time queued counts toward it.
//
// Stop drains: the endpoints unsubscribe, requests already delivered (queued
// ones included) are still handled and answered, then Stop returns. Only
// past the drain timeout are requests in flight cancelled, and those are
// still answered.
//
// # Streamed answers
//
// A db.execute query whose answer does not fit one message reaches a caller
// that sends the Stream-Window header as a sequence of messages, each sent
// once the caller's credit allows it (stream.go); the worker reads no rows
// while it waits, so it holds one message of a result of any size.
package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/jeeves-avionics/dbworker/internal/graph"
	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/metrics"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/txn"
	"github.com/jeeves-avionics/dbworker/internal/startstop"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/internal/vector"
)

// Defaults of Config.
const (
	ServiceNameDefault      = "dbworker"
	QueueGroupDefault       = "dbworker"
	MaxConcurrentDefault    = 64
	StateConcurrentDefault  = 64
	MaintConcurrentDefault  = 4
	HealthConcurrentDefault = 2
	MaxQueuedDefault        = 256
	MaxQueuedBytesDefault   = 32 << 20
	MaxRequestBytesDefault  = 1 << 20
	DrainTimeoutDefault     = 30 * time.Second
	DefaultTimeoutDefault   = 30 * time.Second
	MaxTimeoutDefault       = 5 * time.Minute
)

// Version is the worker's version, reported by micro and db.health. It is set
// at build time with -ldflags "-X .../internal/worker.Version=v1.2.3".
var Version = "0.1.0-dev"

// Config configures a Worker. A field left zero takes its default (the
// XxxDefault constants); a negative one is refused by New.
type Config struct {
	// ID names this worker in logs, db.health and results. Required.
	ID string
	// ServiceName is the micro service name: letters, digits, '-' and '_'
	// (ValidateServiceName). Defaults to "dbworker".
	ServiceName string
	// QueueGroup is shared by every worker of a pool (ValidateQueueGroup).
	// Defaults to "dbworker".
	QueueGroup string
	// Subjects carries the subject prefix.
	Subjects subjects.Subjects
	// MaxConcurrent bounds the db lane: db.execute, db.vector and db.graph
	// requests handled at once. Defaults to 64.
	MaxConcurrent int
	// StateConcurrent bounds the state lane: state.* and cache.* requests
	// handled at once. Defaults to 64.
	StateConcurrent int
	// MaintConcurrent bounds the maint lane: db.stats and db.vacuum requests
	// handled at once (jobs from DB_JOBS are not counted here). Defaults to 4.
	MaintConcurrent int
	// HealthConcurrent bounds the health lane: db.health requests handled at
	// once. Defaults to 2.
	HealthConcurrent int
	// MaxQueued bounds the requests waiting for a slot, in each lane; more are
	// answered UNAVAILABLE at once. Defaults to 256.
	MaxQueued int
	// MaxQueuedBytes bounds the bytes of the requests waiting in each lane; a
	// request that would pass it is answered UNAVAILABLE (one request always
	// may wait, whatever its size). Defaults to 32 MiB.
	MaxQueuedBytes int
	// DefaultTimeout is a request's deadline, from its receipt, when it names
	// no timeout_ms; MaxTimeout caps timeout_ms. They should match the
	// executor's (DB_STATEMENT_TIMEOUT, DB_MAX_STATEMENT_TIMEOUT). Default to
	// 30s and 5m.
	DefaultTimeout time.Duration
	MaxTimeout     time.Duration
	// MaxRequestBytes is the largest request body accepted. Defaults to 1 MiB.
	MaxRequestBytes int
	// DrainTimeout bounds Stop's wait for requests in flight. Defaults to 30s.
	DrainTimeout time.Duration
	// Logger receives one line per request at debug and one per error.
	Logger zerolog.Logger
	// Metrics, when set, receives every request's outcome.
	Metrics *metrics.Metrics
	// Pprof serves /debug/pprof on the HTTP handler, for profiling.
	Pprof bool
	// Tx bounds the interactive transactions (db.tx). Tx.MaxOpen defaults
	// to a quarter of the pool's connections (at least 1), so that
	// transactions and one-shot requests cannot take each other's.
	Tx txn.Config
	// TrustedReplyPrefixes are the strings a reply subject must begin with for
	// the worker to answer on it, such as "_INBOX_orders.". Others, and any
	// $ subject or subject of the worker's own, are dropped, logged and
	// counted (reply.go). Defaults to TrustedReplyPrefixesDefault.
	TrustedReplyPrefixes []string
	// StreamCreditTimeout is how long a streamed answer waits for the
	// caller's credit before it is abandoned (the statement cancelled, the
	// last message TIMEOUT). Defaults to 10s.
	StreamCreditTimeout time.Duration
}

// Deps are the connections a worker serves with. The worker does not close them.
type Deps struct {
	// NATS serves: the micro service, $SRV and every answer. The worker
	// installs its error handler on it while it runs (refused.go).
	NATS *nats.Conn
	// JetStream is the connection of db.health's JetStream check. Defaults
	// to NATS. cmd/worker gives it (and the maintenance service) a second
	// connection when NATS_JS_USER is set, so that the serving user needs no
	// JetStream or results rights.
	JetStream *nats.Conn
	Postgres  *pgexec.Client
	// ReadPostgres is the read pool (POSTGRES_READ_URL), when the Executor
	// has one: db.health reports it. Optional.
	ReadPostgres *pgexec.Client
	Executor     *pgexec.Executor
	State        *state.Service
	// Maintenance serves db.stats and db.vacuum and runs jobs. Optional: without
	// it those endpoints are not served.
	Maintenance *maintenance.Service
	// Vector serves db.vector; Graph serves db.graph. Optional.
	Vector *vector.Service
	Graph  *graph.Service
}

// Worker serves the endpoints.
type Worker struct {
	cfg     Config
	deps    Deps
	log     zerolog.Logger
	started time.Time

	life startstop.Base  // guards Start and Stop
	ctx  context.Context // the requests' context: cancelled when a drain runs out of time

	lanes   map[string]*lane
	running sync.WaitGroup // every request handed to a goroutine
	goPool  *goPool        // the goroutines requests run on
	pgCheck *pgCheck
	// readCheck is the read pool's check; nil without one.
	readCheck *pgCheck
	svc       micro.Service
	inFlight  atomic.Int64
	stats     stats
	js        jetstream.JetStream // for db.health's JetStream check

	extra []endpoint // more endpoints, for tests

	txs        *txn.Registry      // interactive transactions (tx.go)
	txInstance string             // this process's token in their subjects
	txSub      *nats.Subscription // their subjects: db.tx.<instance>.*

	restoreErrHandler func() // puts back the serving connection's error handler (refused.go)
}

// New returns a worker; Start begins serving. Fields of cfg left zero take
// their defaults; a value that is wrong (negative, a service name micro
// would refuse, a DefaultTimeout above MaxTimeout) is an error.
func New(cfg Config, deps Deps) (*Worker, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	if err := validateVersion(Version); err != nil {
		return nil, err
	}
	if deps.NATS == nil || deps.Postgres == nil || deps.Executor == nil || deps.State == nil {
		return nil, errors.New("worker: Deps.NATS, Deps.Postgres, Deps.Executor and Deps.State are required")
	}
	if deps.JetStream == nil {
		deps.JetStream = deps.NATS
	}
	js, err := jetstream.New(deps.JetStream)
	if err != nil {
		return nil, fmt.Errorf("worker: jetstream: %w", err)
	}
	if cfg.Tx.MaxOpen == 0 {
		cfg.Tx.MaxOpen = max(1, int(deps.Postgres.Pool().Config().MaxConns)/4)
	}
	txs, err := txn.New(deps.Executor, cfg.Tx)
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	lanes := map[string]*lane{
		laneTx:     newLane(laneTx, cfg.Tx.MaxOpen, cfg.MaxQueued, cfg.MaxQueuedBytes, true),
		laneDB:     newLane(laneDB, cfg.MaxConcurrent, cfg.MaxQueued, cfg.MaxQueuedBytes, true),
		laneState:  newLane(laneState, cfg.StateConcurrent, cfg.MaxQueued, cfg.MaxQueuedBytes, false),
		laneMaint:  newLane(laneMaint, cfg.MaintConcurrent, cfg.MaxQueued, cfg.MaxQueuedBytes, false),
		laneHealth: newLane(laneHealth, cfg.HealthConcurrent, cfg.MaxQueued, cfg.MaxQueuedBytes, false),
	}
	slots := 0
	for name, l := range lanes {
		slots += cap(l.slots)
		cfg.Metrics.WatchLane(name, func() int { return len(l.slots) }, func() int { return int(l.queued.Load()) })
	}
	return &Worker{cfg: cfg, deps: deps, js: js, lanes: lanes, goPool: newGoPool(slots), pgCheck: newPGCheck(deps.Postgres), readCheck: newPGCheck(deps.ReadPostgres), txs: txs,
		log: cfg.Logger.With().Str("worker_id", cfg.ID).Logger()}, nil
}

// Start starts the maintenance service (when there is one), registers the
// micro service and its endpoints, and returns once they are subscribed.
// Requests are served until Stop. When Start fails, whatever it started is
// stopped, and the worker does not start again; a second Start returns
// startstop.ErrStarted.
func (w *Worker) Start(ctx context.Context) (err error) {
	wctx, err := w.life.StartInit(ctx)
	if err != nil {
		return err
	}
	w.ctx = wctx
	w.started = time.Now()
	var undo []func() // what Start started, undone last first should it fail
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
			w.life.StartFailed()
		}
	}()

	if m := w.deps.Maintenance; m != nil {
		// The caller's ctx, with its deadline, bounds the streams' set-up.
		if err := m.Start(ctx); err != nil {
			return fmt.Errorf("start maintenance: %w", err)
		}
		undo = append(undo, func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.DrainTimeout)
			defer cancel()
			if err := m.Stop(sctx); err != nil {
				w.log.Warn().Err(err).Msg("stop maintenance after a failed start")
			}
		})
	}
	w.restoreErrHandler = w.watchRefusals()
	undo = append(undo, func() { w.restoreErrHandler() })
	svc, err := micro.AddService(w.deps.NATS, micro.Config{
		Name:        w.cfg.ServiceName,
		Version:     microVersion(Version),
		Description: "PostgreSQL, pgvector and shared state over NATS",
		QueueGroup:  w.cfg.QueueGroup,
		// The prefix tells apart environments that share a service name
		// (nats micro info dbworker <id>); "" is no prefix.
		Metadata: map[string]string{"worker_id": w.cfg.ID, "subject_prefix": w.cfg.Subjects.Prefix()},
		StatsHandler: func(ep *micro.Endpoint) any {
			return w.stats.of(ep.Name)
		},
	})
	if err != nil {
		return fmt.Errorf("add micro service: %w", err)
	}
	undo = append(undo, func() { _ = svc.Stop() })
	// Transactions' subjects carry the micro instance id, unique to this
	// process even when two workers share a WORKER_ID; they are subscribed
	// before db.tx can answer a begin.
	w.txInstance = svc.Info().ID
	if err := w.subscribeTx(); err != nil {
		return err
	}
	undo = append(undo, func() { _ = w.txSub.Unsubscribe() })
	for _, ep := range w.endpoints() {
		subject := w.cfg.Subjects.Of(ep.subject)
		if err := svc.AddEndpoint(ep.name, w.dispatch(ep), micro.WithEndpointSubject(subject),
			micro.WithEndpointMetadata(map[string]string{"description": ep.description})); err != nil {
			return fmt.Errorf("add endpoint %s: %w", subject, err)
		}
	}
	// Return once the server has the subscriptions, so a request sent right
	// after Start finds a responder.
	if err := w.deps.NATS.Flush(); err != nil {
		return fmt.Errorf("flush subscriptions: %w", err)
	}
	w.svc = svc
	w.log.Info().Str("service", w.cfg.ServiceName).Str("queue_group", w.cfg.QueueGroup).
		Str("prefix", w.cfg.Subjects.Prefix()).Int("max_concurrent", w.cfg.MaxConcurrent).Int("state_concurrent", w.cfg.StateConcurrent).
		Int("maint_concurrent", w.cfg.MaintConcurrent).Int("health_concurrent", w.cfg.HealthConcurrent).Msg("worker serving")
	return nil
}

// microVersion keeps the version semver-shaped, as micro requires.
func microVersion(v string) string {
	if len(v) > 0 && v[0] == 'v' {
		return v[1:]
	}
	return v
}

// Stop drains the worker: no new requests, every delivered request answered.
// Past ctx's deadline (or the drain timeout) requests still running are
// cancelled; they are answered too. Stop is idempotent.
//
// A Stop before Start, after a failed Start, or after another Stop returns
// nil at once.
func (w *Worker) Stop(ctx context.Context) error {
	if !w.life.StopInit() {
		return nil
	}
	return w.stop(ctx)
}

func (w *Worker) stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.DrainTimeout)
	defer cancel()
	start := time.Now()
	w.log.Info().Int64("in_flight", w.inFlight.Load()).Msg("draining")
	err := w.svc.Stop()
	// Once the server has processed the unsubscribes (the flush), no more
	// requests arrive; the barrier fires when every handler has taken the
	// requests already queued here, so all of them are counted in running.
	if err == nil && !w.deps.NATS.IsClosed() {
		barrier := make(chan struct{})
		if ferr := w.deps.NATS.FlushWithContext(ctx); ferr == nil {
			if berr := w.deps.NATS.Barrier(func() { close(barrier) }); berr == nil {
				select {
				case <-barrier:
				case <-ctx.Done():
				}
			}
		}
	}
	w.drainTx(ctx)
	done := make(chan struct{})
	go func() {
		w.running.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		w.log.Warn().Int64("in_flight", w.inFlight.Load()).Msg("drain timed out; cancelling requests in flight")
		w.life.Cancel()
		<-done
	}
	if w.deps.Maintenance != nil {
		// Jobs running now finish (and are acked) or, past the deadline, are
		// cancelled and left for redelivery.
		if merr := w.deps.Maintenance.Stop(ctx); merr != nil {
			w.log.Warn().Err(merr).Msg("maintenance runs cut off by the drain timeout")
		}
	}
	w.life.Cancel()
	w.pgCheck.close()
	w.readCheck.close()
	if ferr := w.deps.NATS.FlushTimeout(5 * time.Second); ferr != nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
		err = errors.Join(err, fmt.Errorf("flush answers: %w", ferr))
	}
	w.restoreErrHandler()
	w.log.Info().Dur("took", time.Since(start)).Msg("drained")
	return err
}

// InFlight returns the number of requests being handled.
func (w *Worker) InFlight() int64 { return w.inFlight.Load() }
