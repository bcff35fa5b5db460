package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/jeeves-avionics/dbworker/internal/config"
	"github.com/jeeves-avionics/dbworker/internal/graph"
	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/metrics"
	"github.com/jeeves-avionics/dbworker/internal/natsserver"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/named"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/txn"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/memory"
	"github.com/jeeves-avionics/dbworker/internal/state/redis"
	"github.com/jeeves-avionics/dbworker/internal/vector"
	"github.com/jeeves-avionics/dbworker/internal/worker"
)

// Main is the worker program: Run starts it, Close drains and stops it. Tests
// drive it end to end.
type Main struct {
	Config *config.Config
	Log    zerolog.Logger

	embedded *server.Server
	nc       *nats.Conn // serves: endpoints, $SRV, answers
	jsnc     *nats.Conn // JetStream work; nc unless NATS_JS_USER/NATS_JS_CREDS is set
	pg       *pgexec.Client
	read     *pgexec.Client // POSTGRES_READ_URL's pool, or nil
	state    state.Backend
	w        *worker.Worker
	http     *http.Server
}

// stateBackends are the state backends a worker can be configured with.
func stateBackends() *state.Registry {
	r := state.NewRegistry()
	r.Register(state.BackendMemory, memory.Factory)
	r.Register(state.BackendRedis, redis.Factory)
	return r
}

// NewMain returns a program for cfg, logging as cfg says.
func NewMain(cfg *config.Config) *Main {
	return &Main{Config: cfg, Log: cfg.Logger()}
}

// Run connects to NATS (starting an embedded server when configured) and
// PostgreSQL, applies schema files and starts serving.
func (m *Main) Run(ctx context.Context) error {
	cfg := m.Config
	m.Log.Info().Object("config", cfg).Str("version", worker.Version).Msg("starting")
	for _, s := range config.Misspelt(cfg, os.Environ()) {
		m.Log.Warn().Str("variable", s.Variable).Str("did_you_mean", s.DidYouMean).Msg(s.String())
	}
	subs := cfg.Subjects()
	var err error
	if cfg.NATSEmbedded {
		opts, err := natsserver.OptionsFromURL(cfg.NATSURL)
		if err != nil {
			return err
		}
		opts.StoreDir = cfg.NATSEmbeddedDir
		if m.embedded, err = natsserver.Start(opts); err != nil {
			return err
		}
		m.Log.Info().Str("url", m.embedded.ClientURL()).Msg("embedded nats-server started")
	}
	if m.nc, err = m.connectNATS(); err != nil {
		return err
	}
	if m.jsnc, err = m.connectJetStream(); err != nil {
		return err
	}
	if err := m.checkFleet(ctx); err != nil {
		return err
	}
	mode, ddl, err := m.connectPostgres(ctx)
	if err != nil {
		return err
	}
	redis.SetLogger(m.Log)
	backend := cfg.StateBackendName()
	if m.state, err = stateBackends().Open(ctx, backend, state.Options{RedisURL: cfg.RedisURL, KeyPrefix: cfg.StateKeyPrefix, RedisPipelines: &cfg.RedisPipelines}); err != nil {
		return fmt.Errorf("%w (REDIS_URL %s)", err, config.RedactURL(cfg.RedisURL))
	}
	m.Log.Info().Str("backend", backend).Str("deployment_mode", cfg.DeploymentMode).Msg("state backend ready")
	embeddingTTL := cfg.EmbeddingTTL.D()
	stateSvc, err := state.NewService(m.state, state.ServiceConfig{LockTTL: cfg.LockTTL.D(), MaxWait: cfg.LockMaxWait.D(), MaxWaiters: cfg.LockMaxWaiters, EmbeddingTTL: &embeddingTTL})
	if err != nil {
		return err
	}
	var queries map[string]named.Query
	if cfg.NamedQueriesFile != "" {
		if queries, err = named.Load(cfg.NamedQueriesFile); err != nil {
			return err
		}
		m.Log.Info().Int("queries", len(queries)).Bool("adhoc_sql", cfg.AllowAdHocSQL).Msg("named queries loaded")
	}
	exec, err := pgexec.NewExecutor(m.pg, pgexec.ExecutorConfig{
		Mode:           mode,
		MaxRows:        cfg.MaxRows,
		DefaultTimeout: cfg.StatementTimeout.D(),
		MaxTimeout:     cfg.MaxStatementTimeout.D(),
		NamedQueries:   queries,
		NamedOnly:      !cfg.AllowAdHocSQL,
		SafeNumbers:    cfg.SafeNumbers,
		Read:           m.read,
	})
	if err != nil {
		return err
	}
	reg := metrics.New()
	reg.WatchPool(metrics.PoolPrimary, m.pg.Pool())
	if m.read != nil {
		reg.WatchPool(metrics.PoolRead, m.read.Pool())
	}
	if rb, ok := m.state.(*redis.Backend); ok {
		rb.Client().AddHook(redis.ErrorHook(reg.RedisError))
	}
	concurrency := cfg.MaintConcurrency
	backoff := make([]time.Duration, len(cfg.MaintBackOff))
	for i, d := range cfg.MaintBackOff {
		backoff[i] = d.D()
	}
	maint, err := maintenance.New(maintenance.Config{
		WorkerID:             cfg.WorkerID,
		Subjects:             subs,
		Schemas:              cfg.MaintSchemas,
		Concurrency:          &concurrency,
		MaxConnections:       cfg.MaintMaxConnections,
		LockTTL:              cfg.MaintLockTTL.D(),
		AckWait:              cfg.MaintAckWait.D(),
		MaxDeliver:           cfg.MaintMaxDeliver,
		BackOff:              backoff,
		AllowFull:            cfg.MaintAllowFull,
		LockTimeout:          cfg.MaintLockTimeout.D(),
		VacuumTimeout:        cfg.MaintVacuumTimeout.D(),
		Replicas:             int(cfg.JSReplicas),
		UpdateStreams:        cfg.JSUpdateStreams,
		ResultsMaxAge:        cfg.ResultsMaxAge.D(),
		ResultsMaxPerSubject: cfg.ResultsMaxPerSubject,
		DuplicateWindow:      cfg.JobsDuplicateWindow.D(),
		Logger:               m.Log,
		Metrics:              reg,
	}, m.jsnc, m.pg, m.state)
	if err != nil {
		return err
	}
	graphs := graph.New(m.pg)
	if ddl {
		if err := graphs.Init(ctx); err != nil {
			return fmt.Errorf("graph tables: %w", err)
		}
	}
	var vectors *vector.Service
	if m.pg.PGVectorVersion() != "" {
		vcfg := vector.Config{Schema: cfg.VectorSchema, Dimension: cfg.VectorDimension}
		if m.read != nil {
			vcfg.Read = m.read
		}
		if vectors, err = vector.New(m.pg, vcfg); err != nil {
			return err
		}
		if ddl {
			if err := vectors.Init(ctx); err != nil {
				return err
			}
		}
	} else {
		m.Log.Warn().Msg("pgvector is not installed: db.vector is not served")
	}
	m.w, err = worker.New(worker.Config{
		ID:               cfg.WorkerID,
		ServiceName:      cfg.ServiceName,
		QueueGroup:       cfg.QueueGroup,
		Subjects:         subs,
		MaxConcurrent:    cfg.MaxConcurrent,
		StateConcurrent:  cfg.StateConcurrent,
		MaintConcurrent:  cfg.MaintConcurrent,
		HealthConcurrent: cfg.HealthConcurrent,
		MaxQueued:        cfg.MaxQueued,
		MaxQueuedBytes:   cfg.MaxQueuedBytes,
		DefaultTimeout:   cfg.StatementTimeout.D(),
		MaxTimeout:       cfg.MaxStatementTimeout.D(),
		MaxRequestBytes:  cfg.MaxRequestBytes,
		DrainTimeout:     cfg.ShutdownTimeout.D(),
		Tx: txn.Config{MaxOpen: cfg.TxMaxOpen, IdleTimeout: cfg.TxIdleTimeout.D(), Lifetime: cfg.TxLifetime.D(),
			MaxLifetime: cfg.TxMaxLifetime.D()},
		Logger:  m.Log,
		Metrics: reg,
		Pprof:   cfg.Pprof,

		TrustedReplyPrefixes: cfg.TrustedReplyPrefixes,
		StreamCreditTimeout:  cfg.StreamCreditTimeout.D(),
	}, worker.Deps{NATS: m.nc, JetStream: m.jsnc, Postgres: m.pg, ReadPostgres: m.read, Executor: exec, State: stateSvc, Maintenance: maint,
		Vector: vectors, Graph: graphs})
	if err != nil {
		return err
	}
	if err := m.w.Start(ctx); err != nil {
		return err
	}
	if cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
		}
		m.http = &http.Server{Handler: m.w.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := m.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.Log.Error().Err(err).Msg("http listener")
			}
		}()
		m.Log.Info().Str("addr", ln.Addr().String()).Msg("serving /healthz, /readyz and /metrics")
	}
	return nil
}

func (m *Main) connectNATS() (*nats.Conn, error) {
	url := ""
	if m.embedded != nil {
		url = m.embedded.ClientURL()
	}
	return m.Config.ConnectNATS("dbworker/"+m.Config.WorkerID, url, m.Log)
}

// connectJetStream opens the JetStream connection as NATS_JS_USER (or
// NATS_JS_CREDS), or returns the serving connection when neither is set.
func (m *Main) connectJetStream() (*nats.Conn, error) {
	jc, ok := m.Config.JetStreamClient()
	if !ok {
		return m.nc, nil
	}
	url := ""
	if m.embedded != nil {
		url = m.embedded.ClientURL()
	}
	nc, err := jc.ConnectNATS("dbworker/"+m.Config.WorkerID+"/jetstream", url, m.Log)
	if err != nil {
		return nil, fmt.Errorf("JetStream connection (NATS_JS_USER): %w", err)
	}
	return nc, nil
}

// Close drains the worker, then closes NATS, the pool and the embedded server.
// It is safe to call after a failed Run.
func (m *Main) Close() error {
	var errs []error
	if m.w != nil {
		if err := m.w.Stop(context.Background()); err != nil {
			errs = append(errs, err)
		}
	}
	if m.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = m.http.Shutdown(ctx)
		cancel()
	}
	if m.nc != nil {
		m.nc.Close()
	}
	if m.jsnc != nil && m.jsnc != m.nc {
		m.jsnc.Close()
	}
	if m.pg != nil {
		m.pg.Close()
	}
	if m.read != nil {
		m.read.Close()
	}
	if m.state != nil {
		if err := m.state.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close state backend: %w", err))
		}
	}
	if m.embedded != nil {
		m.embedded.Shutdown()
		m.embedded.WaitForShutdown()
	}
	m.Log.Info().Msg("stopped")
	return errors.Join(errs...)
}
