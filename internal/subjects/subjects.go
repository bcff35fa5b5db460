// Package subjects names every NATS subject dbworker uses and maps SQL
// identifiers to subject tokens and back.
//
// Every subject can carry a configured prefix: with prefix "prod." the execute
// endpoint listens on "prod.db.execute".
package subjects

import (
	"fmt"
	"strings"
)

// Endpoint subjects, without prefix.
const (
	DBExecute      = "db.execute"
	DBStats        = "db.stats"
	DBVacuum       = "db.vacuum"
	DBHealth       = "db.health"
	DBVector       = "db.vector"
	DBGraph        = "db.graph"
	DBTx           = "db.tx"
	StateLock      = "state.lock"
	StateRateLimit = "state.ratelimit"
	StateKV        = "state.kv"
	CacheEmbedding = "cache.embedding"
)

// Subjects returns the subject names with a prefix applied.
type Subjects struct {
	prefix string
}

// New returns subject names under prefix. A non-empty prefix must be a run of
// valid subject tokens followed by a dot ("prod." or "eu.prod."); the dot is added
// when missing.
func New(prefix string) (Subjects, error) {
	if prefix != "" && !strings.HasSuffix(prefix, ".") {
		prefix += "."
	}
	if prefix != "" {
		for _, tok := range strings.Split(strings.TrimSuffix(prefix, "."), ".") {
			if tok == "" || strings.ContainsAny(tok, " \t\r\n*>") {
				return Subjects{}, fmt.Errorf("subject prefix %q: tokens must be non-empty and free of spaces, '*' and '>'", prefix)
			}
		}
	}
	return Subjects{prefix: prefix}, nil
}

// Prefix returns the prefix, with its trailing dot, or "".
func (s Subjects) Prefix() string { return s.prefix }

// Of returns subject with the prefix applied.
func (s Subjects) Of(subject string) string { return s.prefix + subject }

// Tx is the subject of interactive transaction id held by the worker whose
// ID encodes to workerToken (EncodeToken): db.tx.<worker>.<id>.
func (s Subjects) Tx(workerToken, id string) string {
	return s.prefix + DBTx + "." + workerToken + "." + id
}

// Maintenance subjects, without prefix.
const (
	DBVacuumJobs = "db.vacuum.jobs"
	DBStatsJobs  = "db.stats.jobs"
	// DatabaseToken stands for a database-wide run where a schema and table
	// would be: in result subjects, and in the run's maintenance lock.
	DatabaseToken = "_database"
)

// VacuumResults is the DB_VACUUM subject of a run on schema.table, or of a
// database-wide run when table is "".
func (s Subjects) VacuumResults(schema, table string) string {
	return s.results("db.vacuum.results.", schema, table)
}

// StatsResults is the DB_STATS subject of a table's stats.
func (s Subjects) StatsResults(schema, table string) string {
	return s.results("db.stats.results.", schema, table)
}

func (s Subjects) results(base, schema, table string) string {
	if table == "" {
		return s.prefix + base + DatabaseToken
	}
	return s.prefix + base + EncodeToken(schema) + "." + EncodeToken(table)
}

// VacuumProgress is the subject of a run's progress events.
func (s Subjects) VacuumProgress(runID string) string {
	return s.prefix + "db.vacuum.progress." + EncodeToken(runID)
}
