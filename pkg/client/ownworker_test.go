package client_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/named"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/memory"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/internal/worker"
	"github.com/jeeves-avionics/dbworker/pkg/client"
)

// ownWorker is a worker of one test's own, on the package's nats-server
// under a subject prefix of its own, for what the shared stack cannot show:
// its memory state backend runs on a clock the test moves, and it serves the
// named queries given.
type ownWorker struct {
	c      *client.Client // a client with the worker's prefix
	prefix string         // the worker's subject prefix
	now    atomic.Int64   // ns the clock is past the start
}

// advance moves the state backend's clock to d past the start.
func (o *ownWorker) advance(d time.Duration) { o.now.Store(int64(d)) }

func startOwnWorker(t *testing.T, queries map[string]named.Query) *ownWorker {
	t.Helper()
	return startOwnWorkerWith(t, pgexec.ExecutorConfig{NamedQueries: queries})
}

// startOwnWorkerWith is startOwnWorker with the executor's configuration.
func startOwnWorkerWith(t *testing.T, cfg pgexec.ExecutorConfig) *ownWorker {
	t.Helper()
	ctx := context.Background()
	o := &ownWorker{}
	pg, err := pgexec.Connect(ctx, pgexec.Config{DSN: testenv.BaseURL(), MaxConns: 2})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(pg.Close)
	start := time.Now()
	mem := memory.New(memory.Options{Now: func() time.Time { return start.Add(time.Duration(o.now.Load())) }})
	t.Cleanup(func() { mem.Close() })
	wnc, err := nats.Connect(nc.ConnectedUrl())
	require.NoError(t, err)
	t.Cleanup(wnc.Close)
	ex, err := pgexec.NewExecutor(pg, cfg)
	require.NoError(t, err)
	prefix := "own" + testenv.UniqueName()
	sub, err := subjects.New(prefix)
	require.NoError(t, err)
	svc, err := state.NewService(mem, state.ServiceConfig{})
	require.NoError(t, err)
	w, err := worker.New(worker.Config{ID: prefix, Subjects: sub, Logger: zerolog.Nop()},
		worker.Deps{NATS: wnc, Postgres: pg, Executor: ex, State: svc})
	require.NoError(t, err)
	require.NoError(t, w.Start(ctx))
	t.Cleanup(func() { require.NoError(t, w.Stop(context.Background())) })
	o.prefix = prefix
	o.c = newClient(t, client.WithPrefix(prefix))
	return o
}
