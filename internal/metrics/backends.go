package metrics

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Pool names, the pool label of the dbworker_pg_pool_* metrics.
const (
	PoolPrimary = "primary" // POSTGRES_URL
	PoolRead    = "read"    // POSTGRES_READ_URL
)

// WatchPool exports a PostgreSQL pool's connection counts and its acquire
// waits, labelled pool=name (PoolPrimary, PoolRead).
func (m *Metrics) WatchPool(name string, pool *pgxpool.Pool) {
	if m == nil || pool == nil {
		return
	}
	labels := prometheus.Labels{"pool": name}
	gauge := func(metric, help string, f func(*pgxpool.Stat) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: metric, Help: help, ConstLabels: labels}, func() float64 { return f(pool.Stat()) })
	}
	counter := func(metric, help string, f func(*pgxpool.Stat) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: metric, Help: help, ConstLabels: labels}, func() float64 { return f(pool.Stat()) })
	}
	m.Registry.MustRegister(
		gauge("dbworker_pg_pool_total_connections", "Open connections of the PostgreSQL pool.", func(s *pgxpool.Stat) float64 { return float64(s.TotalConns()) }),
		gauge("dbworker_pg_pool_idle_connections", "Idle connections of the pool.", func(s *pgxpool.Stat) float64 { return float64(s.IdleConns()) }),
		gauge("dbworker_pg_pool_acquired_connections", "Connections in use.", func(s *pgxpool.Stat) float64 { return float64(s.AcquiredConns()) }),
		gauge("dbworker_pg_pool_max_connections", "The pool's maximum.", func(s *pgxpool.Stat) float64 { return float64(s.MaxConns()) }),
		counter("dbworker_pg_pool_empty_acquire_total", "Acquires that had to wait for a connection (none was idle).",
			func(s *pgxpool.Stat) float64 { return float64(s.EmptyAcquireCount()) }),
		counter("dbworker_pg_pool_acquire_wait_seconds_total", "Time spent waiting in acquires that found no idle connection and then got one: with empty_acquire_total, the mean wait.",
			func(s *pgxpool.Stat) float64 { return s.EmptyAcquireWaitTime().Seconds() }),
		counter("dbworker_pg_pool_canceled_acquire_total", "Acquires given up by their caller (a request's deadline passed while it waited for a connection).",
			func(s *pgxpool.Stat) float64 { return float64(s.CanceledAcquireCount()) }),
	)
}

// RedisErrorKinds are the kind label's values of dbworker_redis_errors_total,
// besides the upper-case prefix of a Redis error reply (CROSSSLOT, READONLY,
// LOADING, CLUSTERDOWN, TRYAGAIN, NOSCRIPT, OOM, WRONGTYPE, ERR...).
const (
	RedisErrorTimeout    = "timeout"    // a command or the pool did not answer in time
	RedisErrorConnection = "connection" // dial, reset, closed connection
	RedisErrorOther      = "other"      // anything else
)

// RedisError counts one failed Redis command by kind (see
// RedisErrorKinds and redis.ErrorKind).
func (m *Metrics) RedisError(kind string) {
	if m != nil {
		m.backends.redisErrors.WithLabelValues(kind).Inc()
	}
}

// backends holds the metrics of the services the worker calls.
type backends struct {
	redisErrors *prometheus.CounterVec
}

func newBackends(reg *prometheus.Registry) backends {
	b := backends{
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dbworker_redis_errors_total", Help: "Failed Redis commands (each command of a pipeline counts) by kind: the error reply's prefix (CROSSSLOT, READONLY, LOADING, CLUSTERDOWN, NOSCRIPT, OOM, ...), timeout, connection or other. Misses (nil replies) are not errors.",
		}, []string{"kind"}),
	}
	reg.MustRegister(b.redisErrors)
	return b
}
