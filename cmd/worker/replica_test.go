package main

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/internal/vector"
	"github.com/jeeves-avionics/dbworker/pkg/client"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// readOnlyDatabase is a database of the test's own that refuses writes
// (default_transaction_read_only, as a hot standby does), made by setup.
func readOnlyDatabase(t *testing.T, setup string) *testenv.Postgres {
	t.Helper()
	db := testenv.NewDatabase(t)
	if setup != "" {
		db.Exec(t, setup)
	}
	db.Exec(t, "ALTER DATABASE "+db.Database(t)+" SET default_transaction_read_only = on")
	return db
}

func requireCode(t *testing.T, err error, code messages.Code, what string) {
	t.Helper()
	var me *client.Error
	require.True(t, errors.As(err, &me), "%s: %v", what, err)
	require.Equal(t, code, me.Code, "%s: %v", what, me)
}

// TestReadOnlyDatabaseWorker: a worker pointed at a database that refuses
// writes starts with the defaults (read_write, extension, migrations): it
// finds the database read-only, runs no start-up DDL, serves reads, and
// answers writes FORBIDDEN. POSTGRES_MIGRATE=false skips the DDL of a
// database that would take it.
func TestReadOnlyDatabaseWorker(t *testing.T) {
	db := readOnlyDatabase(t, "CREATE TABLE items (id int PRIMARY KEY, note text); INSERT INTO items VALUES (1, 'one'), (2, 'two')")
	ns := testenv.NewNATS(t)
	nc := testenv.Connect(t, ns)
	cmd, logs := startWorker(t, nc, "NATS_URL="+ns.ClientURL(), "POSTGRES_URL="+db.URL, "WORKER_ID=ro-"+db.Database(t), "LOG_FORMAT=json")
	c, err := client.New(nc, client.WithTimeout(10*time.Second))
	require.NoError(t, err)
	ctx := context.Background()

	notes, err := client.CollectRows[string](c.Query(ctx, "SELECT note FROM items ORDER BY id", nil))
	require.NoError(t, err)
	require.Equal(t, []string{"one", "two"}, notes)
	tx, err := c.BeginTx(ctx, client.TxOptions{})
	require.NoError(t, err)
	var n int
	require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM items", nil).Scan(&n))
	require.Equal(t, 2, n)
	_, err = tx.Exec(ctx, "DELETE FROM items", nil)
	requireCode(t, err, messages.CodeForbidden, "a write in a transaction")
	_ = tx.Rollback(ctx)
	_, err = c.Exec(ctx, "INSERT INTO items VALUES (3, 'three')", nil)
	requireCode(t, err, messages.CodeForbidden, "insert")
	_, _ = c.Exec(ctx, "SET default_transaction_read_only = off", nil)
	_, err = c.Exec(ctx, "INSERT INTO items VALUES (3, 'three')", nil)
	requireCode(t, err, messages.CodeForbidden, "insert after a SET")
	_, err = c.Graph().AddNode(ctx, client.NodeSpec{ID: "a", Type: "t"})
	requireCode(t, err, messages.CodeForbidden, "graph write")
	require.Equal(t, 2, db.Count("SELECT count(*) FROM items"))
	require.Equal(t, 0, db.Count("SELECT count(*) FROM pg_extension WHERE extname = 'vector'"), "no CREATE EXTENSION")
	require.Equal(t, 0, db.Count("SELECT count(*) FROM pg_class WHERE relname = 'dbworker_schema_migrations'"), "no migrations")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait())
	require.Contains(t, logs.String(), "the database refuses writes")

	// POSTGRES_MIGRATE=false: no DDL on a database that takes writes.
	fresh := testenv.NewDatabase(t)
	ns2 := testenv.NewNATS(t)
	startWorker(t, testenv.Connect(t, ns2), "NATS_URL="+ns2.ClientURL(), "POSTGRES_URL="+fresh.URL, "WORKER_ID=nomigrate-"+fresh.Database(t), "POSTGRES_MIGRATE=false")
	require.Equal(t, 0, fresh.Count("SELECT count(*) FROM pg_extension WHERE extname = 'vector'"), "no CREATE EXTENSION")
	require.Equal(t, 0, fresh.Count("SELECT count(*) FROM pg_class WHERE relname = 'dbworker_schema_migrations'"), "no migrations")
}

// TestReadPool: with POSTGRES_READ_URL, read-only requests, read-only
// transactions and vector searches are served by the read pool (here a
// read-only database with contents of its own, as a lagging replica would
// have); everything else by the primary.
func TestReadPool(t *testing.T) {
	ctx := context.Background()
	primary := testenv.NewDatabase(t)
	primary.Exec(t, "CREATE TABLE items (id int PRIMARY KEY, note text); INSERT INTO items VALUES (1, 'primary')")
	replica := testenv.NewDatabase(t)
	replica.Exec(t, "CREATE EXTENSION vector; CREATE TABLE items (id int PRIMARY KEY, note text); INSERT INTO items VALUES (1, 'replica')")
	rc, err := pgexec.Connect(ctx, pgexec.Config{DSN: replica.URL, MaxConns: 1})
	require.NoError(t, err)
	vs, err := vector.New(rc, vector.Config{Dimension: 3})
	require.NoError(t, err)
	require.NoError(t, vs.Init(ctx))
	_, err = vs.Handle(ctx, &messages.VectorRequest{Op: messages.OpCreateCollection, Collection: "docs"})
	require.NoError(t, err)
	_, err = vs.Handle(ctx, &messages.VectorRequest{Op: messages.OpUpsert, Collection: "docs", ID: "on-the-replica", Vector: []float64{1, 2, 3}})
	require.NoError(t, err)
	rc.Close()
	replica.Exec(t, "ALTER DATABASE "+replica.Database(t)+" SET default_transaction_read_only = on")

	ns := testenv.NewNATS(t)
	nc := testenv.Connect(t, ns)
	httpAddr := freeAddr(t)
	startWorker(t, nc, "NATS_URL="+ns.ClientURL(), "POSTGRES_URL="+primary.URL, "POSTGRES_READ_URL="+replica.URL,
		"WORKER_ID=replica-"+primary.Database(t), "PGVECTOR_DIMENSION=3", "HTTP_ADDR="+httpAddr, "POSTGRES_POOL_SIZE=3", "POSTGRES_MAX_OVERFLOW=0")
	c, err := client.New(nc, client.WithTimeout(10*time.Second))
	require.NoError(t, err)

	note := func(opts ...client.QueryOption) string {
		t.Helper()
		var s string
		require.NoError(t, c.QueryRow(ctx, "SELECT note FROM items WHERE id = 1", nil, opts...).Scan(&s))
		return s
	}
	require.Equal(t, "primary", note())
	require.Equal(t, "replica", note(client.WithReadOnly()))
	_, err = c.Exec(ctx, "UPDATE items SET note = 'written' WHERE id = 1", nil)
	require.NoError(t, err)
	require.Equal(t, "written", note())

	ro, err := c.BeginTx(ctx, client.TxOptions{ReadOnly: true})
	require.NoError(t, err)
	var s string
	require.NoError(t, ro.QueryRow(ctx, "SELECT note FROM items WHERE id = 1", nil).Scan(&s))
	require.Equal(t, "replica", s)
	require.NoError(t, ro.Commit(ctx))
	rw, err := c.BeginTx(ctx, client.TxOptions{})
	require.NoError(t, err)
	require.NoError(t, rw.QueryRow(ctx, "SELECT note FROM items WHERE id = 1", nil).Scan(&s))
	require.Equal(t, "written", s)
	require.NoError(t, rw.Commit(ctx))

	_, err = c.Vectors().CreateCollection(ctx, "docs", 3)
	require.NoError(t, err)
	_, err = c.Vectors().Upsert(ctx, "docs", []client.VectorItem{{ID: "on-the-primary", Vector: []float32{1, 2, 3}}})
	require.NoError(t, err)
	matches, err := c.Vectors().Search(ctx, "docs", []float32{1, 2, 3})
	require.NoError(t, err)
	require.Len(t, matches, 1)
	require.Equal(t, "on-the-replica", matches[0].ID, "searches go to the read pool")

	// db.health and /metrics show the read pool beside the primary.
	h, err := c.Health(ctx)
	require.NoError(t, err)
	require.Equal(t, "healthy", h.Status)
	require.NotNil(t, h.Postgres.Read, "db.health reports the read pool")
	require.Equal(t, "healthy", h.Postgres.Read.Status)
	require.Positive(t, h.Postgres.Read.Pool.Total, "the read pool served the reads above")
	require.Equal(t, int32(3), h.Postgres.Read.Pool.Max)
	body := scrape(t, httpAddr)
	for _, want := range []string{
		`dbworker_pg_pool_max_connections{pool="read"} 3`,
		`dbworker_pg_pool_total_connections{pool="primary"}`,
		`dbworker_pg_pool_acquire_wait_seconds_total{pool="read"}`,
		`dbworker_pg_pool_canceled_acquire_total{pool="primary"}`,
	} {
		require.Contains(t, body, want)
	}

	// A read pool that is down leaves the worker degraded, serving writes.
	admin := testenv.NewPostgres(t)
	admin.Exec(t, "ALTER DATABASE "+replica.Database(t)+" ALLOW_CONNECTIONS false")
	admin.Exec(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"+replica.Database(t)+"'")
	require.Eventually(t, func() bool {
		h, err := c.Health(ctx)
		return err == nil && h.Status == "degraded" && h.Postgres.Read.Status == "unhealthy" && h.Postgres.Status == "healthy"
	}, 10*time.Second, 100*time.Millisecond)
	_, err = c.Exec(ctx, "UPDATE items SET note = 'still written' WHERE id = 1", nil)
	require.NoError(t, err)
	var down string
	err = c.QueryRow(ctx, "SELECT note FROM items WHERE id = 1", nil, client.WithReadOnly()).Scan(&down)
	var me *messages.Error
	require.ErrorAs(t, err, &me, "a read while the read pool is down")
	require.Equal(t, messages.CodeUnavailable, me.Code)
	admin.Exec(t, "ALTER DATABASE "+replica.Database(t)+" ALLOW_CONNECTIONS true")
}
