package client_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/pkg/client"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// txTable creates a table of the test's own with one counter row.
func txTable(t *testing.T, c *client.Client) string {
	t.Helper()
	name := "tx_" + nuid.Next()
	_, err := c.Exec(context.Background(), fmt.Sprintf(`CREATE TABLE %q (id int PRIMARY KEY, n int NOT NULL)`, name), nil)
	require.NoError(t, err)
	_, err = c.Exec(context.Background(), fmt.Sprintf(`INSERT INTO %q VALUES (1, 0)`, name), nil)
	require.NoError(t, err)
	return fmt.Sprintf("%q", name)
}

func counter(t *testing.T, c *client.Client, table string) int {
	t.Helper()
	var n int
	require.NoError(t, c.QueryRow(context.Background(), "SELECT n FROM "+table+" WHERE id = 1", nil).Scan(&n))
	return n
}

func TestTxCommitAndRollback(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	table := txTable(t, c)

	tx, err := c.BeginTx(ctx, client.TxOptions{})
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "UPDATE "+table+" SET n = 5", nil)
	require.NoError(t, err)
	var inside int
	require.NoError(t, tx.QueryRow(ctx, "SELECT n FROM "+table, nil).Scan(&inside))
	require.Equal(t, 5, inside, "the transaction sees its own write")
	require.Equal(t, 0, counter(t, c, table), "others do not, before commit")
	require.NoError(t, tx.Rollback(ctx))
	require.Equal(t, 0, counter(t, c, table))
	_, err = tx.Exec(ctx, "SELECT 1", nil)
	require.ErrorIs(t, err, client.ErrTxGone)
	require.NoError(t, tx.Rollback(ctx), "a second rollback is a no-op")

	tx, err = c.BeginTx(ctx, client.TxOptions{Isolation: client.RepeatableRead})
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "UPDATE "+table+" SET n = 7", nil)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, 7, counter(t, c, table))
	require.ErrorIs(t, tx.Commit(ctx), client.ErrTxGone)
}

// TestTxConcurrentIncrements: read, decide, write, in one transaction each,
// twelve at once: SELECT ... FOR UPDATE makes them take turns, and the
// counter ends exactly right.
func TestTxConcurrentIncrements(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	table := txTable(t, c)
	const n = 12
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.InTx(ctx, client.TxOptions{}, func(tx *client.Tx) error {
				var cur int
				if err := tx.QueryRow(ctx, "SELECT n FROM "+table+" WHERE id = 1 FOR UPDATE", nil).Scan(&cur); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "UPDATE "+table+" SET n = :n WHERE id = 1", client.NamedArgs{"n": cur + 1})
				return err
			})
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	require.Equal(t, n, counter(t, c, table))
}

// TestTxSerializationFailureRetried: two serializable transactions that read
// what the other writes; one fails with 40001 and InTx runs it again.
func TestTxSerializationFailureRetried(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	table := txTable(t, c)
	_, err := c.Exec(ctx, "INSERT INTO "+table+" VALUES (2, 0)", nil)
	require.NoError(t, err)
	var attempts atomic.Int32
	var bothRead sync.WaitGroup
	bothRead.Add(2)
	var once [2]sync.Once
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.InTx(ctx, client.TxOptions{Isolation: client.Serializable}, func(tx *client.Tx) error {
				attempts.Add(1)
				var sum int
				if err := tx.QueryRow(ctx, "SELECT sum(n) FROM "+table, nil).Scan(&sum); err != nil {
					return err
				}
				once[i].Do(func() { // the first attempts read before either writes
					bothRead.Done()
					bothRead.Wait()
				})
				_, err := tx.Exec(ctx, "UPDATE "+table+" SET n = :s + 1 WHERE id = :id", client.NamedArgs{"s": sum, "id": i + 1})
				return err
			})
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	require.GreaterOrEqual(t, attempts.Load(), int32(3), "one of the two ran again after 40001")

	// Without retries the failure surfaces, with its SQLSTATE.
	err = c.InTx(ctx, client.TxOptions{Isolation: client.Serializable, MaxRetries: -1}, func(tx *client.Tx) error {
		other, err := c.BeginTx(ctx, client.TxOptions{Isolation: client.Serializable})
		if err != nil {
			return err
		}
		defer other.Rollback(ctx)
		var a, b int
		if err := tx.QueryRow(ctx, "SELECT sum(n) FROM "+table, nil).Scan(&a); err != nil {
			return err
		}
		if err := other.QueryRow(ctx, "SELECT sum(n) FROM "+table, nil).Scan(&b); err != nil {
			return err
		}
		if _, err := other.Exec(ctx, "UPDATE "+table+" SET n = n + 1 WHERE id = 2", nil); err != nil {
			return err
		}
		if err := other.Commit(ctx); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE "+table+" SET n = n + 1 WHERE id = 1", nil)
		return err
	})
	var me *client.Error
	require.ErrorAs(t, err, &me)
	require.Equal(t, "40001", me.SQLState, "%v", err)
	require.Equal(t, messages.CodeConflict, me.Code)
}

// TestTxIdleTimeout: a transaction left alone past its idle timeout is
// rolled back; its later requests answer TX_GONE and run nothing.
func TestTxIdleTimeout(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	table := txTable(t, c)
	tx, err := c.BeginTx(ctx, client.TxOptions{IdleTimeout: 300 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, 300*time.Millisecond, tx.IdleTimeout())
	_, err = tx.Exec(ctx, "UPDATE "+table+" SET n = 1", nil)
	require.NoError(t, err)
	time.Sleep(time.Second)
	_, err = tx.Exec(ctx, "UPDATE "+table+" SET n = 2", nil)
	require.ErrorIs(t, err, client.ErrTxGone)
	var me *client.Error
	require.ErrorAs(t, err, &me)
	require.Equal(t, 410, me.Status)
	require.ErrorIs(t, tx.Commit(ctx), client.ErrTxGone)
	require.Equal(t, 0, counter(t, c, table), "nothing was committed")
}

// TestTxLifetime: a transaction past its lifetime is rolled back even with
// a statement running, which is cancelled.
func TestTxLifetime(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	table := txTable(t, c)
	tx, err := c.BeginTx(ctx, client.TxOptions{MaxLifetime: 500 * time.Millisecond})
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "UPDATE "+table+" SET n = 1", nil)
	require.NoError(t, err)
	start := time.Now()
	_, err = tx.Exec(ctx, "SELECT pg_sleep(5)", nil)
	require.ErrorIs(t, err, client.ErrTxGone)
	require.Less(t, time.Since(start), 3*time.Second, "the running statement was cancelled")
	require.Equal(t, 0, counter(t, c, table))
}

// TestTxAborted: after a failed statement the transaction answers
// TX_ABORTED until it ends, and a commit rolls back.
func TestTxAborted(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	table := txTable(t, c)
	tx, err := c.BeginTx(ctx, client.TxOptions{})
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "UPDATE "+table+" SET n = 1", nil)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SELECT 1/0", nil)
	var me *client.Error
	require.ErrorAs(t, err, &me)
	require.Equal(t, "22012", me.SQLState)
	_, err = tx.Exec(ctx, "SELECT 1", nil)
	require.ErrorAs(t, err, &me)
	require.Equal(t, messages.CodeTxAborted, me.Code)
	require.Equal(t, 409, me.Status)
	err = tx.Commit(ctx)
	require.ErrorAs(t, err, &me)
	require.Equal(t, messages.CodeTxAborted, me.Code)
	require.Equal(t, 0, counter(t, c, table))
	require.NoError(t, tx.Rollback(ctx))

	// A request refused before it reached the database leaves it usable.
	tx, err = c.BeginTx(ctx, client.TxOptions{})
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, "SELECT :missing", nil)
	require.ErrorAs(t, err, &me)
	require.Equal(t, messages.CodeBadRequest, me.Code)
	_, err = tx.Exec(ctx, "SELECT 1", nil)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
}

// TestTxRefusals: what a transaction does not take, and what stays secret.
func TestTxRefusals(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	tx, err := c.BeginTx(ctx, client.TxOptions{})
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	var me *client.Error
	for _, req := range []*messages.ExecuteRequest{
		{SQL: "COMMIT"}, {SQL: "ROLLBACK"}, {SQL: "SAVEPOINT a"},
		{Op: messages.OpScript, SQL: "SELECT 1; SELECT 2"},
		{Op: messages.OpTx, Statements: []messages.Statement{{SQL: "SELECT 1"}}},
		{SQL: "SELECT 1", ReadOnly: true}, // READ ONLY is chosen at begin
	} {
		_, err := tx.Execute(ctx, req)
		require.ErrorAs(t, err, &me, "%+v", req)
	}
	_, err = tx.Exec(ctx, "SELECT 1", nil)
	require.NoError(t, err, "refusals leave the transaction usable")

	// Another caller (another inbox prefix) cannot reach it, even with its id.
	other, err := nats.Connect(nc.ConnectedUrl(), nats.CustomInboxPrefix("_INBOX_other"))
	require.NoError(t, err)
	defer other.Close()
	msg, err := other.Request(tx.Subject(), []byte(`{"sql":"SELECT 1"}`), 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "410", msg.Header.Get("Nats-Service-Error-Code"))
	// A guessed id reaches nothing, and ends nothing.
	guessed := tx.Subject()[:len(tx.Subject())-len(tx.ID())] + strings.Repeat("0", len(tx.ID()))
	msg, err = nc.Request(guessed, []byte(`{"op":"rollback"}`), 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "410", msg.Header.Get("Nats-Service-Error-Code"))
	_, err = tx.Exec(ctx, "SELECT 1", nil)
	require.NoError(t, err, "the transaction outlived the guess")
	// An unknown isolation is refused.
	_, err = c.BeginTx(ctx, client.TxOptions{Isolation: "chaos"})
	require.ErrorAs(t, err, &me)
	require.Equal(t, messages.CodeBadRequest, me.Code)
}

// TestTxBound: past the worker's bound on open transactions, begin answers
// UNAVAILABLE at once; one-shot requests still run.
func TestTxBound(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	var open []*client.Tx
	defer func() {
		for _, tx := range open {
			_ = tx.Rollback(ctx)
		}
	}()
	var me *client.Error
	for {
		tx, err := c.BeginTx(ctx, client.TxOptions{})
		if err != nil {
			require.ErrorAs(t, err, &me)
			require.Equal(t, messages.CodeUnavailable, me.Code, "%v", err)
			break
		}
		open = append(open, tx)
		require.LessOrEqual(t, len(open), txMaxOpen, "the bound holds")
	}
	require.Len(t, open, txMaxOpen)
	_, err := c.Exec(ctx, "SELECT 1", nil)
	require.NoError(t, err, "one-shot requests keep their connections")
	require.NoError(t, open[0].Commit(ctx))
	open = open[1:]
	tx, err := c.BeginTx(ctx, client.TxOptions{})
	require.NoError(t, err, "a slot freed")
	open = append(open, tx)
}

// TestTxBatchExpectations: a batch tx takes isolation, read_only and
// deferrable, and a statement's expect_rows aborts the whole batch: the
// transfer from an account that does not exist credits nobody.
func TestTxBatchExpectations(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	table := txTable(t, c) // account 1 with balance 0
	_, err := c.Exec(ctx, "UPDATE "+table+" SET n = 100", nil)
	require.NoError(t, err)
	transfer := func(from, to int) error {
		_, err := c.Tx(ctx, []client.Statement{
			{SQL: "UPDATE " + table + " SET n = n - 10 WHERE id = :id", Args: client.NamedArgs{"id": from}, ExpectRows: client.Expect(1)},
			{SQL: "UPDATE " + table + " SET n = n + 10 WHERE id = :id", Args: client.NamedArgs{"id": to}, ExpectRows: client.Expect(1)},
		}, client.WithIsolation(client.Serializable))
		return err
	}
	err = transfer(99, 1)
	var me *client.Error
	require.ErrorAs(t, err, &me)
	require.Equal(t, messages.CodeConflict, me.Code, "%v", err)
	require.NotNil(t, me.FailedIndex)
	require.Equal(t, 0, *me.FailedIndex)
	err = transfer(1, 99)
	require.ErrorAs(t, err, &me)
	require.Equal(t, 1, *me.FailedIndex)
	require.Equal(t, 100, counter(t, c, table), "neither transfer changed anything")

	res, err := c.Tx(ctx, []client.Statement{{SQL: "SELECT current_setting('transaction_isolation') AS iso, current_setting('transaction_read_only') AS ro", QueryRow: true}},
		client.WithIsolation(client.Serializable), client.WithReadOnly(), client.WithDeferrable())
	require.NoError(t, err)
	require.JSONEq(t, `{"iso":"serializable","ro":"on"}`, string(res.Results[0].Row))

	_, err = c.Query(ctx, "SELECT 1", nil, client.WithIsolation(client.Serializable))
	require.ErrorAs(t, err, &me, "isolation is for transactions")
	require.Equal(t, messages.CodeBadRequest, me.Code)
	_, err = c.Tx(ctx, []client.Statement{{SQL: "SELECT 1", ExpectRows: client.Expect(-1)}})
	require.ErrorAs(t, err, &me)
	require.Equal(t, messages.CodeBadRequest, me.Code)
}

// TestTxCallsWaitForEachOther: a Tx is safe for concurrent use, its calls
// taking turns (the worker refuses a second request of a transaction with
// CONFLICT): an Exec sent while a Query runs, or while a QueryStream's rows
// are being read, waits for it, and both happen.
func TestTxCallsWaitForEachOther(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	table := txTable(t, c)
	tx, err := c.BeginTx(ctx, client.TxOptions{})
	require.NoError(t, err)
	defer tx.Rollback(ctx)

	done := make(chan error, 1)
	go func() {
		_, err := tx.Query(ctx, "SELECT pg_sleep(0.5), n FROM "+table, nil)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	_, err = tx.Exec(ctx, "UPDATE "+table+" SET n = n + 1", nil)
	require.NoError(t, err, "an Exec during a Query")
	require.NoError(t, <-done)

	rows, err := tx.QueryStream(ctx, "SELECT g, md5(g::text) FROM generate_series(1, 100000) g", nil)
	require.NoError(t, err)
	go func() {
		_, err := tx.Exec(ctx, "UPDATE "+table+" SET n = n + 1", nil)
		done <- err
	}()
	n := 0
	for rows.Next() {
		n++
	}
	require.NoError(t, rows.Err(), "the stream read while an Exec waits")
	require.Equal(t, 100000, n)
	require.NoError(t, <-done, "an Exec during a stream")

	// The goroutine that reads an open stream and calls the Tx again would
	// wait on itself: it fails with ErrTxBusy once its context ends, the
	// stream still readable and the transaction intact.
	rows, err = tx.QueryStream(ctx, "SELECT g FROM generate_series(1, 3) g", nil)
	require.NoError(t, err)
	require.True(t, rows.Next())
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = tx.Exec(short, "UPDATE "+table+" SET n = n + 100", nil)
	cancel()
	require.ErrorIs(t, err, client.ErrTxBusy)
	for rows.Next() {
	}
	require.NoError(t, rows.Err())
	rows.Close()

	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, 2, counter(t, c, table), "the busy Exec never ran")
}
