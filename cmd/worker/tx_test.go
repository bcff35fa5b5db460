package main

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/client"
)

// txFixture starts a worker binary over a table with one counter row.
func txFixture(t *testing.T, env ...string) (*testenv.Postgres, *client.Client, func() *os.Process, string, *nats.Conn) {
	t.Helper()
	pg := testenv.NewPostgres(t)
	pg.Exec(t, "CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL); INSERT INTO counter VALUES (1, 0)")
	ns := testenv.NewNATS(t)
	nc := testenv.Connect(t, ns)
	id := "tx-" + pg.Schema
	cmd, _ := startWorker(t, nc, append([]string{"NATS_URL=" + ns.ClientURL(), "POSTGRES_URL=" + pg.URL, "WORKER_ID=" + id}, env...)...)
	c, err := client.New(nc, client.WithTimeout(5*time.Second))
	require.NoError(t, err)
	return pg, c, func() *os.Process { return cmd.Process }, id, nc
}

func counterValue(t *testing.T, pg *testenv.Postgres) int {
	return pg.Count("SELECT n FROM counter WHERE id = 1")
}

// TestSIGKILLWithATransactionOpen: the worker holding a transaction dies;
// nothing of the transaction is committed, the caller learns at once that it
// is gone, and PostgreSQL ends the session.
func TestSIGKILLWithATransactionOpen(t *testing.T) {
	ctx := context.Background()
	pg, c, proc, id, nc := txFixture(t)
	tx, err := c.BeginTx(ctx, client.TxOptions{IdleTimeout: time.Minute})
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "UPDATE counter SET n = 1", nil)
	require.NoError(t, err)
	require.NoError(t, proc().Kill())
	_, _ = proc().Wait()
	// Once the server has seen the connection drop (at once, unless the
	// machine is loaded), nothing answers on the worker's subjects.
	require.Eventually(t, func() bool {
		_, err := nc.Request("db.health", nil, 200*time.Millisecond)
		return errors.Is(err, nats.ErrNoResponders)
	}, 10*time.Second, 50*time.Millisecond)
	start := time.Now()
	_, err = tx.Exec(ctx, "UPDATE counter SET n = 2", nil)
	require.ErrorIs(t, err, client.ErrTxGone)
	require.Less(t, time.Since(start), 2*time.Second, "no responders, not a timeout")
	require.ErrorIs(t, tx.Commit(ctx), client.ErrTxGone)
	activity := watchActivity(t, pg.URL)
	require.Eventually(t, func() bool { return activity("dbworker/"+id, "%") == 0 }, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, 0, counterValue(t, pg), "nothing was committed")
}

// TestSIGTERMWithTransactionsOpen: on SIGTERM the worker takes no new
// transaction, lets an open one be committed within the drain timeout, and
// rolls back the one nobody ends; then it exits.
func TestSIGTERMWithTransactionsOpen(t *testing.T) {
	ctx := context.Background()
	pg, c, proc, _, _ := txFixture(t, "SHUTDOWN_TIMEOUT=3s")
	committed, err := c.BeginTx(ctx, client.TxOptions{IdleTimeout: time.Minute})
	require.NoError(t, err)
	abandoned, err := c.BeginTx(ctx, client.TxOptions{IdleTimeout: time.Minute})
	require.NoError(t, err)
	_, err = committed.Exec(ctx, "UPDATE counter SET n = n + 1", nil)
	require.NoError(t, err)
	_, err = abandoned.Exec(ctx, "INSERT INTO counter VALUES (2, 0)", nil)
	require.NoError(t, err)

	require.NoError(t, proc().Signal(syscall.SIGTERM))
	exited := make(chan struct{})
	go func() {
		_, _ = proc().Wait()
		close(exited)
	}()
	require.Eventually(t, func() bool {
		_, err := c.BeginTx(ctx, client.TxOptions{})
		return err != nil
	}, 2*time.Second, 50*time.Millisecond, "no begin once draining")
	_, err = committed.Exec(ctx, "UPDATE counter SET n = n + 1", nil)
	require.NoError(t, err, "an open transaction still works while the worker drains")
	require.NoError(t, committed.Commit(ctx))
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker did not exit after its drain timeout")
	}
	require.Equal(t, 2, counterValue(t, pg), "the committed transaction stands")
	require.Equal(t, 1, pg.Count("SELECT count(*) FROM counter"), "the abandoned one was rolled back")
}
