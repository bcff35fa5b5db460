package messages

import "time"

// StatsRequest is the body of db.stats and of a db.stats.jobs job.
type StatsRequest struct {
	// Table is "name" or "schema.name"; with Schema set it is taken whole, so
	// a name holding a dot can be asked for.
	Table  string `json:"table,omitempty"`
	Schema string `json:"schema,omitempty"`
	// Publish writes each table's result to DB_STATS. Defaults to true.
	Publish *bool  `json:"publish,omitempty"`
	JobID   string `json:"job_id,omitempty"`
}

// TableStats are the figures a DBA looks at for one table.
type TableStats struct {
	Schema             string     `json:"schema"`
	Table              string     `json:"table"`
	TotalBytes         int64      `json:"total_bytes"`
	TableBytes         int64      `json:"table_bytes"`
	IndexesBytes       int64      `json:"indexes_bytes"`
	ToastBytes         int64      `json:"toast_bytes"`
	TotalSize          string     `json:"total_size"`
	RowCount           int64      `json:"row_count"`
	DeadRows           int64      `json:"dead_rows"`
	DeadRatio          float64    `json:"dead_ratio"`
	ModsSinceAnalyze   int64      `json:"mods_since_analyze"`
	InsertsSinceVacuum int64      `json:"inserts_since_vacuum"`
	LastVacuum         *time.Time `json:"last_vacuum"`
	LastAutovacuum     *time.Time `json:"last_autovacuum"`
	LastAnalyze        *time.Time `json:"last_analyze"`
	LastAutoanalyze    *time.Time `json:"last_autoanalyze"`
	VacuumCount        int64      `json:"vacuum_count"`
	AutovacuumCount    int64      `json:"autovacuum_count"`
	AnalyzeCount       int64      `json:"analyze_count"`
	AutoanalyzeCount   int64      `json:"autoanalyze_count"`
	XIDAge             int64      `json:"xid_age"`
	SeqScan            int64      `json:"seq_scan"`
	IdxScan            *int64     `json:"idx_scan"`
}

// DatabaseStats describes the database.
type DatabaseStats struct {
	Name      string `json:"name"`
	SizeBytes int64  `json:"size_bytes"`
	Size      string `json:"size"`
}

// StatsResult is the answer of db.stats.
type StatsResult struct {
	RunID    string        `json:"run_id"`
	JobID    string        `json:"job_id,omitempty"`
	WorkerID string        `json:"worker_id"`
	At       time.Time     `json:"at"`
	Tables   []TableStats  `json:"tables"`
	Database DatabaseStats `json:"database"`
}

// StatsRecord is one table's stats as stored in DB_STATS.
type StatsRecord struct {
	RunID    string    `json:"run_id"`
	JobID    string    `json:"job_id,omitempty"`
	WorkerID string    `json:"worker_id"`
	At       time.Time `json:"at"`
	TableStats
}

// VacuumRequest is the body of db.vacuum and of a db.vacuum.jobs job.
type VacuumRequest struct {
	Table      string `json:"table,omitempty"`
	Schema     string `json:"schema,omitempty"`
	Analyze    *bool  `json:"analyze,omitempty"`
	Full       bool   `json:"full,omitempty"`
	Verbose    bool   `json:"verbose,omitempty"`
	SkipLocked *bool  `json:"skip_locked,omitempty"`
	TimeoutMS  *int64 `json:"timeout_ms,omitempty"`
	Async      bool   `json:"async,omitempty"`
	JobID      string `json:"job_id,omitempty"`
}

// Run statuses.
const (
	StatusOK      = "ok"
	StatusFailed  = "failed"
	StatusSkipped = "skipped"
)

// VacuumSnapshot is a table's state before or after a VACUUM.
type VacuumSnapshot struct {
	DeadRows   int64 `json:"dead_rows"`
	TableBytes int64 `json:"table_bytes"`
}

// VacuumResult is a VACUUM run's record in DB_VACUUM, and the answer of a
// synchronous db.vacuum.
type VacuumResult struct {
	RunID      string          `json:"run_id"`
	JobID      string          `json:"job_id,omitempty"`
	WorkerID   string          `json:"worker_id"`
	Schema     string          `json:"schema,omitempty"`
	Table      string          `json:"table,omitempty"`
	Status     string          `json:"status"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt time.Time       `json:"finished_at"`
	DurationMS int64           `json:"duration_ms"`
	Before     *VacuumSnapshot `json:"before,omitempty"`
	After      *VacuumSnapshot `json:"after,omitempty"`
	Output     []string        `json:"output,omitempty"`
	Error      *Error          `json:"error,omitempty"`
	// Holder names the lock's holder of a skipped run.
	Holder string `json:"holder,omitempty"`
	// Stream and Sequence locate the stored result.
	Stream   string `json:"stream,omitempty"`
	Sequence uint64 `json:"sequence,omitempty"`
}

// JobAccepted is the answer of an async db.vacuum (or any queued job).
type JobAccepted struct {
	JobID    string `json:"job_id"`
	Stream   string `json:"stream"`
	Sequence uint64 `json:"sequence"`
}

// VacuumProgress is an event on db.vacuum.progress.<run_id>.
type VacuumProgress struct {
	RunID            string `json:"run_id"`
	JobID            string `json:"job_id,omitempty"`
	Phase            string `json:"phase"`
	HeapBlksTotal    int64  `json:"heap_blks_total"`
	HeapBlksScanned  int64  `json:"heap_blks_scanned"`
	HeapBlksVacuumed int64  `json:"heap_blks_vacuumed"`
	IndexVacuumCount int64  `json:"index_vacuum_count"`
	Done             bool   `json:"done,omitempty"`
}
