package client_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/jeeves-avionics/dbworker/internal/graph"
	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/natsserver"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/txn"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/memory"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/internal/vector"
	"github.com/jeeves-avionics/dbworker/internal/worker"
)

// txMaxOpen is the worker's bound on open transactions.
const txMaxOpen = 14

// nc is a connection to an embedded nats-server with a real worker behind it,
// over a schema of this package's own; the examples and tests use it.
var nc *nats.Conn

func TestMain(m *testing.M) {
	cleanup, err := startStack()
	if err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "pkg/client: services required (CI=true): %v\n", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "pkg/client: SKIPPING every test and example, services unavailable (run `make services`): %v\n", err)
		os.Exit(0)
	}
	testenv.VerifyNoLeaks(m, cleanup)
}

func startStack() (func(), error) {
	ctx := context.Background()
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	fail := func(err error) (func(), error) { cleanup(); return nil, err }

	admin, err := pgx.Connect(ctx, testenv.BaseURL())
	if err != nil {
		return fail(err)
	}
	schema := "t_" + testenv.UniqueName()
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema+"; CREATE TABLE "+schema+".users (id serial PRIMARY KEY, email text UNIQUE NOT NULL, active bool NOT NULL DEFAULT true)"); err != nil {
		admin.Close(ctx)
		return fail(err)
	}
	cleanups = append(cleanups, func() {
		_, _ = admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close(context.Background())
	})
	u, _ := url.Parse(testenv.BaseURL())
	q := u.Query()
	q.Set("search_path", schema+",public")
	u.RawQuery = q.Encode()

	dir, err := os.MkdirTemp("", "client-nats")
	if err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })
	ns, err := natsserver.Start(natsserver.Options{Port: -1, StoreDir: dir})
	if err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, func() { ns.Shutdown(); ns.WaitForShutdown() })

	pg, err := pgexec.Connect(ctx, pgexec.Config{DSN: u.String(), MaxConns: 20})
	if err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, pg.Close)
	mem := memory.New(memory.Options{})
	cleanups = append(cleanups, func() { mem.Close() })
	wnc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, wnc.Close)
	maint, err := maintenance.New(maintenance.Config{WorkerID: "example", Schemas: []string{schema}}, wnc, pg, mem)
	if err != nil {
		return fail(err)
	}
	vec, err := vector.New(pg, vector.Config{Schema: schema, Dimension: 3})
	if err != nil {
		return fail(err)
	}
	if err := vec.Init(ctx); err != nil {
		return fail(err)
	}
	gr := graph.New(pg)
	if err := gr.Init(ctx); err != nil {
		return fail(err)
	}
	ex, err := pgexec.NewExecutor(pg, pgexec.ExecutorConfig{})
	if err != nil {
		return fail(err)
	}
	svc, err := state.NewService(mem, state.ServiceConfig{})
	if err != nil {
		return fail(err)
	}
	w, err := worker.New(worker.Config{ID: "example", Logger: zerolog.Nop(), Tx: txn.Config{MaxOpen: txMaxOpen}}, worker.Deps{NATS: wnc, Postgres: pg,
		Executor: ex, State: svc, Maintenance: maint,
		Vector: vec, Graph: gr})
	if err != nil {
		return fail(err)
	}
	if err := w.Start(ctx); err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, func() { _ = w.Stop(context.Background()) })
	if nc, err = nats.Connect(ns.ClientURL()); err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, nc.Close)
	return cleanup, nil
}
