package pgexec_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// streamed is what a request sent through Output.Emit gave: the chunks, and
// the answer (the totals after a stream, the whole answer otherwise).
type streamed struct {
	chunks []json.RawMessage
	answer json.RawMessage
	err    error
}

// rows joins the rows of every chunk, checking that each chunk is an object
// of its own with the columns in the first only.
func (s streamed) rows(t *testing.T) []json.RawMessage {
	t.Helper()
	var all []json.RawMessage
	for i, c := range s.chunks {
		var chunk struct {
			Columns []messages.Column `json:"columns"`
			Rows    []json.RawMessage `json:"rows"`
		}
		require.NoError(t, json.Unmarshal(c, &chunk), "chunk %d", i)
		require.Equal(t, i == 0, chunk.Columns != nil, "columns in the first chunk only (chunk %d)", i)
		require.NotEmpty(t, chunk.Rows, "chunk %d", i)
		all = append(all, chunk.Rows...)
	}
	return all
}

// stream runs body with Emit set and MaxBytes max. fail, when set, is the
// error Emit returns from its call number failAt (1-based).
func stream(t *testing.T, run func(context.Context, *messages.ExecuteRequest, pgjson.Output) ([]byte, error), body string, max int, failAt int, fail error) streamed {
	t.Helper()
	var req messages.ExecuteRequest
	require.NoError(t, json.Unmarshal([]byte(body), &req))
	var s streamed
	out := pgjson.Output{MaxBytes: max, Emit: func(chunk []byte) error {
		require.LessOrEqual(t, len(chunk), max+3, "a chunk fits one message")
		s.chunks = append(s.chunks, append(json.RawMessage(nil), chunk...))
		if len(s.chunks) == failAt {
			return fail
		}
		return nil
	}}
	s.answer, s.err = run(context.Background(), &req, out)
	return s
}

func newStreamExecutor(t *testing.T, pg *testenv.Postgres, maxRows int) (*pgexec.Client, *pgexec.Executor) {
	t.Helper()
	c, err := pgexec.Connect(context.Background(), pgexec.Config{DSN: pg.URL, MaxConns: 1})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(c.Close)
	ex, err := pgexec.NewExecutor(c, pgexec.ExecutorConfig{MaxRows: maxRows})
	require.NoError(t, err)
	return c, ex
}

// TestStreamedQuery: with Emit set, a query whose rows pass MaxBytes leaves
// in chunks, each JSON on its own, every row once and in order, and the answer
// is the totals; the executor's MaxRows does not cap it, the caller's
// max_rows does.
func TestStreamedQuery(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	_, ex := newStreamExecutor(t, pg, 100)
	const n = 5000
	s := stream(t, ex.Execute, fmt.Sprintf(`{"sql":"SELECT g AS id, repeat('x', 50) AS pad FROM generate_series(1, %d) g"}`, n), 16<<10, 0, nil)
	require.NoError(t, s.err)
	require.Greater(t, len(s.chunks), 10)
	rows := s.rows(t)
	require.Len(t, rows, n)
	for i, r := range rows {
		var row struct{ ID int }
		require.NoError(t, json.Unmarshal(r, &row))
		require.Equal(t, i+1, row.ID)
	}
	require.JSONEq(t, fmt.Sprintf(`{"row_count":%d,"rows_affected":%d,"command":"SELECT %d","truncated":false}`, n, n, n), string(s.answer))

	// The first chunk carries the columns; arrays work as objects do.
	s = stream(t, ex.Execute, `{"sql":"SELECT g AS id FROM generate_series(1, 5000) g","row_format":"array"}`, 4<<10, 0, nil)
	require.NoError(t, s.err)
	require.Contains(t, string(s.chunks[0]), `{"columns":[{"name":"id","type":"int4"}],"rows":[[1],[2],`)
	require.Len(t, s.rows(t), 5000)

	// max_rows is the caller's cap: rows past it are cut and said so.
	s = stream(t, ex.Execute, `{"sql":"SELECT g FROM generate_series(1, 5000) g","max_rows":3000}`, 4<<10, 0, nil)
	require.NoError(t, s.err)
	require.Len(t, s.rows(t), 3000)
	require.JSONEq(t, `{"row_count":3000,"rows_affected":5000,"command":"SELECT 5000","truncated":true}`, string(s.answer))

	// Without Emit, MaxRows (100 here) still caps and the bound still holds.
	out, err := ex.Execute(context.Background(), &messages.ExecuteRequest{SQL: "SELECT g FROM generate_series(1, 5000) g"}, pgjson.Output{MaxBytes: 4 << 10})
	require.NoError(t, err)
	require.Contains(t, string(out), `"truncated":true`)
	out, err = ex.Execute(context.Background(), &messages.ExecuteRequest{SQL: "SELECT g FROM generate_series(1, 5000) g", MaxRows: new(100000)}, pgjson.Output{MaxBytes: 4 << 10})
	require.NoError(t, err)
	var capped struct{ Rows []json.RawMessage }
	require.NoError(t, json.Unmarshal(out, &capped))
	require.Len(t, capped.Rows, 100, "max_rows is capped by MaxRows")
	_, err = ex.Execute(context.Background(), &messages.ExecuteRequest{SQL: "SELECT repeat('x', 100) FROM generate_series(1, 5000) g"}, pgjson.Output{MaxBytes: 4 << 10})
	require.Equal(t, messages.CodeTooLarge, pgerr.AsError(err).Code)
}

// TestStreamedQueryThatFits: a result that fits MaxBytes is the whole answer,
// exactly as without Emit, and Emit is never called; one, many, tx and
// insert never stream.
func TestStreamedQueryThatFits(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	pg.Exec(t, "CREATE TABLE items (id int PRIMARY KEY, v text)")
	_, ex := newStreamExecutor(t, pg, 100)
	body := `{"sql":"SELECT g AS id FROM generate_series(1, 50) g"}`
	s := stream(t, ex.Execute, body, 4<<10, 0, nil)
	require.NoError(t, s.err)
	require.Empty(t, s.chunks)
	var req messages.ExecuteRequest
	require.NoError(t, json.Unmarshal([]byte(body), &req))
	plain, err := ex.Execute(context.Background(), &req, pgjson.Output{MaxBytes: 4 << 10})
	require.NoError(t, err)
	require.Equal(t, string(plain), string(s.answer))

	for _, body := range []string{
		`{"op":"one","sql":"SELECT g FROM generate_series(1, 5000) g"}`,
		`{"op":"many","sql":"SELECT g FROM generate_series(1, 50) g WHERE g > :x","params_list":[{"x":1},{"x":2}]}`,
		`{"op":"tx","statements":[{"sql":"SELECT g FROM generate_series(1, 50) g"}]}`,
		`{"op":"insert","table":"items","data":{"id":1,"v":"x"}}`,
	} {
		s := stream(t, ex.Execute, body, 4<<10, 0, nil)
		require.NoError(t, s.err, body)
		require.Empty(t, s.chunks, body)
	}
	// A tx whose rows pass the bound is TOO_LARGE, as before.
	s = stream(t, ex.Execute, `{"op":"tx","statements":[{"sql":"SELECT g FROM generate_series(1, 5000) g"}]}`, 4<<10, 0, nil)
	require.Equal(t, messages.CodeTooLarge, pgerr.AsError(s.err).Code)
	require.Empty(t, s.chunks)

	// Rows that fit but whose answer's closing fields do not: one chunk
	// and the totals, never an answer over the bound.
	var whole, split, tooLarge int
	for size := 3950; size < 4100; size++ {
		body := fmt.Sprintf(`{"sql":"SELECT repeat('y', %d) AS v"}`, size)
		s := stream(t, ex.Execute, body, 4096, 0, nil)
		switch {
		case s.err != nil:
			require.Equal(t, messages.CodeTooLarge, pgerr.AsError(s.err).Code, body)
			require.Empty(t, s.chunks)
			tooLarge++
		case len(s.chunks) == 0:
			require.LessOrEqual(t, len(s.answer), 4096, body)
			whole++
		default:
			require.Len(t, s.rows(t), 1, body)
			require.JSONEq(t, `{"row_count":1,"rows_affected":1,"command":"SELECT 1","truncated":false}`, string(s.answer))
			split++
		}
	}
	require.Positive(t, whole)
	require.Positive(t, split)
	require.Positive(t, tooLarge)
}

// TestStreamEndsWithTheError: an error met after chunks left is the
// request's error, and no chunk follows it; a row too large for a chunk of its
// own is TOO_LARGE; the connection is clean afterwards.
func TestStreamEndsWithTheError(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	_, ex := newStreamExecutor(t, pg, 100)
	s := stream(t, ex.Execute, `{"sql":"SELECT g, 1 / (4000 - g) AS x FROM generate_series(1, 5000) g"}`, 4<<10, 0, nil)
	require.NotEmpty(t, s.chunks, "rows left before the error")
	require.Less(t, len(s.rows(t)), 4000)
	me := pgerr.AsError(s.err)
	require.Equal(t, "22012", me.SQLState, "division by zero: %v", s.err)

	s = stream(t, ex.Execute, `{"sql":"SELECT g, CASE WHEN g = 3000 THEN repeat('z', 9000) END AS big FROM generate_series(1, 5000) g"}`, 4<<10, 0, nil)
	require.NotEmpty(t, s.chunks)
	me = pgerr.AsError(s.err)
	require.Equal(t, messages.CodeTooLarge, me.Code)
	require.Contains(t, me.Message, "row 3000")

	s = stream(t, ex.Execute, `{"sql":"SELECT 1 AS one"}`, 4<<10, 0, nil)
	require.NoError(t, s.err)
}

// TestStreamStoppedByEmit: an error from Emit stops the statement and is the
// request's error; a write whose rows were streamed is committed only when
// the stream ended well, and the connection comes back clean.
func TestStreamStoppedByEmit(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	pg.Exec(t, "CREATE TABLE items (id int PRIMARY KEY, v text)")
	_, ex := newStreamExecutor(t, pg, 100)
	gone := errors.New("the caller went away")
	pid := func() int64 {
		out, err := ex.Execute(context.Background(), &messages.ExecuteRequest{Op: messages.OpOne, SQL: "SELECT pg_backend_pid() AS pid"}, pgjson.Output{})
		require.NoError(t, err)
		var a struct{ Row struct{ PID int64 } }
		require.NoError(t, json.Unmarshal(out, &a))
		return a.Row.PID
	}
	before := pid()
	s := stream(t, ex.Execute, `{"sql":"SELECT generate_series(1, 1000000) AS g"}`, 4<<10, 2, gone)
	require.ErrorIs(t, s.err, gone)
	require.Len(t, s.chunks, 2, "nothing is sent after Emit failed")
	require.Equal(t, before, pid(), "the connection is reset and kept")

	// A write returning rows: its rows stream, and it commits at the end.
	s = stream(t, ex.Execute, `{"sql":"INSERT INTO items SELECT g, repeat('v', 20) FROM generate_series(1, 3000) g RETURNING id"}`, 4<<10, 0, nil)
	require.NoError(t, s.err)
	require.Len(t, s.rows(t), 3000)
	require.JSONEq(t, `{"row_count":3000,"rows_affected":3000,"command":"INSERT 0 3000","truncated":false}`, string(s.answer))
	require.Equal(t, int64(3000), scalar[int64](t, pg, "SELECT count(*) FROM items"))

	// Stopped half way, it is rolled back.
	s = stream(t, ex.Execute, `{"sql":"INSERT INTO items SELECT g, 'w' FROM generate_series(3001, 9000) g RETURNING id"}`, 4<<10, 1, gone)
	require.ErrorIs(t, s.err, gone)
	require.Equal(t, int64(3000), scalar[int64](t, pg, "SELECT count(*) FROM items"))

	require.Equal(t, before, pid())
	require.Equal(t, int64(0), scalar[int64](t, pg, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state <> 'idle'", before))
}

// TestStreamInATransaction: Tx.Execute streams as Executor.Execute does, and
// the rows are the transaction's own.
func TestStreamInATransaction(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	pg.Exec(t, "CREATE TABLE items (id int PRIMARY KEY, v text)")
	_, ex := newStreamExecutor(t, pg, 100)
	ctx := context.Background()
	tx, err := ex.BeginTx(ctx, pgexec.TxOptions{})
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Execute(ctx, &messages.ExecuteRequest{SQL: "INSERT INTO items SELECT g, repeat('t', 30) FROM generate_series(1, 4000) g"}, pgjson.Output{})
	require.NoError(t, err)
	s := stream(t, tx.Execute, `{"sql":"SELECT id, v FROM items ORDER BY id"}`, 8<<10, 0, nil)
	require.NoError(t, s.err)
	require.Greater(t, len(s.chunks), 1)
	require.Len(t, s.rows(t), 4000)
	require.Equal(t, int64(0), scalar[int64](t, pg, "SELECT count(*) FROM items"), "not committed yet")
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, int64(4000), scalar[int64](t, pg, "SELECT count(*) FROM items"))
}
