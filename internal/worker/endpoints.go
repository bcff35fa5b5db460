package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

func (w *Worker) endpoints() []endpoint {
	eps := []endpoint{
		{name: "execute", subject: subjects.DBExecute, description: "run SQL: query, one, many, script, tx, insert, update", handle: w.handleExecute},
		w.txBeginEndpoint(),
		{name: "health", subject: subjects.DBHealth, lane: laneHealth, description: "health of PostgreSQL, the state backend, NATS and this worker", handle: w.handleHealth},
		{name: "ratelimit", lane: laneState, subject: subjects.StateRateLimit, description: "sliding-window rate limits: an exact log up to limit 1000, a bounded counter above", handle: jsonHandler(func(ctx context.Context, req *messages.RateLimitRequest) (any, error) {
			res, err := w.deps.State.RateLimit(ctx, req)
			if err == nil {
				w.cfg.Metrics.RateLimit(res.Allowed)
			}
			return res, err
		}, nil), asError: state.AsError},
		{name: "lock", lane: laneState, subject: subjects.StateLock, description: "locks with secret leases, TTLs and fencing tokens", handle: jsonHandler(func(ctx context.Context, req *messages.LockRequest) (any, error) {
			res, err := w.deps.State.Lock(ctx, req)
			if err == nil {
				w.cfg.Metrics.Lock(req.Op, lockOutcome(res))
			}
			return res, err
		}, func(r *messages.LockRequest) string { return r.Op }), asError: state.AsError},
		{name: "kv", lane: laneState, subject: subjects.StateKV, description: "JSON values with TTLs and counters", handle: jsonHandler(w.deps.State.KV,
			func(r *messages.KVRequest) string { return r.Op }), asError: state.AsError},
		{name: "embedding", lane: laneState, subject: subjects.CacheEmbedding, description: "embedding cache: float32 vectors by hash or text and model", handle: w.handleEmbedding, asError: state.AsError},
	}
	if m := w.deps.Maintenance; m != nil {
		eps = append(eps,
			endpoint{name: "stats", lane: laneMaint, subject: subjects.DBStats, description: "table and database statistics, stored in DB_STATS", handle: jsonHandler(
				func(ctx context.Context, req *messages.StatsRequest) (any, error) { return m.ServeStats(ctx, req) }, nil)},
			endpoint{name: "vacuum", lane: laneMaint, subject: subjects.DBVacuum, description: "VACUUM one table or the database, one run per target, stored in DB_VACUUM", handle: jsonHandler(m.Vacuum, nil)},
		)
	}
	if v := w.deps.Vector; v != nil {
		eps = append(eps, endpoint{name: "vector", subject: subjects.DBVector, description: "pgvector collections: upsert, similarity search, stats",
			handle: func(ctx context.Context, r *request) ([]byte, error) {
				var req messages.VectorRequest
				if err := r.decode(&req); err != nil {
					return nil, err
				}
				r.op = req.Op
				if req.Writes() {
					if err := w.deps.Executor.CheckWrite(subjects.DBVector, req.ReadOnly); err != nil {
						return nil, err
					}
				}
				// Within the answer bound: a search with include_vectors
				// stops once its vectors could not fit.
				res, err := v.HandleWithin(ctx, &req, r.maxAnswer)
				if err != nil {
					return nil, err
				}
				return json.Marshal(res)
			}})
	}
	if g := w.deps.Graph; g != nil {
		eps = append(eps, endpoint{name: "graph", subject: subjects.DBGraph, description: "property graph: nodes, edges, neighbors, paths, subgraphs",
			handle: jsonHandler(func(ctx context.Context, req *messages.GraphRequest) (any, error) {
				if req.Writes() {
					if err := w.deps.Executor.CheckWrite(subjects.DBGraph, req.ReadOnly); err != nil {
						return nil, err
					}
				}
				return g.Handle(ctx, req)
			}, func(r *messages.GraphRequest) string { return r.Op })})
	}
	return append(eps, w.extra...)
}

// lockOutcome names a lock answer for the metrics.
func lockOutcome(res any) string {
	switch r := res.(type) {
	case messages.LockAcquireResult:
		if r.Acquired {
			return "acquired"
		}
		return "held_by_other"
	case messages.LockReleaseResult:
		if r.Released {
			return "released"
		}
		return r.Reason
	case messages.LockRefreshResult:
		if r.Refreshed {
			return "refreshed"
		}
		return r.Reason
	case messages.LockStatusResult:
		if r.Held {
			return "held"
		}
		return "free"
	}
	return "unknown"
}

// jsonHandler decodes a request strictly into Req, runs call and encodes its
// answer. op, when given, names the request's op for the log line.
func jsonHandler[Req any](call func(context.Context, *Req) (any, error), op func(*Req) string) func(context.Context, *request) ([]byte, error) {
	return func(ctx context.Context, r *request) ([]byte, error) {
		var req Req
		if err := r.decode(&req); err != nil {
			return nil, err
		}
		if op != nil {
			r.op = op(&req)
		}
		res, err := call(ctx, &req)
		if err != nil {
			return nil, err
		}
		if rl, ok := res.(messages.RateLimitResult); ok {
			return appendRateLimit(make([]byte, 0, 96), rl), nil
		}
		return json.Marshal(res)
	}
}

// appendRateLimit appends r as json.Marshal writes it (TestAppendRateLimit),
// without its reflection: state.ratelimit is the cheapest request there is.
func appendRateLimit(b []byte, r messages.RateLimitResult) []byte {
	b = append(b, `{"allowed":`...)
	b = strconv.AppendBool(b, r.Allowed)
	b = append(b, `,"remaining":`...)
	b = strconv.AppendInt(b, r.Remaining, 10)
	b = append(b, `,"limit":`...)
	b = strconv.AppendInt(b, r.Limit, 10)
	b = append(b, `,"retry_after_ms":`...)
	b = strconv.AppendInt(b, r.RetryAfterMS, 10)
	b = append(b, `,"reset_ms":`...)
	b = strconv.AppendInt(b, r.ResetMS, 10)
	return append(b, '}')
}

// handleEmbedding answers cache.embedding within the answer bound: get and
// mget never build an answer much larger than the connection carries.
func (w *Worker) handleEmbedding(ctx context.Context, r *request) ([]byte, error) {
	var req messages.EmbeddingRequest
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.op = req.Op
	return w.deps.State.EmbeddingAnswer(ctx, &req, r.maxAnswer)
}

func (w *Worker) handleExecute(ctx context.Context, r *request) ([]byte, error) {
	var req messages.ExecuteRequest
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.op = string(cmp.Or(req.Op, messages.OpQuery))
	return w.execute(ctx, r, func(ctx context.Context, out pgjson.Output) ([]byte, error) {
		return w.deps.Executor.Execute(ctx, &req, out)
	})
}

// readCheckTimeout bounds db.health's check of the read pool.
const readCheckTimeout = 2 * time.Second

func (w *Worker) handleHealth(ctx context.Context, r *request) ([]byte, error) {
	var req struct{}
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// The read pool's check runs beside the others, on a shorter budget: a
	// read server that does not answer (a dropped route, a stopped VM)
	// makes the answer degraded, neither late nor short of its other checks.
	var read chan messages.PostgresHealth
	if w.readCheck != nil {
		read = make(chan messages.PostgresHealth, 1)
		go func() {
			rctx, cancel := context.WithTimeout(ctx, readCheckTimeout)
			defer cancel()
			read <- w.readCheck.health(rctx)
		}()
	}
	h := messages.HealthResult{
		// On the check's own connection: a pool full of slow queries is
		// busy, not unhealthy.
		Postgres: w.pgCheck.health(ctx),
		State:    w.deps.State.Backend().Health(ctx),
		NATS: messages.NATSHealth{
			Server:    w.deps.NATS.ConnectedServerVersion(),
			Connected: w.deps.NATS.IsConnected(),
		},
		Worker: messages.WorkerHealth{
			ID:       w.cfg.ID,
			Version:  Version,
			UptimeS:  time.Since(w.started).Round(time.Millisecond).Seconds(),
			InFlight: w.inFlight.Load(),
			Lanes:    make(map[string]messages.LaneHealth, len(w.lanes)),
		},
	}
	for name, l := range w.lanes {
		h.Worker.Lanes[name] = l.health()
	}
	pool := h.Postgres.Pool
	h.Worker.Busy = w.lanes[laneDB].full() || pool.Acquired >= pool.Max
	if _, err := w.js.AccountInfo(ctx); err == nil {
		h.NATS.JetStream = true
	}
	if read != nil {
		r := <-read
		h.Postgres.Read = &r
	}
	switch {
	case h.Postgres.Status != messages.HealthHealthy:
		h.Status = messages.HealthUnhealthy
	case h.State.Status != messages.HealthHealthy,
		h.Postgres.Read != nil && h.Postgres.Read.Status != messages.HealthHealthy:
		h.Status = messages.HealthDegraded
	default:
		h.Status = messages.HealthHealthy
	}
	return json.Marshal(h)
}
