package pgexec

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/migrate"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgrole"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pooler"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/stmtcache"
	pgxvec "github.com/pgvector/pgvector-go/pgx"
	"github.com/rs/zerolog"
)

// Defaults of Config.
const (
	MaxConnsDefault        = 30
	AcquireTimeoutDefault  = 30 * time.Second
	MaxConnLifetimeDefault = time.Hour
	SessionTimeoutDefault  = 5 * time.Minute
	MaxMessageBytesDefault = 64 << 20
	MinConnsDefault        = 0
	MaxConnIdleTimeDefault = time.Minute
)

// Config configures a Client.
type Config struct {
	// DSN is a postgres:// URL or a key=value connection string.
	DSN string
	// MaxConns is the pool's size limit. Defaults to 30.
	MaxConns int32
	// AcquireTimeout bounds the wait for a free connection; past it calls fail
	// with pgerr.ErrPoolExhausted. Defaults to 30s.
	AcquireTimeout time.Duration
	// MaxConnLifetime recycles connections. Defaults to 1h.
	MaxConnLifetime time.Duration
	// MinConns are kept open even when idle. Defaults to 0.
	MinConns int32
	// MaxConnIdleTime closes a connection idle for longer (down to
	// MinConns), checked every minute. Defaults to 1m.
	MaxConnIdleTime time.Duration
	// Pooler is what DSN reaches: PostgreSQL (pooler.None, the default) or a
	// pooler in transaction mode, through which no startup parameter but
	// application_name is sent and every request runs in a transaction that
	// sets what it needs (package pooler).
	Pooler pooler.Mode
	// SessionDSN, when set, is what the connections kept out of the pool
	// that need a session of their own (a VACUUM run's) connect to, when DSN
	// is a transaction pooler: PostgreSQL itself, or a session-mode pooler.
	SessionDSN string
	// SessionStatementTimeout is set as every direct connection's
	// statement_timeout, a server-side cap on any statement (through a
	// transaction pooler every request sets its own). Defaults to 5m.
	SessionStatementTimeout time.Duration
	// MaxMessageBytes bounds one protocol message from the server, such as one
	// row: a larger one fails the request with TOO_LARGE and closes its
	// connection, instead of being read into memory. Defaults to 64 MiB.
	MaxMessageBytes int
	// CreateExtension runs CREATE EXTENSION IF NOT EXISTS vector at Connect,
	// under the start-up DDL lock (migrate.Locked), unless the database
	// refuses writes.
	CreateExtension bool
	// ApplicationName shows in pg_stat_activity. Defaults to "dbworker".
	ApplicationName string
	// Logger receives start-up facts and warnings. Defaults to a no-op logger.
	Logger *zerolog.Logger
}

// Client is the worker's pgx connection pool: set up for the executor's
// sessions (no prepared statement on the server, descriptions cached per
// connection), with pgvector's types registered when the extension exists.
// It is safe for concurrent use.
type Client struct {
	pool           *pgxpool.Pool
	acquireTimeout time.Duration
	log            zerolog.Logger

	serverVersion  string
	pgvector       string // extension version, "" when not installed
	pgvectorSchema string // where the extension's types live
	pooler         pooler.Mode
	writesRefused  bool            // a hot standby, or default_transaction_read_only
	session        *pgx.ConnConfig // connections that need a session; nil: none can have one

	types *pgjson.Catalog

	stmtMu sync.Mutex
	stmts  map[*pgconn.PgConn]*stmtcache.LRU
}

// Connect creates the pool, checks the server, creates the vector extension
// when asked and allowed, and registers pgvector's types on every connection
// when the extension exists.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("parse postgres connection string: %w", errors.Unwrap(err))
	}
	c := &Client{
		acquireTimeout: cfg.AcquireTimeout,
		types:          pgjson.NewCatalog(),
		stmts:          make(map[*pgconn.PgConn]*stmtcache.LRU),
	}
	if cfg.Logger != nil {
		c.log = *cfg.Logger
	} else {
		c.log = zerolog.Nop()
	}
	if c.acquireTimeout <= 0 {
		c.acquireTimeout = AcquireTimeoutDefault
	}
	pcfg.MaxConns = cfg.MaxConns
	if pcfg.MaxConns <= 0 {
		pcfg.MaxConns = MaxConnsDefault
	}
	pcfg.MaxConnLifetime = cfg.MaxConnLifetime
	if pcfg.MaxConnLifetime <= 0 {
		pcfg.MaxConnLifetime = MaxConnLifetimeDefault
	}
	pcfg.MaxConnLifetimeJitter = pcfg.MaxConnLifetime / 10
	pcfg.MinConns = min(max(cfg.MinConns, 0), pcfg.MaxConns)
	pcfg.MaxConnIdleTime = cmp.Or(max(cfg.MaxConnIdleTime, 0), MaxConnIdleTimeDefault)
	if c.pooler, err = pooler.ParseMode(string(cfg.Pooler)); err != nil {
		return nil, fmt.Errorf("pgexec: %w", err)
	}
	// No prepared statement of the worker's lives on the server: pgx sends
	// its statements unnamed with cached descriptions too, so the executor's
	// reset (DISCARD ALL, session.go) takes nothing pgx relies on.
	pcfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	pcfg.ConnConfig.MaxProtocolMessageBodyLen = cmp.Or(max(cfg.MaxMessageBytes, 0), MaxMessageBytesDefault)
	sessionTimeout := cfg.SessionStatementTimeout
	if sessionTimeout <= 0 {
		sessionTimeout = SessionTimeoutDefault
	}
	appName := cfg.ApplicationName
	if appName == "" {
		appName = "dbworker"
	}
	maps.Copy(pcfg.ConnConfig.RuntimeParams, pooler.StartupParams(c.pooler, appName, sessionTimeout))
	// A cancelled context cancels the statement on the server and keeps the
	// connection; only a server that ignores the cancel loses the connection.
	pcfg.ConnConfig.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return pooler.ContextWatcher(c.pooler, pc, 5*time.Second)
	}

	if err := c.prepareServer(ctx, pcfg.ConnConfig, cfg.CreateExtension); err != nil {
		return nil, err
	}
	if c.session, err = pooler.SessionConfig(pcfg.ConnConfig, cfg.SessionDSN, c.pooler, appName, sessionTimeout); err != nil {
		return nil, err
	}
	if c.pgvector != "" {
		pcfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
			return registerVectorTypes(ctx, conn, c.pgvectorSchema)
		}
	}
	pcfg.BeforeClose = func(conn *pgx.Conn) {
		c.stmtMu.Lock()
		delete(c.stmts, conn.PgConn())
		c.stmtMu.Unlock()
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("create postgres pool: %w", err)
	}
	c.pool = pool
	return c, nil
}

// prepareServer connects once to learn the server version and set up pgvector.
func (c *Client) prepareServer(ctx context.Context, cc *pgx.ConnConfig, createExt bool) error {
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	c.serverVersion = conn.PgConn().ParameterStatus("server_version")
	// A hot standby, and a database or role with default_transaction_read_only.
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.current_setting('transaction_read_only') = 'on'").Scan(&c.writesRefused); err != nil {
		return fmt.Errorf("check whether the database takes writes: %w", err)
	}
	if createExt && !c.writesRefused {
		if err := migrate.CreateExtension(ctx, conn, "vector"); err != nil {
			c.log.Warn().Err(err).Msg("could not create the pgvector extension; vector columns come back as text")
		}
	}
	err = conn.QueryRow(ctx, `SELECT e.extversion, n.nspname FROM pg_extension e
		JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'`).Scan(&c.pgvector, &c.pgvectorSchema)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		c.pgvector = ""
		c.log.Warn().Msg("pgvector is not installed in this database; vector columns come back as text")
	case err != nil:
		return fmt.Errorf("check for pgvector: %w", err)
	}
	return nil
}

// registerVectorTypes registers pgvector's types on a connection, found by
// their schema-qualified names: pgvector-go's RegisterTypes looks them up
// through the search_path and fails a connection whose search_path does not
// hold the extension's schema.
func registerVectorTypes(ctx context.Context, conn *pgx.Conn, schema string) error {
	q := pgx.Identifier{schema}.Sanitize() + "."
	var oids [6]*uint32
	err := conn.QueryRow(ctx, "SELECT to_regtype($1)::oid, to_regtype($2)::oid, to_regtype($3)::oid, to_regtype($4)::oid, to_regtype($5)::oid, to_regtype($6)::oid",
		q+"vector", q+"_vector", q+"halfvec", q+"_halfvec", q+"sparsevec", q+"_sparsevec").
		Scan(&oids[0], &oids[1], &oids[2], &oids[3], &oids[4], &oids[5])
	if err != nil {
		return fmt.Errorf("look up pgvector types: %w", err)
	}
	tm := conn.TypeMap()
	for i, codec := range []pgtype.Codec{&pgxvec.VectorCodec{}, &pgxvec.HalfVectorCodec{}, &pgxvec.SparseVectorCodec{}} {
		oid, arrayOID := oids[2*i], oids[2*i+1]
		if oid == nil {
			continue
		}
		t := &pgtype.Type{Name: []string{"vector", "halfvec", "sparsevec"}[i], OID: *oid, Codec: codec}
		tm.RegisterType(t)
		if arrayOID != nil {
			tm.RegisterType(&pgtype.Type{Name: "_" + t.Name, OID: *arrayOID, Codec: &pgtype.ArrayCodec{ElementType: t}})
		}
	}
	return nil
}

// Close closes every connection of the pool.
func (c *Client) Close() { c.pool.Close() }

// Pool returns the underlying pool, for its metrics and for tests. Code
// that runs SQL takes a Querier instead.
func (c *Client) Pool() *pgxpool.Pool { return c.pool }

// Querier is the narrow face of PostgreSQL that vector, graph and
// maintenance use: pgx's query methods and transactions. A Client, its
// pool, a *pgx.Conn and a pgx.Tx all satisfy it.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Exec runs a statement on a pooled connection.
func (c *Client) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return c.pool.Exec(ctx, sql, args...)
}

// Query runs a query on a pooled connection.
func (c *Client) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return c.pool.Query(ctx, sql, args...)
}

// QueryRow runs a query that returns at most one row.
func (c *Client) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return c.pool.QueryRow(ctx, sql, args...)
}

// Begin starts a transaction on a pooled connection.
func (c *Client) Begin(ctx context.Context) (pgx.Tx, error) { return c.pool.Begin(ctx) }

// ConnConfig returns a copy of the pool's connection settings, for the
// connections that are kept out of the pool (maintenance, health checks).
func (c *Client) ConnConfig() *pgx.ConnConfig { return c.pool.Config().ConnConfig.Copy() }

// SessionConnConfig returns the settings of a connection that needs a
// session of its own, which a transaction pooler cannot give: Config's
// SessionDSN then, and an error without it.
func (c *Client) SessionConnConfig() (*pgx.ConnConfig, error) {
	if c.session == nil {
		return nil, pooler.ErrNoSession
	}
	return c.session.Copy(), nil
}

// WritesRefused reports a database that refuses writes: a hot standby, or
// default_transaction_read_only on. The worker then runs no start-up DDL.
func (c *Client) WritesRefused() bool { return c.writesRefused }

// CheckReadOnlyRole runs pgrole.CheckReadOnly on the pool.
func (c *Client) CheckReadOnlyRole(ctx context.Context) error {
	return pgrole.CheckReadOnly(ctx, c.pool)
}

// ServerVersion returns the server's version string.
func (c *Client) ServerVersion() string { return c.serverVersion }

// PGVectorVersion returns the installed pgvector version, or "" without it.
func (c *Client) PGVectorVersion() string { return c.pgvector }

// Acquire takes a connection from the pool, waiting at most the acquire
// timeout; past it the error wraps pgerr.ErrPoolExhausted.
func (c *Client) Acquire(ctx context.Context) (*pgxpool.Conn, error) {
	actx, cancel := context.WithTimeoutCause(ctx, c.acquireTimeout, pgerr.ErrPoolExhausted)
	defer cancel()
	conn, err := c.pool.Acquire(actx)
	if err != nil {
		if ctx.Err() == nil && errors.Is(context.Cause(actx), pgerr.ErrPoolExhausted) {
			return nil, fmt.Errorf("acquire connection: %w", pgerr.ErrPoolExhausted)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("acquire connection: %w", ctx.Err())
		}
		return nil, fmt.Errorf("acquire connection: %w", err)
	}
	return conn, nil
}

// stmtCacheFor returns the description cache of a connection, creating it
// on first use.
func (c *Client) stmtCacheFor(pc *pgconn.PgConn) *stmtcache.LRU {
	c.stmtMu.Lock()
	defer c.stmtMu.Unlock()
	sc, ok := c.stmts[pc]
	if !ok {
		sc = stmtcache.New(stmtcache.Size)
		c.stmts[pc] = sc
	}
	return sc
}
