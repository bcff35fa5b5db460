package messages

// Health statuses.
const (
	HealthHealthy   = "healthy"
	HealthDegraded  = "degraded"
	HealthUnhealthy = "unhealthy"
)

// HealthResult is the answer of db.health.
type HealthResult struct {
	Status   string         `json:"status"`
	Postgres PostgresHealth `json:"postgres"`
	State    StateHealth    `json:"state"`
	NATS     NATSHealth     `json:"nats"`
	Worker   WorkerHealth   `json:"worker"`
}

// PostgresHealth is the postgres part of db.health.
type PostgresHealth struct {
	Status    string     `json:"status"`
	LatencyMS float64    `json:"latency_ms"`
	Version   string     `json:"version,omitempty"`
	PGVector  *string    `json:"pgvector"`
	Pool      PoolHealth `json:"pool"`
	Error     string     `json:"error,omitempty"`
	// Read is the read pool (POSTGRES_READ_URL), when the worker has one:
	// read_only requests, read-only transactions and db.vector searches
	// run there. Its failure makes the worker degraded, not unhealthy.
	Read *PostgresHealth `json:"read,omitempty"`
}

// PoolHealth describes the connection pool.
type PoolHealth struct {
	Total    int32 `json:"total"`
	Idle     int32 `json:"idle"`
	Acquired int32 `json:"acquired"`
	Max      int32 `json:"max"`
}

// StateHealth is the state-backend part of db.health.
type StateHealth struct {
	Backend                  string `json:"backend"`
	Status                   string `json:"status"`
	TotalCommandsProcessed   *int64 `json:"total_commands_processed,omitempty"`
	TotalConnectionsReceived *int64 `json:"total_connections_received,omitempty"`
	KeyspaceHits             *int64 `json:"keyspace_hits,omitempty"`
	KeyspaceMisses           *int64 `json:"keyspace_misses,omitempty"`
}

// NATSHealth is the NATS part of db.health.
type NATSHealth struct {
	Server    string `json:"server"`
	Connected bool   `json:"connected"`
	JetStream bool   `json:"jetstream"`
}

// WorkerHealth describes the answering worker.
type WorkerHealth struct {
	ID       string  `json:"id"`
	Version  string  `json:"version"`
	UptimeS  float64 `json:"uptime_s"`
	InFlight int64   `json:"in_flight"`
	// Busy is true when the db lane has no free slot or the PostgreSQL pool
	// no free connection: database requests wait. It does not make the
	// worker unhealthy.
	Busy bool `json:"busy"`
	// Lanes are the worker's concurrency budgets by name: db, state, maint,
	// health.
	Lanes map[string]LaneHealth `json:"lanes,omitempty"`
}

// LaneHealth is the use of one lane: requests running, its slots, and
// requests waiting for a slot.
type LaneHealth struct {
	Running int `json:"running"`
	Max     int `json:"max"`
	Queued  int `json:"queued"`
}
