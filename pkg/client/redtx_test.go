package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/pkg/client"
)

// TestRedTxErrorsDoNotHoldTheSecret: a Tx's id is a secret (Tx.ID's doc),
// and its errors name it by its first 8 characters ("tx 9f2c1a0b: ...").
// But a transport error (the context's deadline, a NATS timeout) comes back
// as "<subject>: <cause>", the subject holding the full id: an application
// that logs its errors (the usual thing to do with a timeout) logs the key
// to a transaction that is still open.
//
// Should: the error names the transaction as the others do, by a prefix.
func TestRedTxErrorsDoNotHoldTheSecret(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	tx, err := c.BeginTx(ctx, client.TxOptions{})
	require.NoError(t, err)
	defer func() { require.NoError(t, tx.Rollback(ctx)) }()

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = tx.Exec(short, "SELECT pg_sleep(1)", nil)
	require.Error(t, err)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
	require.NotContains(t, err.Error(), tx.ID(), "the error of a live transaction holds its full id")
}

// TestRedTxStreamErrorsDoNotHoldTheSecret: the next variant of the above,
// on the calls that go through a stream (Query, QueryStream): a timeout
// while opening, and one while reading, name the transaction by a prefix.
func TestRedTxStreamErrorsDoNotHoldTheSecret(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	tx, err := c.BeginTx(ctx, client.TxOptions{})
	require.NoError(t, err)
	defer func() { require.NoError(t, tx.Rollback(ctx)) }()

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = tx.Query(short, "SELECT pg_sleep(1)", nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotContains(t, err.Error(), tx.ID(), "the error of a live transaction holds its full id")

	// The statement interrupted by the timeout left the transaction aborted
	// or still running it; a new one is needed for the stream.
	require.NoError(t, tx.Rollback(ctx))
	tx, err = c.BeginTx(ctx, client.TxOptions{})
	require.NoError(t, err)
	reading, cancel2 := context.WithCancel(ctx)
	rows, err := tx.QueryStream(reading, "SELECT g, md5(g::text) FROM generate_series(1, 1000000) g", nil)
	require.NoError(t, err)
	require.True(t, rows.Next())
	cancel2()
	for rows.Next() {
	}
	require.ErrorIs(t, rows.Err(), context.Canceled)
	require.NotContains(t, rows.Err().Error(), tx.ID(), "the error of a live transaction's stream holds its full id")
}
