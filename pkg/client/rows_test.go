package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/pkg/client"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// big is a query whose answer (about 6 MB) is several max-size messages of
// the package's server.
const big = "SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 100000) g"

type hashed struct {
	ID int64  `json:"id"`
	H  string `json:"h"`
}

// TestQueryStream: a large answer is read a row at a time, every row once
// and in order, with the command tag at the end.
func TestQueryStream(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	rows, err := c.QueryStream(ctx, big, nil)
	require.NoError(t, err)
	defer rows.Close()
	require.Equal(t, []client.Column{{Name: "id", Type: "int4"}, {Name: "h", Type: "text"}}, rows.Columns())
	var n int64
	for rows.Next() {
		n++
		var r hashed
		require.NoError(t, rows.Scan(&r))
		require.Equal(t, n, r.ID)
	}
	require.NoError(t, rows.Err())
	require.EqualValues(t, 100000, n)
	require.Equal(t, "SELECT 100000", rows.CommandTag().String())
	require.False(t, rows.Truncated())

	// A small answer is one message, read the same way.
	var ids []int64
	for id, err := range client.AllRows[int64](c.QueryStream(ctx, "SELECT generate_series(1, 3) AS id", nil)) {
		require.NoError(t, err)
		ids = append(ids, id)
	}
	require.Equal(t, []int64{1, 2, 3}, ids)

	// WithMaxRows caps a stream and says so; nothing else caps it.
	rows, err = c.QueryStream(ctx, big, nil, client.WithMaxRows(60000), client.WithArrayRows())
	require.NoError(t, err)
	n = 0
	for rows.Next() {
		n++
	}
	require.NoError(t, rows.Err())
	require.EqualValues(t, 60000, n)
	require.True(t, rows.Truncated())
	require.EqualValues(t, 100000, rows.CommandTag().RowsAffected())
}

// TestQueryGathersAStream: Query of a large answer returns every row, not
// the first DB_MAX_ROWS of them.
func TestQueryGathersAStream(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	res, err := c.Query(ctx, big, nil)
	require.NoError(t, err)
	require.False(t, res.Truncated)
	require.EqualValues(t, 100000, res.RowsAffected)
	all, err := client.CollectRows[hashed](res, nil)
	require.NoError(t, err)
	require.Len(t, all, 100000)
	require.Equal(t, hashed{ID: 100000, H: all[99999].H}, all[99999])
	require.Len(t, res.Columns, 2)
}

// TestStreamError: an error after rows left ends the rows with the error.
func TestStreamError(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	rows, err := c.QueryStream(ctx, "SELECT g, md5(g::text), 1 / (80000 - g) AS x FROM generate_series(1, 100000) g", nil)
	require.NoError(t, err, "the first rows arrive")
	n := 0
	for rows.Next() {
		n++
	}
	var e *client.Error
	require.ErrorAs(t, rows.Err(), &e)
	require.Equal(t, "22012", e.SQLState)
	require.Positive(t, n)
	require.Less(t, n, 80000)

	_, err = c.Query(ctx, "SELECT g, md5(g::text), 1 / (80000 - g) AS x FROM generate_series(1, 100000) g", nil)
	require.ErrorAs(t, err, &e)
	_, err = c.QueryStream(ctx, "SELECT nope", nil)
	require.ErrorAs(t, err, &e, "an error before any row is QueryStream's")
	_, err = newClient(t, client.WithPrefix("nobody")).QueryStream(ctx, "SELECT 1", nil)
	require.ErrorIs(t, err, client.ErrNoWorker)
}

// TestStreamStoppedEarly: leaving the loop closes the rows and stops the
// worker's statement; the next query runs.
func TestStreamStoppedEarly(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	for range 3 {
		n := 0
		for _, err := range client.AllRows[hashed](c.QueryStream(ctx, "SELECT g AS id, md5(g::text) AS h FROM (SELECT generate_series(1, 100000000) AS g) s", nil)) {
			require.NoError(t, err)
			if n++; n == 50000 {
				break
			}
		}
	}
	var one int
	require.NoError(t, c.QueryRow(ctx, "SELECT 1", nil).Scan(&one))
}

// fake answers db.execute under prefix with the messages msgs returns for
// the request's reply inbox: a stand-in worker that breaks the protocol.
func fake(t *testing.T, prefix string, msgs func(reply string) []*nats.Msg) {
	t.Helper()
	sub, err := nc.Subscribe(prefix+".db.execute", func(m *nats.Msg) {
		for _, out := range msgs(m.Reply) {
			_ = nc.PublishMsg(out)
		}
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
}

func streamMsg(reply string, seq int, body string, end bool) *nats.Msg {
	m := nats.NewMsg(reply)
	m.Data = []byte(body)
	m.Header.Set(messages.HeaderStreamID, "S1")
	m.Header.Set(messages.HeaderStreamSeq, fmt.Sprint(seq))
	if seq == 1 {
		m.Header.Set(messages.HeaderStreamCredit, "spy.db.stream.S1")
	}
	if end {
		m.Header.Set(messages.HeaderStreamEnd, "true")
	}
	return m
}

// TestStreamLossIsAnError: a missing message (a gap in the sequence) or a
// total that does not match the rows read is ErrStreamBroken, never a short
// answer; an answer cut at the worker's row cap is ErrTruncated unless
// WithMaxRows asked for a cap.
func TestStreamLossIsAnError(t *testing.T) {
	ctx := context.Background()
	fake(t, "gap", func(reply string) []*nats.Msg {
		return []*nats.Msg{
			streamMsg(reply, 1, `{"columns":[{"name":"x","type":"int4"}],"rows":[{"x":1}]}`, false),
			streamMsg(reply, 3, `{"rows":[{"x":3}]}`, false),
		}
	})
	_, err := newClient(t, client.WithPrefix("gap")).Query(ctx, "SELECT x", nil)
	require.ErrorIs(t, err, client.ErrStreamBroken)

	fake(t, "short", func(reply string) []*nats.Msg {
		return []*nats.Msg{
			streamMsg(reply, 1, `{"columns":[{"name":"x","type":"int4"}],"rows":[{"x":1},{"x":2}]}`, false),
			streamMsg(reply, 2, `{"row_count":3,"rows_affected":3,"command":"SELECT 3","truncated":false}`, true),
		}
	})
	_, err = newClient(t, client.WithPrefix("short")).Query(ctx, "SELECT x", nil)
	require.ErrorIs(t, err, client.ErrStreamBroken)

	fake(t, "old", func(reply string) []*nats.Msg {
		m := nats.NewMsg(reply)
		m.Data = []byte(`{"columns":[{"name":"x","type":"int4"}],"rows":[{"x":1}],"rows_affected":2,"command":"SELECT 2","truncated":true}`)
		return []*nats.Msg{m}
	})
	old := newClient(t, client.WithPrefix("old"))
	_, err = old.Query(ctx, "SELECT x", nil)
	require.ErrorIs(t, err, client.ErrTruncated)
	_, err = old.QueryStream(ctx, "SELECT x", nil)
	require.ErrorIs(t, err, client.ErrTruncated)
	res, err := old.Query(ctx, "SELECT x", nil, client.WithMaxRows(1))
	require.NoError(t, err)
	require.True(t, res.Truncated)
	var rows []json.RawMessage
	require.NoError(t, json.Unmarshal(res.Rows, &rows))
	require.Len(t, rows, 1)
}

// TestStreamInATransaction: a large answer inside an interactive
// transaction is streamed as outside one, and its rows are the
// transaction's own; a stream stopped early cancels its statement, which
// aborts the transaction.
func TestStreamInATransaction(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	table := txTable(t, c)
	tx, err := c.BeginTx(ctx, client.TxOptions{})
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, "INSERT INTO "+table+" SELECT g, g FROM generate_series(2, 100001) g", nil)
	require.NoError(t, err)
	const sql = "SELECT id, n, md5(n::text) AS h FROM %s ORDER BY id"
	rows, err := tx.QueryStream(ctx, fmt.Sprintf(sql, table), nil)
	require.NoError(t, err)
	n := 0
	for rows.Next() {
		n++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, 100001, n, "the transaction's own rows")
	res, err := tx.Query(ctx, fmt.Sprintf(sql, table), nil)
	require.NoError(t, err)
	require.EqualValues(t, 100001, res.RowsAffected)
	outside, err := c.Query(ctx, fmt.Sprintf(sql, table), nil)
	require.NoError(t, err)
	require.EqualValues(t, 1, outside.RowsAffected, "not committed: others see one row")

	rows, err = tx.QueryStream(ctx, "SELECT g, md5(g::text) FROM (SELECT generate_series(1, 100000000) AS g) s", nil)
	require.NoError(t, err)
	require.True(t, rows.Next())
	rows.Close()
	var e *client.Error
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := tx.Query(ctx, "SELECT 1", nil)
		if assert.ErrorAs(c, err, &e) {
			assert.Equal(c, messages.CodeTxAborted, e.Code)
		}
	}, 10*time.Second, 50*time.Millisecond, "the cancelled statement aborted the transaction")
	require.ErrorAs(t, tx.Commit(ctx), &e)
	require.Equal(t, messages.CodeTxAborted, e.Code)
	require.Equal(t, 0, counter(t, c, table))
}
