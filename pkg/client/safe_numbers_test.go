package client_test

import (
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/named"
	"github.com/jeeves-avionics/dbworker/pkg/client"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

const safeSQL = "SELECT 9223372036854775807::int8 AS id, 1.10::numeric AS n, 5::int8 AS small"

// TestSafeNumbersWorkerDefault: a worker with DB_SAFE_NUMBERS=true answers
// strings on every path (query, one, op tx, named queries, an interactive
// transaction, a streamed answer, array rows) to a request that leaves
// safe_numbers out, which is every request of this Go client unless asked:
// a Go int64 or float64 field then refuses the answer. WithSafeNumbers(false)
// gets numbers back on every path.
func TestSafeNumbersWorkerDefault(t *testing.T) {
	ctx := context.Background()
	own := startOwnWorkerWith(t, pgexec.ExecutorConfig{SafeNumbers: true, NamedQueries: map[string]named.Query{
		"big": {SQL: safeSQL + " WHERE :x::int = 1", Op: messages.OpOne},
	}})
	c := own.c
	off := client.WithSafeNumbers(false)
	type row struct {
		ID    int64   `json:"id"`
		N     float64 `json:"n"`
		Small int64   `json:"small"`
	}
	const strs = `{"id":"9223372036854775807","n":"1.10","small":5}`
	const nums = `{"id":9223372036854775807,"n":1.10,"small":5}`

	// What a Go caller that does not ask meets.
	_, err := client.CollectOneRow[row](c.Query(ctx, safeSQL, nil))
	require.ErrorContains(t, err, "cannot unmarshal string into Go struct field")
	small, err := client.CollectOneRow[row](c.Query(ctx, "SELECT 5::int8 AS id, 1.5::float8 AS n", nil))
	require.NoError(t, err, "an int8 within 2^53 is still a number: the failure waits for a large value")
	require.Equal(t, row{ID: 5, N: 1.5}, small)
	m, err := client.CollectOneRow[map[string]any](c.Query(ctx, safeSQL, nil))
	require.NoError(t, err)
	require.Equal(t, map[string]any{"id": "9223372036854775807", "n": "1.10", "small": 5.0}, m)

	// WithSafeNumbers(false): numbers, into Go numbers.
	got, err := client.CollectOneRow[row](c.Query(ctx, safeSQL, nil, off))
	require.NoError(t, err)
	require.Equal(t, row{ID: 9223372036854775807, N: 1.1, Small: 5}, got)

	paths := []struct {
		name string
		run  func(opts ...client.QueryOption) (json.RawMessage, error)
	}{
		{"query", func(o ...client.QueryOption) (json.RawMessage, error) {
			res, err := c.Query(ctx, safeSQL, nil, o...)
			return firstRow(t, res), err
		}},
		{"one", func(o ...client.QueryOption) (json.RawMessage, error) {
			var raw json.RawMessage
			return raw, c.QueryRow(ctx, safeSQL, nil, o...).Scan(&raw)
		}},
		{"tx", func(o ...client.QueryOption) (json.RawMessage, error) {
			res, err := c.Tx(ctx, []client.Statement{{SQL: "SELECT 1"}, {SQL: safeSQL, QueryRow: true}}, o...)
			if err != nil {
				return nil, err
			}
			return res.Results[1].Row, nil
		}},
		{"named", func(o ...client.QueryOption) (json.RawMessage, error) {
			res, err := c.Named(ctx, "big", client.NamedArgs{"x": 1}, o...)
			if err != nil {
				return nil, err
			}
			return res.Row, nil
		}},
		{"interactive", func(o ...client.QueryOption) (json.RawMessage, error) {
			tx, err := c.BeginTx(ctx, client.TxOptions{})
			require.NoError(t, err)
			defer tx.Rollback(ctx)
			res, err := tx.Query(ctx, safeSQL, nil, o...)
			return firstRow(t, res), err
		}},
		{"stream", func(o ...client.QueryOption) (json.RawMessage, error) {
			rows, err := c.QueryStream(ctx, safeSQL, nil, o...)
			require.NoError(t, err)
			defer rows.Close()
			var raw json.RawMessage
			require.True(t, rows.Next())
			require.NoError(t, rows.Scan(&raw))
			return raw, rows.Err()
		}},
	}
	for _, p := range paths {
		raw, err := p.run()
		require.NoError(t, err, p.name)
		require.Equal(t, strs, string(raw), p.name)
		raw, err = p.run(off)
		require.NoError(t, err, p.name)
		require.Equal(t, nums, string(raw), p.name)
		raw, err = p.run(client.WithSafeNumbers(true))
		require.NoError(t, err, p.name)
		require.Equal(t, strs, string(raw), p.name)
	}

	// A client made WithSafeNumbersDefault(false): numbers on every path
	// without asking on each call; a call's own WithSafeNumbers still wins.
	c = newClient(t, client.WithPrefix(own.prefix), client.WithSafeNumbersDefault(false))
	for _, p := range paths {
		raw, err := p.run()
		require.NoError(t, err, p.name)
		require.Equal(t, nums, string(raw), "client default, %s", p.name)
		raw, err = p.run(client.WithSafeNumbers(true))
		require.NoError(t, err, p.name)
		require.Equal(t, strs, string(raw), "call over client default, %s", p.name)
	}
	c = own.c

	res, err := c.Query(ctx, safeSQL, nil, client.WithArrayRows())
	require.NoError(t, err)
	require.Equal(t, `[["9223372036854775807","1.10",5]]`, string(res.Rows))
	res, err = c.Query(ctx, safeSQL, nil, client.WithArrayRows(), off)
	require.NoError(t, err)
	require.Equal(t, `[[9223372036854775807,1.10,5]]`, string(res.Rows))
}

// TestSafeNumbersStreamedThroughWorker: an answer streamed in many messages
// (Stream-Window credit) carries safe numbers in every message, in and out of
// an interactive transaction, as objects and as arrays; the default worker
// (DB_SAFE_NUMBERS unset) answers numbers.
func TestSafeNumbersStreamedThroughWorker(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	const n = 60000
	const mul = 153722867280912 // n * mul is near 2^63: the values cross 2^53 at 59
	sql := fmt.Sprintf("SELECT g::int8 * %d AS big, (g || '.10')::numeric AS n, md5(g::text) AS h FROM generate_series(1, %d) g", mul, n)
	want := func(i int, safe, arrays bool) string {
		g := int64(i + 1)
		big, num := fmt.Sprint(g*mul), fmt.Sprintf("%d.10", g)
		if safe {
			num = `"` + num + `"`
			if g*mul > 1<<53-1 {
				big = `"` + big + `"`
			}
		}
		h := fmt.Sprintf(`"%x"`, md5.Sum([]byte(fmt.Sprint(g))))
		if arrays {
			return "[" + big + "," + num + "," + h + "]"
		}
		return `{"big":` + big + `,"n":` + num + `,"h":` + h + "}"
	}
	tx, err := c.BeginTx(ctx, client.TxOptions{ReadOnly: true})
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	for _, cse := range []struct {
		name         string
		stream       func(context.Context, string, client.Params, ...client.QueryOption) (*client.Rows, error)
		safe, arrays bool
	}{
		{"plain", c.QueryStream, false, false},
		{"safe", c.QueryStream, true, false},
		{"safe arrays", c.QueryStream, true, true},
		{"safe in a transaction", tx.QueryStream, true, false},
	} {
		opts := []client.QueryOption{client.WithSafeNumbers(cse.safe)}
		if cse.arrays {
			opts = append(opts, client.WithArrayRows())
		}
		rows, err := cse.stream(ctx, sql, nil, opts...)
		require.NoError(t, err, cse.name)
		i := 0
		for rows.Next() {
			var raw json.RawMessage
			require.NoError(t, rows.Scan(&raw))
			require.Equal(t, want(i, cse.safe, cse.arrays), string(raw), "%s: row %d", cse.name, i)
			i++
		}
		require.NoError(t, rows.Err(), cse.name)
		require.Equal(t, n, i, cse.name)
	}
}

func firstRow(t *testing.T, res *client.Result) json.RawMessage {
	t.Helper()
	if res == nil {
		return nil
	}
	var rows []json.RawMessage
	require.NoError(t, json.Unmarshal(res.Rows, &rows))
	require.NotEmpty(t, rows)
	return rows[0]
}
