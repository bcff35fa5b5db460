package worker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

func (w *Worker) endpoints() []endpoint {
	eps := []endpoint{
		{name: "execute", subject: subjects.DBExecute, description: "run SQL: query, one, many, script, tx, insert, update", handle: w.handleExecute},
		{name: "health", subject: subjects.DBHealth, description: "health of PostgreSQL, the state backend, NATS and this worker", handle: w.handleHealth},
	}
	return append(eps, w.extra...)
}

func (w *Worker) handleExecute(ctx context.Context, r *request) ([]byte, error) {
	var req messages.ExecuteRequest
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.op = req.Op
	if r.op == "" {
		r.op = messages.OpQuery
	}
	return w.deps.Executor.Execute(ctx, &req, r.maxAnswer)
}

func (w *Worker) handleHealth(ctx context.Context, r *request) ([]byte, error) {
	var req struct{}
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	h := messages.HealthResult{
		Postgres: w.deps.Postgres.Health(ctx),
		State:    messages.StateHealth{Backend: "none", Status: "none"},
		NATS: messages.NATSHealth{
			Server:    w.deps.NATS.ConnectedServerVersion(),
			Connected: w.deps.NATS.IsConnected(),
		},
		Worker: messages.WorkerHealth{
			ID:       w.cfg.ID,
			Version:  Version,
			UptimeS:  time.Since(w.started).Round(time.Millisecond).Seconds(),
			InFlight: w.inFlight.Load(),
		},
	}
	if js, err := jetstream.New(w.deps.NATS); err == nil {
		if _, err := js.AccountInfo(ctx); err == nil {
			h.NATS.JetStream = true
		}
	}
	h.Status = messages.HealthHealthy
	if h.Postgres.Status != messages.HealthHealthy {
		h.Status = messages.HealthUnhealthy
	}
	return json.Marshal(h)
}
