// Package config loads the worker's configuration from the environment with
// envconfig and validates every field, so a bad value stops start-up with one
// clear line instead of a surprise at the first request.
//
// A variable left unset keeps its default, and each default is the constant
// of the package the variable configures (worker.MaxConcurrentDefault,
// maintenance.LockTTLDefault...; Defaults fills them in), or one of this
// package's for the few that configure no package. No struct tag holds a
// default, so the library and the environment cannot disagree, and
// docs/operations.md's table is checked against the same values.
//
// The variable names keep those of the Python module dbworker replaces
// (POSTGRES_URL, POSTGRES_POOL_SIZE, ...). `worker -h` prints them all.
package config

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pooler"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/internal/worker"
)

// Config is the worker's configuration. Every field is read from the variable
// named in its envconfig tag; an unset variable keeps the field's default
// (Defaults), which is the constant of the package it configures.
type Config struct {
	Client
	Streams

	// PostgresURL is a full connection URL. When empty the URL is built from the
	// POSTGRES_HOST/PORT/DATABASE/USER/PASSWORD parts.
	PostgresURL      string `envconfig:"POSTGRES_URL" desc:"PostgreSQL connection URL; overrides the POSTGRES_HOST.. parts"`
	PostgresHost     string `envconfig:"POSTGRES_HOST" desc:"PostgreSQL host (when POSTGRES_URL is empty)"`
	PostgresPort     int    `envconfig:"POSTGRES_PORT" desc:"PostgreSQL port"`
	PostgresDatabase string `envconfig:"POSTGRES_DATABASE" desc:"PostgreSQL database"`
	PostgresUser     string `envconfig:"POSTGRES_USER" desc:"PostgreSQL user"`
	PostgresPassword string `envconfig:"POSTGRES_PASSWORD" desc:"PostgreSQL password (URL-escaped for you; never logged)"`
	// PoolSize + MaxOverflow is the pool's maximum number of connections.
	PoolSize    int     `envconfig:"POSTGRES_POOL_SIZE" desc:"connections kept in the pool"`
	MaxOverflow int     `envconfig:"POSTGRES_MAX_OVERFLOW" desc:"extra connections allowed under load; pool max = size + overflow"`
	PoolTimeout Seconds `envconfig:"POSTGRES_POOL_TIMEOUT" desc:"longest wait for a free connection (seconds or a Go duration)"`
	PoolRecycle Seconds `envconfig:"POSTGRES_POOL_RECYCLE" desc:"connection lifetime before it is replaced"`
	// Idle connections are closed, down to MinConns.
	MinConns        int     `envconfig:"POSTGRES_MIN_CONNS" desc:"connections kept open even when idle"`
	MaxConnIdleTime Seconds `envconfig:"POSTGRES_MAX_CONN_IDLE_TIME" desc:"a connection idle this long is closed (down to POSTGRES_MIN_CONNS), checked every minute"`
	// Pooler is what POSTGRES_URL (and POSTGRES_READ_URL) reach.
	Pooler     string `envconfig:"POSTGRES_POOLER" desc:"none (PostgreSQL, or a session-mode pooler) or transaction (PgBouncer's pool_mode=transaction): no startup parameters, settings per transaction"`
	SessionURL string `envconfig:"POSTGRES_SESSION_URL" desc:"with POSTGRES_POOLER=transaction: URL of PostgreSQL itself (or a session-mode pooler) for VACUUM runs, which need a session; empty: db.vacuum is refused"`
	ReadURL    string `envconfig:"POSTGRES_READ_URL" desc:"URL of a replica: a second pool serving read_only requests, read-only transactions and db.vector searches"`
	Migrate    bool   `envconfig:"POSTGRES_MIGRATE" desc:"run start-up DDL (extension, schema files, graph and vector catalogs); false skips it, as does a database that refuses writes"`
	// MaxMessageBytes bounds one message from PostgreSQL (one row).
	MaxMessageBytes int `envconfig:"POSTGRES_MAX_MESSAGE_BYTES" desc:"largest row (protocol message) read from PostgreSQL, a larger one is TOO_LARGE; 0: the NATS server's max payload plus 64 KiB"`
	// CreateExtension runs CREATE EXTENSION IF NOT EXISTS vector at start.
	CreateExtension bool   `envconfig:"POSTGRES_CREATE_EXTENSION" desc:"create the pgvector extension at start when allowed"`
	SchemaDir       string `envconfig:"POSTGRES_SCHEMA_DIR" desc:"folder of .sql files applied once each at start, tracked in dbworker_schema_migrations"`

	// The JetStream connection. With NATS_JS_USER or NATS_JS_CREDS set the
	// worker opens a second connection, as that user, for its streams,
	// results, progress and jobs consumer, and serves (endpoints, $SRV,
	// answers) on the first: the serving user then needs no publish right
	// beyond its callers' inboxes (nats-server.conf, users worker and
	// worker_js). Unset, one connection does both, as on a server without
	// users.
	NATSJSUser        string `envconfig:"NATS_JS_USER" desc:"NATS user of the worker's JetStream connection (streams, results, progress, jobs); empty: the serving connection does JetStream work too"`
	NATSJSPassword    string `envconfig:"NATS_JS_PASSWORD" desc:"password of NATS_JS_USER (never logged)"`
	NATSJSCredsFile   string `envconfig:"NATS_JS_CREDS" desc:"credentials file of the JetStream connection (instead of NATS_JS_USER)"`
	NATSJSInboxPrefix string `envconfig:"NATS_JS_INBOX_PREFIX" desc:"inbox prefix of the JetStream connection, e.g. _INBOX_worker_js (default: NATS_INBOX_PREFIX)"`

	NATSEmbedded    bool   `envconfig:"NATS_EMBEDDED" desc:"start an in-process nats-server with JetStream on NATS_URL's address"`
	NATSEmbeddedDir string `envconfig:"NATS_EMBEDDED_STORE_DIR" desc:"JetStream store of the embedded server (default: a folder under the OS temp dir)"`
	ServiceName     string `envconfig:"SERVICE_NAME" desc:"micro service name (nats micro ls)"`
	QueueGroup      string `envconfig:"QUEUE_GROUP" desc:"queue group shared by the pool of workers"`
	WorkerID        string `envconfig:"WORKER_ID" desc:"this worker's id (default: hostname-pid)"`
	// Lanes: each kind of work has its own concurrency budget, so slow
	// queries cannot starve state requests or health checks.
	MaxConcurrent    int     `envconfig:"WORKER_MAX_CONCURRENT" desc:"db lane: db.execute, db.vector and db.graph requests handled at once"`
	StateConcurrent  int     `envconfig:"WORKER_STATE_CONCURRENT" desc:"state lane: state.* and cache.* requests handled at once"`
	MaintConcurrent  int     `envconfig:"WORKER_MAINT_CONCURRENT" desc:"maint lane: db.stats and db.vacuum requests handled at once (jobs: MAINT_CONCURRENCY)"`
	HealthConcurrent int     `envconfig:"WORKER_HEALTH_CONCURRENT" desc:"health lane: db.health requests handled at once"`
	MaxQueued        int     `envconfig:"WORKER_MAX_QUEUED" desc:"requests waiting for a slot, per lane; more are answered UNAVAILABLE at once"`
	MaxQueuedBytes   int     `envconfig:"WORKER_MAX_QUEUED_BYTES" desc:"bytes of the requests waiting in a lane; past it UNAVAILABLE (one request may always wait)"`
	TxMaxOpen        int     `envconfig:"DB_TX_MAX_OPEN" desc:"interactive transactions (db.tx) open at once on this worker, each holding a pooled connection (default: a quarter of the pool)"`
	TxIdleTimeout    Seconds `envconfig:"DB_TX_IDLE_TIMEOUT" desc:"an interactive transaction is rolled back after this long without a request, unless begin names idle_timeout_ms"`
	TxLifetime       Seconds `envconfig:"DB_TX_LIFETIME" desc:"an interactive transaction is rolled back this long after begin, unless begin names max_lifetime_ms"`
	TxMaxLifetime    Seconds `envconfig:"DB_TX_MAX_LIFETIME" desc:"cap on a begin's idle_timeout_ms and max_lifetime_ms"`
	MaxRequestBytes  int     `envconfig:"MAX_REQUEST_BYTES" desc:"largest request body accepted (TOO_LARGE above)"`
	Pprof            bool    `envconfig:"PPROF" desc:"serve /debug/pprof on HTTP_ADDR (profiling; keep it off in production)"`
	HTTPAddr         string  `envconfig:"HTTP_ADDR" desc:"address of /healthz, /readyz and /metrics, e.g. :8080; empty: no HTTP listener"`
	ShutdownTimeout  Seconds `envconfig:"SHUTDOWN_TIMEOUT" desc:"longest drain on SIGTERM before in-flight work is cancelled"`

	// TrustedReplyPrefixes are the strings a reply subject must begin with for
	// the worker to answer on it (worker.Config.TrustedReplyPrefixes).
	TrustedReplyPrefixes []string `envconfig:"WORKER_TRUSTED_REPLY_PREFIXES" desc:"answer only reply subjects beginning with one of these (comma separated); others are dropped, logged and counted"`
	// StreamCreditTimeout is worker.Config.StreamCreditTimeout.
	StreamCreditTimeout Seconds `envconfig:"WORKER_STREAM_CREDIT_TIMEOUT" desc:"longest wait of a streamed answer for the caller's credit; past it the statement is cancelled"`

	DeploymentMode string `envconfig:"DEPLOYMENT_MODE" desc:"single_node (state in memory) or distributed (state in Redis)"`
	StateBackend   string `envconfig:"STATE_BACKEND" desc:"memory or redis; overrides what DEPLOYMENT_MODE implies"`
	// MemoryAllowPeers lets a worker with state in memory start while other
	// workers serve its prefix: each then keeps state of its own.
	MemoryAllowPeers bool    `envconfig:"STATE_MEMORY_ALLOW_PEERS" desc:"let a worker with state in memory start while other workers serve its SUBJECT_PREFIX (each keeps its own limits, locks and values); false: it refuses to start"`
	RedisURL         string  `envconfig:"REDIS_URL" desc:"redis:// or rediss:// URL; addr= parameters for a cluster, master_name= for Sentinel"`
	StateKeyPrefix   string  `envconfig:"STATE_KEY_PREFIX" desc:"prefix of every Redis key"`
	RedisPipelines   int     `envconfig:"REDIS_PIPELINES" desc:"pipelines of state.ratelimit and state.lock calls in flight at once; calls that arrive while all are busy share the next one; 0 sends each call alone"`
	LockTTL          Seconds `envconfig:"STATE_LOCK_TTL" desc:"lock TTL when an acquire names none"`
	LockMaxWait      Seconds `envconfig:"STATE_LOCK_MAX_WAIT" desc:"cap on an acquire's wait_ms"`
	LockMaxWaiters   int     `envconfig:"STATE_LOCK_MAX_WAITERS" desc:"acquires that may wait (wait_ms) at once; past it an acquire answers at once with wait_refused"`
	EmbeddingTTL     Seconds `envconfig:"CACHE_EMBEDDING_TTL" desc:"embedding TTL when a set names none; 0 keeps them"`

	VectorDimension int    `envconfig:"PGVECTOR_DIMENSION" desc:"dimension of a new db.vector collection when none is given"`
	VectorSchema    string `envconfig:"VECTOR_SCHEMA" desc:"schema of the db.vector collections"`

	MaintSchemas     []string `envconfig:"MAINT_SCHEMAS" desc:"schemas db.stats covers when none is named (comma separated)"`
	MaintConcurrency int      `envconfig:"MAINT_CONCURRENCY" desc:"maintenance jobs this worker runs at once; 0 takes no jobs"`
	// MaintMaxConnections bounds the connections a worker opens outside its
	// pool for VACUUM (one per run). Beyond it jobs wait and requests answer
	// UNAVAILABLE. Defaults to 2; at least 1.
	MaintMaxConnections int       `envconfig:"MAINT_MAX_CONNECTIONS" desc:"VACUUM connections this worker opens at most, outside the pool; beyond it jobs wait and requests answer UNAVAILABLE"`
	MaintLockTTL        Seconds   `envconfig:"MAINT_LOCK_TTL" desc:"maintenance lock TTL, refreshed while a run lasts"`
	MaintAckWait        Seconds   `envconfig:"MAINT_ACK_WAIT" desc:"a job without progress for this long is redelivered"`
	MaintMaxDeliver     int       `envconfig:"MAINT_MAX_DELIVER" desc:"deliveries of a job at most"`
	MaintBackOff        []Seconds `envconfig:"MAINT_BACKOFF" desc:"redelivery delays, e.g. 30s,1m,5m (fewer than MAINT_MAX_DELIVER)"`
	MaintAllowFull      bool      `envconfig:"MAINT_ALLOW_FULL" desc:"allow VACUUM FULL"`
	MaintLockTimeout    Seconds   `envconfig:"MAINT_LOCK_TIMEOUT" desc:"VACUUM's lock_timeout"`
	MaintVacuumTimeout  Seconds   `envconfig:"MAINT_VACUUM_TIMEOUT" desc:"default and cap of a VACUUM's timeout_ms"`

	ExecuteMode        pgexec.Mode `envconfig:"DB_EXECUTE_MODE" desc:"read_write, read_only or disabled"`
	ReadOnlyPrivileged bool        `envconfig:"DB_READ_ONLY_ALLOW_PRIVILEGED" desc:"development only: let a read_only worker start with a login that can write"`
	NamedQueriesFile   string      `envconfig:"DB_NAMED_QUERIES" desc:"YAML file of named queries, run as {\"query\":\"name\",\"params\":{...}}"`
	AllowAdHocSQL      bool        `envconfig:"DB_ALLOW_ADHOC" desc:"false allows only named queries on db.execute (an allowlist)"`
	// SafeNumbers is the default of db.execute's safe_numbers: true answers
	// numeric, and int8 past ±(2^53−1), as JSON strings. Defaults to false:
	// it changes the answers of every caller that does not send the field,
	// pkg/client's included (client.WithSafeNumbers(false) opts a call out).
	SafeNumbers         bool    `envconfig:"DB_SAFE_NUMBERS" desc:"default of db.execute's safe_numbers: numeric, and int8 past ±(2^53-1), answered as JSON strings"`
	MaxRows             int     `envconfig:"DB_MAX_ROWS" desc:"cap on max_rows; also the default when a request names none"`
	StatementTimeout    Seconds `envconfig:"DB_STATEMENT_TIMEOUT" desc:"statement timeout when a request names none"`
	MaxStatementTimeout Seconds `envconfig:"DB_MAX_STATEMENT_TIMEOUT" desc:"cap on a request's timeout_ms"`
}

// Seconds is a duration read either as a number of seconds ("30", as the seed
// read it) or as a Go duration ("30s", "5m").
type Seconds time.Duration

// Decode implements envconfig.Decoder.
func (s *Seconds) Decode(v string) error {
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		*s = Seconds(time.Duration(n * float64(time.Second)))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return notSecondsError{}
	}
	*s = Seconds(d)
	return nil
}

// notSecondsError is the error of a value that is not a Seconds.
type notSecondsError struct{}

func (notSecondsError) Error() string   { return "neither seconds nor a duration" }
func (notSecondsError) Accepts() string { return "seconds (30) or a duration (30s, 5m)" }

// D returns the duration.
func (s Seconds) D() time.Duration { return time.Duration(s) }

// Load reads the configuration from the environment, fills defaults and
// validates it.
func Load() (*Config, error) {
	c := Defaults()
	if err := process(&c); err != nil {
		return nil, err
	}
	c.withDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) withDefaults() {
	if c.WorkerID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "worker"
		}
		c.WorkerID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
}

// Validate checks every field and returns one error, on one line, naming each
// bad variable.
func (c *Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	for _, v := range []struct{ name, url string }{{"POSTGRES_URL", c.PostgresURL}, {"POSTGRES_READ_URL", c.ReadURL}, {"POSTGRES_SESSION_URL", c.SessionURL}} {
		if v.url == "" {
			continue
		}
		u, err := url.Parse(v.url)
		switch {
		case err != nil:
			bad(v.name, "not a URL (%v)", redactURLError(err))
		case u.Scheme != "postgres" && u.Scheme != "postgresql":
			bad(v.name, "scheme must be postgres:// or postgresql://, got %q", u.Scheme)
		}
	}
	if c.PostgresURL == "" && (c.PostgresPort < 1 || c.PostgresPort > 65535) {
		bad("POSTGRES_PORT", "must be 1..65535, got %d", c.PostgresPort)
	}
	if _, err := pooler.ParseMode(c.Pooler); err != nil {
		bad("POSTGRES_POOLER", "must be none or transaction, got %q", c.Pooler)
	}
	if c.MinConns < 0 || c.MinConns > c.PoolMax() {
		bad("POSTGRES_MIN_CONNS", "must be 0 to the pool's maximum (%d), got %d", c.PoolMax(), c.MinConns)
	}
	if c.MaxConnIdleTime.D() <= 0 {
		bad("POSTGRES_MAX_CONN_IDLE_TIME", "must be positive, got %s", c.MaxConnIdleTime.D())
	}
	if c.PoolSize < 1 {
		bad("POSTGRES_POOL_SIZE", "must be at least 1, got %d", c.PoolSize)
	}
	if c.MaxOverflow < 0 {
		bad("POSTGRES_MAX_OVERFLOW", "must not be negative, got %d", c.MaxOverflow)
	}
	if c.PoolTimeout.D() <= 0 {
		bad("POSTGRES_POOL_TIMEOUT", "must be positive, got %s", c.PoolTimeout.D())
	}
	if c.MaxMessageBytes != 0 && c.MaxMessageBytes < 1<<20 {
		bad("POSTGRES_MAX_MESSAGE_BYTES", "must be 0 (the NATS max payload) or at least 1048576 (1 MiB), got %d", c.MaxMessageBytes)
	}
	if c.PoolRecycle.D() <= 0 {
		bad("POSTGRES_POOL_RECYCLE", "must be positive, got %s", c.PoolRecycle.D())
	}
	c.Client.validate(bad)
	c.Streams.validate(bad)
	if c.NATSJSPassword != "" && c.NATSJSUser == "" {
		bad("NATS_JS_PASSWORD", "is set without NATS_JS_USER")
	}
	if c.NATSJSInboxPrefix != "" {
		if err := subjects.ValidateInboxPrefix(c.NATSJSInboxPrefix); err != nil {
			bad("NATS_JS_INBOX_PREFIX", "%v", err)
		}
	}
	// micro.AddService refuses these at start, after maintenance has started:
	// refused here, they stop nothing but the start-up.
	if err := worker.ValidateServiceName(c.ServiceName); err != nil {
		bad("SERVICE_NAME", "%v", err)
	}
	if err := worker.ValidateQueueGroup(c.QueueGroup); err != nil {
		bad("QUEUE_GROUP", "%v", err)
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"WORKER_MAX_CONCURRENT", c.MaxConcurrent}, {"WORKER_STATE_CONCURRENT", c.StateConcurrent}, {"WORKER_MAINT_CONCURRENT", c.MaintConcurrent},
		{"WORKER_HEALTH_CONCURRENT", c.HealthConcurrent}, {"WORKER_MAX_QUEUED", c.MaxQueued}, {"WORKER_MAX_QUEUED_BYTES", c.MaxQueuedBytes}} {
		if v.n < 1 {
			bad(v.name, "must be at least 1, got %d", v.n)
		}
	}
	if c.TxMaxOpen < 0 {
		bad("DB_TX_MAX_OPEN", "must not be negative (0: a quarter of the pool), got %d", c.TxMaxOpen)
	}
	if c.TxMaxLifetime.D() < time.Millisecond || c.TxLifetime.D() < time.Millisecond || c.TxIdleTimeout.D() < time.Millisecond ||
		c.TxLifetime.D() > c.TxMaxLifetime.D() || c.TxIdleTimeout.D() > c.TxMaxLifetime.D() {
		bad("DB_TX_IDLE_TIMEOUT", "DB_TX_IDLE_TIMEOUT (%s) and DB_TX_LIFETIME (%s) must be at least 1ms and at most DB_TX_MAX_LIFETIME (%s)",
			c.TxIdleTimeout.D(), c.TxLifetime.D(), c.TxMaxLifetime.D())
	}
	if len(c.TrustedReplyPrefixes) == 0 {
		bad("WORKER_TRUSTED_REPLY_PREFIXES", "must name at least one prefix, such as _INBOX.")
	}
	for _, p := range c.TrustedReplyPrefixes {
		if err := c.Subjects().ValidateReplyPrefix(p); err != nil {
			bad("WORKER_TRUSTED_REPLY_PREFIXES", "%v", err)
		}
	}
	if c.StreamCreditTimeout.D() <= 0 {
		bad("WORKER_STREAM_CREDIT_TIMEOUT", "must be positive, got %s", c.StreamCreditTimeout.D())
	}
	if c.MaxRequestBytes < 1024 {
		bad("MAX_REQUEST_BYTES", "must be at least 1024, got %d", c.MaxRequestBytes)
	}
	if c.ShutdownTimeout.D() <= 0 {
		bad("SHUTDOWN_TIMEOUT", "must be positive, got %s", c.ShutdownTimeout.D())
	}
	if _, err := pgexec.ParseMode(string(c.ExecuteMode)); err != nil {
		bad("DB_EXECUTE_MODE", "must be read_write, read_only or disabled, got %q", c.ExecuteMode)
	}
	if _, err := state.Choose(c.DeploymentMode, c.StateBackend); err != nil {
		if c.StateBackend != "" && c.DeploymentMode == state.ModeDistributed {
			bad("STATE_BACKEND", "%v", err)
		} else {
			bad("DEPLOYMENT_MODE", "%v", err)
		}
	}
	switch c.StateBackend {
	case "", state.BackendMemory, state.BackendRedis:
	default:
		bad("STATE_BACKEND", "must be memory or redis, got %q", c.StateBackend)
	}
	if c.LockTTL.D() <= 0 {
		bad("STATE_LOCK_TTL", "must be positive, got %s", c.LockTTL.D())
	}
	if c.LockMaxWait.D() < 0 {
		bad("STATE_LOCK_MAX_WAIT", "must not be negative, got %s", c.LockMaxWait.D())
	}
	if c.LockMaxWaiters < 1 || c.LockMaxWaiters >= c.StateConcurrent {
		bad("STATE_LOCK_MAX_WAITERS", "must be positive and below WORKER_STATE_CONCURRENT (%d): waiting acquires hold state lane slots, got %d", c.StateConcurrent, c.LockMaxWaiters)
	}
	if c.RedisPipelines < 0 {
		bad("REDIS_PIPELINES", "must not be negative (0 sends each call alone), got %d", c.RedisPipelines)
	}
	if c.EmbeddingTTL.D() < 0 {
		bad("CACHE_EMBEDDING_TTL", "must not be negative, got %s", c.EmbeddingTTL.D())
	}
	if c.VectorDimension < 1 || c.VectorDimension > 16000 {
		bad("PGVECTOR_DIMENSION", "must be 1 to 16000, got %d", c.VectorDimension)
	}
	if c.MaintConcurrency < 0 {
		bad("MAINT_CONCURRENCY", "must not be negative, got %d", c.MaintConcurrency)
	}
	if c.MaintMaxConnections < 1 {
		bad("MAINT_MAX_CONNECTIONS", "must be at least 1, got %d", c.MaintMaxConnections)
	}
	for name, d := range map[string]Seconds{"MAINT_LOCK_TTL": c.MaintLockTTL, "MAINT_ACK_WAIT": c.MaintAckWait,
		"MAINT_LOCK_TIMEOUT": c.MaintLockTimeout, "MAINT_VACUUM_TIMEOUT": c.MaintVacuumTimeout} {
		if d.D() <= 0 {
			bad(name, "must be positive, got %s", d.D())
		}
	}
	if c.MaintMaxDeliver < 1 || len(c.MaintBackOff) >= c.MaintMaxDeliver && len(c.MaintBackOff) > 0 {
		bad("MAINT_MAX_DELIVER", "must be at least 1 and above the number of MAINT_BACKOFF steps, got %d", c.MaintMaxDeliver)
	}
	if !c.AllowAdHocSQL && c.NamedQueriesFile == "" {
		bad("DB_ALLOW_ADHOC", "false needs DB_NAMED_QUERIES: with neither, db.execute could run nothing")
	}
	if c.MaxRows < 1 {
		bad("DB_MAX_ROWS", "must be at least 1, got %d", c.MaxRows)
	}
	if c.MaxStatementTimeout.D() < time.Millisecond {
		bad("DB_MAX_STATEMENT_TIMEOUT", "must be at least 1ms, got %s", c.MaxStatementTimeout.D())
	}
	if c.StatementTimeout.D() < time.Millisecond || c.StatementTimeout.D() > c.MaxStatementTimeout.D() {
		bad("DB_STATEMENT_TIMEOUT", "must be between 1ms and DB_MAX_STATEMENT_TIMEOUT (%s), got %s", c.MaxStatementTimeout.D(), c.StatementTimeout.D())
	}
	return joinLine(errs)
}

// joinLine joins errors into one line, so a bad configuration is reported as
// one clear line.
func joinLine(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// StateBackendName is the state backend DEPLOYMENT_MODE and STATE_BACKEND
// choose (Validate has checked the combination).
func (c *Config) StateBackendName() string {
	name, _ := state.Choose(c.DeploymentMode, c.StateBackend)
	return name
}

// PoolMax is the pool's maximum size: POSTGRES_POOL_SIZE + POSTGRES_MAX_OVERFLOW.
func (c *Config) PoolMax() int { return c.PoolSize + c.MaxOverflow }

// PostgresDSN returns the connection URL, built from its parts when POSTGRES_URL
// is empty. It may hold a password: never log it; log RedactedPostgresDSN.
func (c *Config) PostgresDSN() string {
	if c.PostgresURL != "" {
		return c.PostgresURL
	}
	u := url.URL{
		Scheme: "postgres",
		Host:   fmt.Sprintf("%s:%d", c.PostgresHost, c.PostgresPort),
		Path:   "/" + c.PostgresDatabase,
	}
	if c.PostgresPassword != "" {
		u.User = url.UserPassword(c.PostgresUser, c.PostgresPassword)
	} else {
		u.User = url.User(c.PostgresUser)
	}
	return u.String()
}

// RedactedPostgresDSN returns the connection URL with any password replaced.
func (c *Config) RedactedPostgresDSN() string { return RedactURL(c.PostgresDSN()) }

// RedactURL replaces the password of a URL, and any password query parameter,
// with "xxxxx". A string that does not parse is replaced whole.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparsable URL>"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// redactURLError keeps url.Parse errors from echoing the URL (and its password).
func redactURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "invalid"
}

// MarshalZerologObject logs the configuration without secrets.
func (c *Config) MarshalZerologObject(e *zerolog.Event) {
	e.Str("postgres", c.RedactedPostgresDSN()).
		Int("pool_max", c.PoolMax()).
		Str("postgres_pooler", c.Pooler).
		Str("postgres_read", RedactURL(c.ReadURL)).
		Bool("postgres_session_url", c.SessionURL != "").
		Bool("postgres_migrate", c.Migrate).
		Str("nats", RedactURL(c.NATSURL)).
		Bool("nats_embedded", c.NATSEmbedded).
		Str("subject_prefix", c.SubjectPrefix).
		Str("inbox_prefix", c.NATSInboxPrefix).
		Str("nats_js_user", c.NATSJSUser).
		Bool("nats_js_creds", c.NATSJSCredsFile != "").
		Strs("trusted_reply_prefixes", c.TrustedReplyPrefixes).
		Str("worker_id", c.WorkerID).
		Int("max_concurrent", c.MaxConcurrent).
		Int("state_concurrent", c.StateConcurrent).
		Int("maint_concurrent", c.MaintConcurrent).
		Int("health_concurrent", c.HealthConcurrent).
		Int("max_queued", c.MaxQueued).
		Str("execute_mode", string(c.ExecuteMode)).
		Str("state_backend", c.StateBackendName()).
		Str("redis", RedactURL(c.RedisURL)).
		Int("max_rows", c.MaxRows).
		Dur("statement_timeout", c.StatementTimeout.D()).
		Dur("max_statement_timeout", c.MaxStatementTimeout.D())
}

// JetStreamClient returns the settings of the worker's JetStream connection,
// and false when it has none of its own (NATS_JS_USER and NATS_JS_CREDS
// unset): the serving connection then does JetStream work too.
func (c *Config) JetStreamClient() (Client, bool) {
	if c.NATSJSUser == "" && c.NATSJSCredsFile == "" {
		return Client{}, false
	}
	js := c.Client
	js.NATSUser, js.NATSPassword, js.NATSCredsFile = c.NATSJSUser, c.NATSJSPassword, c.NATSJSCredsFile
	if c.NATSJSInboxPrefix != "" {
		js.NATSInboxPrefix = c.NATSJSInboxPrefix
	}
	return js, true
}

// Usage writes every variable of the worker's configuration with its
// default and description.
func Usage(w io.Writer) error {
	c := Defaults()
	return usage(w, &c)
}

// PublisherUsage does the same for the publisher.
func PublisherUsage(w io.Writer) error {
	p := PublisherDefaults()
	return usage(w, &p)
}
