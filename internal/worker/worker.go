// Package worker serves dbworker's NATS endpoints: one micro service whose
// endpoints share a queue group, so any number of workers split the load and
// `nats micro ls/info/stats` see them all.
//
// micro calls an endpoint's handler for one message at a time. The worker hands
// each request to a bounded pool (sourcegraph/conc), so a slow query does not
// hold up fast ones and the goroutine count never exceeds MaxConcurrent. When
// the pool is full the handler waits, and further requests queue in the
// subscription's pending buffer.
//
// Stop drains: the endpoints unsubscribe, requests already delivered are still
// handled and answered, then the pool is waited for. Only past the drain
// timeout are requests in flight cancelled, and those are still answered.
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
	"github.com/sourcegraph/conc/pool"

	"github.com/jeeves-avionics/dbworker/internal/graph"
	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/metrics"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/internal/vector"
)

// Defaults of Config.
const (
	ServiceNameDefault     = "dbworker"
	QueueGroupDefault      = "dbworker"
	MaxConcurrentDefault   = 64
	MaxRequestBytesDefault = 1 << 20
	DrainTimeoutDefault    = 30 * time.Second
)

// Version is the worker's version, reported by micro and db.health. It is set
// at build time with -ldflags "-X .../internal/worker.Version=v1.2.3".
var Version = "0.1.0-dev"

// Config configures a Worker.
type Config struct {
	// ID names this worker in logs, db.health and results. Required.
	ID string
	// ServiceName is the micro service name. Defaults to "dbworker".
	ServiceName string
	// QueueGroup is shared by every worker of a pool. Defaults to "dbworker".
	QueueGroup string
	// Subjects carries the subject prefix.
	Subjects subjects.Subjects
	// MaxConcurrent bounds the requests handled at once. Defaults to 64.
	MaxConcurrent int
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
	// TrustedReplyPrefixes are the strings a reply subject must begin with for
	// the worker to answer on it, such as "_INBOX_orders.". Others, and any
	// $ subject or subject of the worker's own, are dropped, logged and
	// counted (reply.go). Defaults to TrustedReplyPrefixesDefault.
	TrustedReplyPrefixes []string
}

// Deps are the connections a worker serves with. The worker does not close them.
type Deps struct {
	NATS     *nats.Conn
	Postgres *pgexec.Client
	Executor *pgexec.Executor
	State    *state.Service
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

	ctx    context.Context // cancelled when a drain runs out of time
	cancel context.CancelFunc

	pool     *pool.Pool
	svc      micro.Service
	inFlight atomic.Int64
	stats    stats
	js       jetstream.JetStream // for db.health's JetStream check

	extra []endpoint // more endpoints, for tests

	stopOnce sync.Once
	stopErr  error
}

// New returns a worker; Start begins serving.
func New(cfg Config, deps Deps) (*Worker, error) {
	if cfg.ID == "" {
		return nil, errors.New("worker: Config.ID is required")
	}
	if deps.NATS == nil || deps.Postgres == nil || deps.Executor == nil || deps.State == nil {
		return nil, errors.New("worker: Deps.NATS, Deps.Postgres, Deps.Executor and Deps.State are required")
	}
	cfg.ServiceName = cmpOr(cfg.ServiceName, ServiceNameDefault)
	cfg.QueueGroup = cmpOr(cfg.QueueGroup, QueueGroupDefault)
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = MaxConcurrentDefault
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = MaxRequestBytesDefault
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DrainTimeoutDefault
	}
	js, err := jetstream.New(deps.NATS)
	if err != nil {
		return nil, fmt.Errorf("worker: jetstream: %w", err)
	}
	return &Worker{cfg: cfg, deps: deps, js: js, log: cfg.Logger.With().Str("worker_id", cfg.ID).Logger()}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Start registers the micro service and its endpoints. Requests are served
// until Stop.
func (w *Worker) Start(ctx context.Context) error {
	w.started = time.Now()
	w.ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	w.pool = pool.New().WithMaxGoroutines(w.cfg.MaxConcurrent)

	if w.deps.Maintenance != nil {
		if err := w.deps.Maintenance.Start(ctx); err != nil {
			w.cancel()
			return fmt.Errorf("start maintenance: %w", err)
		}
	}
	svc, err := micro.AddService(w.deps.NATS, micro.Config{
		Name:        w.cfg.ServiceName,
		Version:     microVersion(Version),
		Description: "PostgreSQL, pgvector and shared state over NATS",
		QueueGroup:  w.cfg.QueueGroup,
		Metadata:    map[string]string{"worker_id": w.cfg.ID},
		StatsHandler: func(ep *micro.Endpoint) any {
			return w.stats.of(ep.Name)
		},
	})
	if err != nil {
		w.cancel()
		return fmt.Errorf("add micro service: %w", err)
	}
	w.svc = svc
	for _, ep := range w.endpoints() {
		subject := w.cfg.Subjects.Of(ep.subject)
		if err := svc.AddEndpoint(ep.name, w.dispatch(ep), micro.WithEndpointSubject(subject),
			micro.WithEndpointMetadata(map[string]string{"description": ep.description})); err != nil {
			_ = svc.Stop()
			w.cancel()
			return fmt.Errorf("add endpoint %s: %w", subject, err)
		}
	}
	// Return once the server has the subscriptions, so a request sent right
	// after Start finds a responder.
	if err := w.deps.NATS.Flush(); err != nil {
		_ = svc.Stop()
		w.cancel()
		return fmt.Errorf("flush subscriptions: %w", err)
	}
	w.log.Info().Str("service", w.cfg.ServiceName).Str("queue_group", w.cfg.QueueGroup).
		Str("prefix", w.cfg.Subjects.Prefix()).Int("max_concurrent", w.cfg.MaxConcurrent).Msg("worker serving")
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
func (w *Worker) Stop(ctx context.Context) error {
	w.stopOnce.Do(func() { w.stopErr = w.stop(ctx) })
	return w.stopErr
}

func (w *Worker) stop(ctx context.Context) error {
	if w.svc == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.DrainTimeout)
	defer cancel()
	start := time.Now()
	w.log.Info().Int64("in_flight", w.inFlight.Load()).Msg("draining")
	err := w.svc.Stop()
	// Once the server has processed the unsubscribes (the flush), no more
	// requests arrive; the barrier fires when every handler has taken the
	// requests already queued here, so all of them are in the pool.
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
	done := make(chan struct{})
	go func() {
		w.pool.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		w.log.Warn().Int64("in_flight", w.inFlight.Load()).Msg("drain timed out; cancelling requests in flight")
		w.cancel()
		<-done
	}
	if w.deps.Maintenance != nil {
		// Jobs running now finish (and are acked) or, past the deadline, are
		// cancelled and left for redelivery.
		if merr := w.deps.Maintenance.Stop(ctx); merr != nil {
			w.log.Warn().Err(merr).Msg("maintenance runs cut off by the drain timeout")
		}
	}
	w.cancel()
	if ferr := w.deps.NATS.FlushTimeout(5 * time.Second); ferr != nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
		err = errors.Join(err, fmt.Errorf("flush answers: %w", ferr))
	}
	w.log.Info().Dur("took", time.Since(start)).Msg("drained")
	return err
}

// InFlight returns the number of requests being handled.
func (w *Worker) InFlight() int64 { return w.inFlight.Load() }
