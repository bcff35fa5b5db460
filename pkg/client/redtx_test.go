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
// Should: the error names the transaction as the others do, by a prefix,
// on every call: Exec (one message), Query and QueryStream (a stream), and a
// stream's error while reading.
func TestRedTxErrorsDoNotHoldTheSecret(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	for name, call := range map[string]func(context.Context, *client.Tx) error{
		"exec": func(ctx context.Context, tx *client.Tx) error {
			_, err := tx.Exec(ctx, "SELECT pg_sleep(1)", nil)
			return err
		},
		"query": func(ctx context.Context, tx *client.Tx) error {
			_, err := tx.Query(ctx, "SELECT pg_sleep(1)", nil)
			return err
		},
		"stream": func(ctx context.Context, tx *client.Tx) error {
			rows, err := tx.QueryStream(ctx, "SELECT pg_sleep(1)", nil)
			if err != nil {
				return err
			}
			rows.Close()
			return errors.New("the stream opened")
		},
	} {
		tx, err := c.BeginTx(ctx, client.TxOptions{})
		require.NoError(t, err)
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err = call(short, tx)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, name)
		require.NotContains(t, err.Error(), tx.ID(), "%s: the error of a live transaction holds its full id", name)
		require.NoError(t, tx.Rollback(ctx), name)
	}

	// A stream's error while reading.
	tx, err := c.BeginTx(ctx, client.TxOptions{})
	require.NoError(t, err)
	defer func() { require.NoError(t, tx.Rollback(ctx)) }()
	reading, cancel := context.WithCancel(ctx)
	rows, err := tx.QueryStream(reading, "SELECT g, md5(g::text) FROM generate_series(1, 1000000) g", nil)
	require.NoError(t, err)
	require.True(t, rows.Next())
	cancel()
	for rows.Next() {
	}
	require.ErrorIs(t, rows.Err(), context.Canceled)
	require.NotContains(t, rows.Err().Error(), tx.ID(), "the error of a live transaction's stream holds its full id")
}
