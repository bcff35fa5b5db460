package worker

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func usersTable(b *bundle) {
	b.pg.Exec(b.t, `CREATE TABLE users (
		id bigserial PRIMARY KEY,
		email text NOT NULL UNIQUE,
		active bool NOT NULL DEFAULT true,
		score numeric(6,2),
		meta jsonb,
		"Mixed Case" text)`)
}

func TestOps(t *testing.T) {
	t.Parallel()
	b := setup(t)
	usersTable(b)

	t.Run("insert returns the row", func(t *testing.T) {
		a := b.ok(`{"op":"insert","table":"users","data":{"email":"a@x","score":1.5,"meta":{"k":[1]},"Mixed Case":"M"}}`)
		require.JSONEq(t, `{"id":1,"email":"a@x","active":true,"score":1.50,"meta":{"k":[1]},"Mixed Case":"M"}`, mustJSON(t, a["row"]))
		require.EqualValues(t, "1", fmt.Sprint(a["rows_affected"]))
		a = b.ok(`{"op":"insert","table":"` + b.pg.Schema + `.users","data":{"email":"b@x","active":false},"returning":["id"]}`)
		require.JSONEq(t, `{"id":2}`, mustJSON(t, a["row"]))
	})
	t.Run("query with named params used twice", func(t *testing.T) {
		a := b.ok(`{"sql":"SELECT email FROM users WHERE active = :active OR (:active AND false) ORDER BY id","params":{"active":true}}`)
		require.JSONEq(t, `[{"email":"a@x"}]`, mustJSON(t, a["rows"]))
		require.Equal(t, "SELECT 1", a["command"])
		require.Equal(t, false, a["truncated"])
		require.JSONEq(t, `[{"name":"email","type":"text"}]`, mustJSON(t, a["columns"]))
	})
	t.Run("positional and question params", func(t *testing.T) {
		a := b.ok(`{"sql":"SELECT $2::int + $1::int AS s","params":[1,2]}`)
		require.JSONEq(t, `[{"s":3}]`, mustJSON(t, a["rows"]))
		a = b.ok(`{"sql":"SELECT ?::text || '?' || ?::text AS s -- ? in a comment","params":["a","b"]}`)
		require.JSONEq(t, `[{"s":"a?b"}]`, mustJSON(t, a["rows"]))
	})
	t.Run("one", func(t *testing.T) {
		a := b.ok(`{"op":"one","sql":"SELECT id, email FROM users WHERE email = :e","params":{"e":"b@x"}}`)
		require.JSONEq(t, `{"id":2,"email":"b@x"}`, mustJSON(t, a["row"]))
		a = b.ok(`{"op":"one","sql":"SELECT id FROM users WHERE email = :e","params":{"e":"nobody"}}`)
		require.Contains(t, a, "row")
		require.Nil(t, a["row"])
	})
	t.Run("row_format array and max_rows", func(t *testing.T) {
		a := b.ok(`{"sql":"SELECT g, g * 2 AS d FROM generate_series(1, 5) g","row_format":"array","max_rows":3}`)
		require.JSONEq(t, `[[1,2],[2,4],[3,6]]`, mustJSON(t, a["rows"]))
		require.Equal(t, true, a["truncated"])
	})
	t.Run("many is one transaction", func(t *testing.T) {
		a := b.ok(`{"op":"many","sql":"INSERT INTO users (email, score) VALUES (:email, :score)","params_list":[{"email":"c@x","score":1},{"email":"d@x","score":null}]}`)
		require.EqualValues(t, "2", fmt.Sprint(a["rows_affected"]))
		require.Len(t, a["results"], 2)
		e := b.exec(`{"op":"many","sql":"INSERT INTO users (email) VALUES (:email)","params_list":[{"email":"e@x"},{"email":"a@x"},{"email":"f@x"}]}`).errorOf(t)
		require.Equal(t, "23505", e["sqlstate"])
		require.EqualValues(t, "1", fmt.Sprint(e["failed_index"]))
		a = b.ok(`{"op":"one","sql":"SELECT count(*) AS n FROM users WHERE email IN ('e@x','f@x')"}`)
		require.JSONEq(t, `{"n":0}`, mustJSON(t, a["row"]), "nothing of a failed many may stay")
	})
	t.Run("script", func(t *testing.T) {
		a := b.ok(`{"op":"script","sql":"CREATE TABLE s1 (x int); INSERT INTO s1 VALUES (1), (2); UPDATE s1 SET x = x + 1"}`)
		require.JSONEq(t, `["CREATE TABLE","INSERT 0 2","UPDATE 2"]`, mustJSON(t, a["commands"]))
		e := b.exec(`{"op":"script","sql":"INSERT INTO s1 VALUES (10); SELECT 1/0"}`).errorOf(t)
		require.Equal(t, "22012", e["sqlstate"])
		a = b.ok(`{"op":"one","sql":"SELECT count(*) AS n FROM s1 WHERE x = 10"}`)
		require.JSONEq(t, `{"n":0}`, mustJSON(t, a["row"]), "a failed script is rolled back")
	})
	t.Run("tx", func(t *testing.T) {
		a := b.ok(`{"op":"tx","statements":[
			{"sql":"INSERT INTO users (email) VALUES (:e) RETURNING id","params":{"e":"g@x"},"op":"one"},
			{"sql":"UPDATE users SET score = $1 WHERE email = $2","params":[9.99,"g@x"]},
			{"sql":"SELECT score FROM users WHERE email = 'g@x'"}]}`)
		res := a["results"].([]any)
		require.Len(t, res, 3)
		require.JSONEq(t, `[{"score":9.99}]`, mustJSON(t, res[2].(map[string]any)["rows"]))
		e := b.exec(`{"op":"tx","statements":[
			{"sql":"INSERT INTO users (email) VALUES ('h@x')"},
			{"sql":"INSERT INTO nope VALUES (1)"}]}`).errorOf(t)
		require.Equal(t, "NOT_FOUND", e["code"])
		require.EqualValues(t, "1", fmt.Sprint(e["failed_index"]))
		a = b.ok(`{"op":"one","sql":"SELECT count(*) AS n FROM users WHERE email = 'h@x'"}`)
		require.JSONEq(t, `{"n":0}`, mustJSON(t, a["row"]))
	})
	t.Run("update", func(t *testing.T) {
		a := b.ok(`{"op":"update","table":"users","data":{"score":5,"active":false},"where":"email = :e OR email = :e2","where_params":{"e":"a@x","e2":"c@x"}}`)
		require.EqualValues(t, "2", fmt.Sprint(a["rows_affected"]))
		require.Equal(t, "UPDATE 2", a["command"])
		e := b.exec(`{"op":"update","table":"users","data":{"score":1}}`).errorOf(t)
		require.Equal(t, "BAD_REQUEST", e["code"])
		a = b.ok(`{"op":"update","table":"users","data":{"score":1},"all_rows":true}`)
		require.EqualValues(t, "5", fmt.Sprint(a["rows_affected"]))
	})
	t.Run("identifiers are checked, never pasted", func(t *testing.T) {
		e := b.exec(`{"op":"insert","table":"users; DROP TABLE users","data":{"email":"x"}}`).errorOf(t)
		require.Equal(t, "NOT_FOUND", e["code"])
		e = b.exec(`{"op":"insert","table":"users","data":{"email\"); DROP TABLE users; --":"x"}}`).errorOf(t)
		require.Equal(t, "BAD_REQUEST", e["code"])
		e = b.exec(`{"op":"update","table":"users","data":{"score":1},"where":"true; DROP TABLE users"}`).errorOf(t)
		require.Equal(t, "BAD_REQUEST", e["code"])
		a := b.ok(`{"op":"one","sql":"SELECT count(*) > 0 AS ok FROM users"}`)
		require.JSONEq(t, `{"ok":true}`, mustJSON(t, a["row"]))
	})
}

// TestSessionStateDoesNotLeak: a SET in one request must not reach the next
// request on the same pooled connection.
func TestSessionStateDoesNotLeak(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.maxConns = 1 })
	b.ok(`{"sql":"SET search_path = pg_catalog"}`)
	b.pg.Exec(t, "CREATE TABLE visible (x int)")
	b.ok(`{"sql":"SELECT * FROM visible"}`)
	a := b.ok(`{"op":"one","sql":"SELECT current_setting('statement_timeout') AS st"}`)
	require.NotEqual(t, "0", a["row"].(map[string]any)["st"])
}

func TestReadOnlyMode(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.mode = "read_only" })
	b.pg.Exec(t, "CREATE TABLE ro (x int)")
	a := b.ok(`{"sql":"SELECT count(*) AS n FROM ro"}`)
	require.JSONEq(t, `[{"n":0}]`, mustJSON(t, a["rows"]))
	for _, body := range []string{
		`{"sql":"INSERT INTO ro VALUES (1)"}`,
		`{"op":"script","sql":"COMMIT; INSERT INTO ro VALUES (1)"}`,
		`{"op":"tx","statements":[{"sql":"SET TRANSACTION READ WRITE"},{"sql":"INSERT INTO ro VALUES (1)"}]}`,
		`{"op":"insert","table":"ro","data":{"x":1}}`,
		`{"op":"many","sql":"INSERT INTO ro VALUES (:x)","params_list":[{"x":1}]}`,
	} {
		// PostgreSQL refuses the writes (FORBIDDEN, from SQLSTATE 25006); the
		// worker refuses script, insert and update, and transaction control.
		e := b.exec(body).errorOf(t)
		require.Contains(t, []any{"FORBIDDEN", "BAD_REQUEST", "SQL_ERROR"}, e["code"], body)
	}
	// A setting is the session's, and the session is reset after each request.
	b.ok(`{"sql":"SET default_transaction_read_only = off"}`)
	require.NotEmpty(t, b.exec(`{"sql":"INSERT INTO ro VALUES (1)"}`).errorOf(t))
	a = b.ok(`{"sql":"SELECT count(*) AS n FROM ro"}`)
	require.JSONEq(t, `[{"n":0}]`, mustJSON(t, a["rows"]), "nothing was written")
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	out, err := json.Marshal(v)
	require.NoError(t, err)
	return string(out)
}
