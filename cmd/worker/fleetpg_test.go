package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/client"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// TestThroughPgBouncerTransactionMode: a worker with POSTGRES_POOLER=transaction
// behind PgBouncer in transaction mode, with PgBouncer's defaults, starts
// (its start-up DDL runs through the pooler) and serves 16 callers for 5 s
// without one error: statements, transactions, interactive transactions,
// read-only requests, graph and vector calls. VACUUM runs on the session
// URL; the caps hold.
func TestThroughPgBouncerTransactionMode(t *testing.T) {
	db := testenv.NewDatabase(t)
	db.Exec(t, "CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL); INSERT INTO counter VALUES (1, 0); CREATE TABLE items (id int PRIMARY KEY, note text)")
	bouncer := testenv.NewPgBouncer(t)
	ns := testenv.NewNATS(t)
	nc := testenv.Connect(t, ns)
	startWorker(t, nc, "NATS_URL="+ns.ClientURL(), "POSTGRES_URL="+bouncer.URL(t, db.Database(t)), "POSTGRES_POOLER=transaction",
		"POSTGRES_SESSION_URL="+db.URL, "WORKER_ID=pgbouncer-"+db.Database(t), "PGVECTOR_DIMENSION=3", "DB_TX_MAX_OPEN=16")
	c, err := client.New(nc, client.WithTimeout(10*time.Second))
	require.NoError(t, err)
	ctx := context.Background()
	_, err = c.Vectors().CreateCollection(ctx, "docs", 3)
	require.NoError(t, err)

	const callers = 16
	var (
		wg      sync.WaitGroup
		nextID  atomic.Int64
		calls   atomic.Int64
		bumps   atomic.Int64
		mu      sync.Mutex
		errs    []string
		errSeen atomic.Int64
	)
	fail := func(what string, err error) {
		errSeen.Add(1)
		mu.Lock()
		defer mu.Unlock()
		if len(errs) < 10 {
			errs = append(errs, fmt.Sprintf("%s: %v", what, err))
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				calls.Add(1)
				id := nextID.Add(1)
				switch i % 8 {
				case 0:
					if _, err := c.Exec(ctx, "INSERT INTO items (id, note) VALUES (:id, :note)", client.NamedArgs{"id": id, "note": "n"}); err != nil {
						fail("insert", err)
					}
				case 1:
					var n int64
					if err := c.QueryRow(ctx, "SELECT count(*) FROM items", nil).Scan(&n); err != nil {
						fail("count", err)
					}
				case 2:
					if _, err := c.Query(ctx, "SELECT id, note FROM items ORDER BY id DESC LIMIT 5", nil, client.WithReadOnly()); err != nil {
						fail("read-only query", err)
					}
				case 3:
					if _, err := c.Tx(ctx, []client.Statement{{SQL: "UPDATE counter SET n = n + 1 WHERE id = 1", ExpectRows: client.Expect(1)}}); err != nil {
						fail("tx", err)
					} else {
						bumps.Add(1)
					}
				case 4:
					tx, err := c.BeginTx(ctx, client.TxOptions{})
					if err != nil {
						fail("begin", err)
						continue
					}
					_, err = tx.Exec(ctx, "UPDATE counter SET n = n + 1 WHERE id = 1", nil)
					if err == nil {
						err = tx.Commit(ctx)
					} else {
						_ = tx.Rollback(ctx)
					}
					if err != nil {
						fail("interactive tx", err)
					} else {
						bumps.Add(1)
					}
				case 5:
					if _, err := c.Graph().AddNode(ctx, client.NodeSpec{ID: fmt.Sprintf("n%d", id), Type: "t"}); err != nil {
						fail("graph", err)
					}
				case 6:
					if _, err := c.Vectors().Upsert(ctx, "docs", []client.VectorItem{{ID: fmt.Sprint(id), Vector: []float32{1, float32(g), 3}}}); err != nil {
						fail("vector upsert", err)
					}
				case 7:
					if _, err := c.Vectors().Search(ctx, "docs", []float32{1, 2, 3}); err != nil {
						fail("vector search", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, errSeen.Load(), "%d of %d calls failed, first: %s", errSeen.Load(), calls.Load(), strings.Join(errs, "; "))
	require.Greater(t, calls.Load(), int64(callers*8), "every caller ran every kind of call")
	require.EqualValues(t, bumps.Load(), db.Count("SELECT n FROM counter WHERE id = 1"), "every committed increment, once")

	// The caps hold through the pooler.
	res, err := c.Query(ctx, "SELECT g FROM generate_series(1, 100) g", nil, client.WithMaxRows(7))
	rows, err := client.CollectRows[int](res, err)
	require.NoError(t, err)
	require.Len(t, rows, 7)
	require.True(t, res.Truncated)
	_, err = c.Query(ctx, "SELECT pg_sleep(3)", nil, client.WithStatementTimeout(200*time.Millisecond))
	var me *client.Error
	require.True(t, errors.As(err, &me), "%v", err)
	require.Equal(t, messages.CodeTimeout, me.Code)
	_, err = c.Exec(ctx, "DELETE FROM items", nil, client.WithReadOnly())
	require.True(t, errors.As(err, &me), "%v", err)
	require.Equal(t, messages.CodeForbidden, me.Code)
	// VACUUM has a session of its own, on POSTGRES_SESSION_URL.
	vr, err := c.Maintenance().Vacuum(ctx, messages.VacuumRequest{Table: "items"})
	require.NoError(t, err)
	require.Equal(t, messages.StatusOK, vr.Status, "%+v", vr.Error)
}
