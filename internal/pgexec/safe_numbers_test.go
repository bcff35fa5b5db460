package pgexec_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// safeSelect returns every edge case of safe_numbers as one row; safeRow is
// its answer with safe_numbers, byte for byte.
const safeSelect = `SELECT 9223372036854775807::int8 AS max8, (-9223372036854775807-1)::int8 AS min8,
 9007199254740992::int8 AS p53, 9007199254740991::int8 AS safe, (-9007199254740991)::int8 AS nsafe,
 (-9007199254740992)::int8 AS np53, 1.10::numeric AS n110, 1234567890123456789012345678901234567890::numeric AS n40,
 -0.000000000000000000001234567890123456789012345678901234567890::numeric AS tiny,
 'NaN'::numeric AS nan, 'Infinity'::numeric AS inf, '-Infinity'::numeric AS ninf, 0::numeric AS zero,
 ARRAY[1.10, NULL, 2]::numeric[] AS narr, ARRAY[[9223372036854775807, 1], [-9223372036854775808, 2]]::int8[] AS iarr,
 7::int4 AS i4, 32767::int2 AS i2, 0.1::float8 AS f8, 4294967295::oid AS o,
 '{"big": 9223372036854775807, "n": 1.10}'::jsonb AS jb, '{"big":9223372036854775807}'::json AS j,
 '9223372036854775807'::text AS t`

const safeRow = `{"max8":"9223372036854775807","min8":"-9223372036854775808",` +
	`"p53":"9007199254740992","safe":9007199254740991,"nsafe":-9007199254740991,` +
	`"np53":"-9007199254740992","n110":"1.10","n40":"1234567890123456789012345678901234567890",` +
	`"tiny":"-0.000000000000000000001234567890123456789012345678901234567890",` +
	`"nan":"NaN","inf":"Infinity","ninf":"-Infinity","zero":"0",` +
	`"narr":["1.10",null,"2"],"iarr":[["9223372036854775807",1],["-9223372036854775808",2]],` +
	`"i4":7,"i2":32767,"f8":0.1,"o":4294967295,` +
	`"jb":{"n": 1.10, "big": 9223372036854775807},"j":{"big":9223372036854775807},` +
	`"t":"9223372036854775807"}`

// The same row without safe_numbers: numbers, exact digits, as before.
const plainRow = `{"max8":9223372036854775807,"min8":-9223372036854775808,` +
	`"p53":9007199254740992,"safe":9007199254740991,"nsafe":-9007199254740991,` +
	`"np53":-9007199254740992,"n110":1.10,"n40":1234567890123456789012345678901234567890,` +
	`"tiny":-0.000000000000000000001234567890123456789012345678901234567890,` +
	`"nan":"NaN","inf":"Infinity","ninf":"-Infinity","zero":0,` +
	`"narr":[1.10,null,2],"iarr":[[9223372036854775807,1],[-9223372036854775808,2]],` +
	`"i4":7,"i2":32767,"f8":0.1,"o":4294967295,` +
	`"jb":{"n": 1.10, "big": 9223372036854775807},"j":{"big":9223372036854775807},` +
	`"t":"9223372036854775807"}`

// rowOf cuts the first row out of an answer, as sent.
func rowOf(t *testing.T, answer []byte, field string) string {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(answer, &m), string(answer))
	raw := m[field]
	if field == "rows" {
		var rows []json.RawMessage
		require.NoError(t, json.Unmarshal(raw, &rows))
		require.NotEmpty(t, rows)
		raw = rows[0]
	}
	return string(raw)
}

// safeSetup gives a test a schema, an executor over one connection and an
// answer bound.
func safeSetup(t *testing.T) (*testenv.Postgres, *pgexec.Executor, pgjson.Output) {
	t.Helper()
	pg := testenv.NewPostgres(t)
	_, ex := newStreamExecutor(t, pg, 100)
	return pg, ex, pgjson.Output{MaxBytes: 1 << 20}
}

func safeBody(op, extra string) string {
	sql, _ := json.Marshal(safeSelect)
	return fmt.Sprintf(`{"op":%q,"sql":%s%s}`, op, sql, extra)
}

func decodeReq(t *testing.T, body string) *messages.ExecuteRequest {
	t.Helper()
	var req messages.ExecuteRequest
	require.NoError(t, json.Unmarshal([]byte(body), &req), body)
	return &req
}

// TestSafeNumbers: with safe_numbers numeric values and int8 values past
// ±(2^53−1) are strings of the exact digits, in arrays too; every other value
// (int2, int4, oid, float8, text, and the numbers inside json and jsonb) is
// written as without it, byte for byte. Off by default; the executor's
// default (DB_SAFE_NUMBERS) applies when a request leaves it out, and a
// request's false wins over it.
func TestSafeNumbers(t *testing.T) {
	t.Parallel()
	pg, ex, out := safeSetup(t)
	ctx := context.Background()

	for _, c := range []struct{ name, op, extra, field, want string }{
		{"default off", "query", ``, "rows", plainRow},
		{"explicit false", "query", `,"safe_numbers":false`, "rows", plainRow},
		{"query", "query", `,"safe_numbers":true`, "rows", safeRow},
		{"one", "one", `,"safe_numbers":true`, "row", safeRow},
		{"read_only", "one", `,"safe_numbers":true,"read_only":true`, "row", safeRow},
	} {
		answer, err := ex.Execute(ctx, decodeReq(t, safeBody(c.op, c.extra)), out)
		require.NoError(t, err, c.name)
		require.Equal(t, c.want, rowOf(t, answer, c.field), c.name)
	}

	// Arrays of rows keep the same values.
	answer, err := ex.Execute(ctx, decodeReq(t, `{"sql":"SELECT 9223372036854775807::int8, 2.50::numeric, 1::int8","row_format":"array","safe_numbers":true}`), out)
	require.NoError(t, err)
	require.Equal(t, `["9223372036854775807","2.50",1]`, rowOf(t, answer, "rows"))

	// The executor's default, and a request's false over it.
	c, err := pgexec.Connect(ctx, pgexec.Config{DSN: pg.URL, MaxConns: 1})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	safeEx, err := pgexec.NewExecutor(c, pgexec.ExecutorConfig{SafeNumbers: true})
	require.NoError(t, err)
	answer, err = safeEx.Execute(ctx, decodeReq(t, safeBody("query", ``)), out)
	require.NoError(t, err)
	require.Equal(t, safeRow, rowOf(t, answer, "rows"))
	answer, err = safeEx.Execute(ctx, decodeReq(t, safeBody("query", `,"safe_numbers":false`)), out)
	require.NoError(t, err)
	require.Equal(t, plainRow, rowOf(t, answer, "rows"))

	// Each value reads back exactly with a float64 JSON parser (what
	// JavaScript does): the strings are the digits PostgreSQL holds.
	var row map[string]any
	require.NoError(t, json.Unmarshal([]byte(safeRow), &row))
	require.Equal(t, "9223372036854775807", row["max8"])
	require.Equal(t, "-9223372036854775808", row["min8"])
	require.Equal(t, 9007199254740991.0, row["safe"])
}

// TestSafeNumbersInWritesAndBatches: insert, many, op tx (every statement)
// and an interactive transaction answer safe numbers when asked.
func TestSafeNumbersInWritesAndBatches(t *testing.T) {
	t.Parallel()
	_, ex, out := safeSetup(t)
	ctx := context.Background()
	_, err := ex.Execute(ctx, decodeReq(t, `{"op":"script","sql":"CREATE TABLE acct (id int8 PRIMARY KEY, bal numeric(40,2))"}`), out)
	require.NoError(t, err)

	answer, err := ex.Execute(ctx, decodeReq(t, `{"op":"insert","table":"acct","data":{"id":"9223372036854775807","bal":"12345678901234567890123456789012345678.10"},"safe_numbers":true}`), out)
	require.NoError(t, err)
	require.Equal(t, `{"id":"9223372036854775807","bal":"12345678901234567890123456789012345678.10"}`, rowOf(t, answer, "row"))

	answer, err = ex.Execute(ctx, decodeReq(t, `{"op":"many","sql":"SELECT id, bal FROM acct WHERE id = $1","params_list":[["9223372036854775807"]],"safe_numbers":true}`), out)
	require.NoError(t, err)
	require.Contains(t, string(answer), `"rows":[{"id":"9223372036854775807","bal":"12345678901234567890123456789012345678.10"}]`)

	answer, err = ex.Execute(ctx, decodeReq(t, `{"op":"tx","safe_numbers":true,"statements":[
		{"sql":"UPDATE acct SET bal = bal + 0.01 RETURNING bal","op":"one"},
		{"sql":"SELECT id, 2::int8 AS small FROM acct"}]}`), out)
	require.NoError(t, err)
	require.Contains(t, string(answer), `"row":{"bal":"12345678901234567890123456789012345678.11"}`)
	require.Contains(t, string(answer), `"rows":[{"id":"9223372036854775807","small":2}]`)

	tx, err := ex.BeginTx(ctx, pgexec.TxOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	answer, err = tx.Execute(ctx, decodeReq(t, `{"op":"one","sql":"SELECT id, bal FROM acct","safe_numbers":true}`), out)
	require.NoError(t, err)
	require.Equal(t, `{"id":"9223372036854775807","bal":"12345678901234567890123456789012345678.11"}`, rowOf(t, answer, "row"))
	answer, err = tx.Execute(ctx, decodeReq(t, `{"op":"one","sql":"SELECT id, bal FROM acct"}`), out)
	require.NoError(t, err)
	require.Equal(t, `{"id":9223372036854775807,"bal":12345678901234567890123456789012345678.11}`, rowOf(t, answer, "row"))
	require.NoError(t, tx.Commit(ctx))
}

// TestSafeNumbersStreamed: every chunk of a stream carries safe numbers.
func TestSafeNumbersStreamed(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	_, ex := newStreamExecutor(t, pg, 100)
	const n = 3000
	s := stream(t, ex.Execute, fmt.Sprintf(`{"sql":"SELECT g::int8 * 3074457345618258 AS big, (g || '.10')::numeric AS n FROM generate_series(1, %d) g","safe_numbers":true}`, n), 8<<10, 0, nil)
	require.NoError(t, s.err)
	require.Greater(t, len(s.chunks), 3)
	rows := s.rows(t)
	require.Len(t, rows, n)
	for i, r := range rows {
		g := int64(i + 1)
		big := g * 3074457345618258
		want := fmt.Sprintf(`{"big":%d,"n":"%d.10"}`, big, g)
		if big > 1<<53-1 {
			want = fmt.Sprintf(`{"big":"%d","n":"%d.10"}`, big, g)
		}
		require.Equal(t, want, string(r))
	}
	require.JSONEq(t, fmt.Sprintf(`{"row_count":%d,"rows_affected":%d,"command":"SELECT %d","truncated":false}`, n, n, n), string(s.answer))
}
