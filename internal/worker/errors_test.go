package worker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
)

// TestErrorTable produces each row of PROTOCOL.md's error table for real and
// checks code, status, header and SQLSTATE.
func TestErrorTable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	usersTable(b)
	b.pg.Exec(t, `CREATE TABLE orders (id int PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id));
		INSERT INTO users (email) VALUES ('a@x')`)
	role := b.pg.Schema + "_nobody"
	b.pg.Exec(t, "CREATE ROLE "+role+" NOLOGIN")
	t.Cleanup(func() { b.pg.Exec(t, "DROP OWNED BY "+role+"; DROP ROLE "+role) })
	b.pg.Exec(t, "GRANT USAGE ON SCHEMA "+b.pg.Schema+" TO "+role)

	cases := []struct {
		name     string
		body     string
		code     string
		status   int
		sqlstate string
	}{
		{"malformed JSON", `{"sql":`, "BAD_REQUEST", 400, ""},
		{"unknown field", `{"sql":"select 1","bogus":1}`, "BAD_REQUEST", 400, ""},
		{"unknown op", `{"op":"drop","sql":"select 1"}`, "BAD_REQUEST", 400, ""},
		{"missing sql", `{"op":"query"}`, "BAD_REQUEST", 400, ""},
		{"wrong field type", `{"sql":1}`, "BAD_REQUEST", 400, ""},
		{"wrong param type", `{"sql":"SELECT :n::int4","params":{"n":"abc"}}`, "BAD_REQUEST", 400, ""},
		{"param out of range", `{"sql":"SELECT :n::int2","params":{"n":70000}}`, "BAD_REQUEST", 400, ""},
		{"missing param", `{"sql":"SELECT :a, :b","params":{"a":1}}`, "BAD_REQUEST", 400, ""},
		{"unused param", `{"sql":"SELECT :a","params":{"a":1,"b":2}}`, "BAD_REQUEST", 400, ""},
		{"two statements in query", `{"sql":"SELECT 1; SELECT 2"}`, "BAD_REQUEST", 400, ""},
		{"trailing data", `{"sql":"select 1"} {}`, "BAD_REQUEST", 400, ""},
		{"syntax error", `{"sql":"SELEC 1"}`, "SQL_ERROR", 400, "42601"},
		{"division by zero", `{"sql":"SELECT 1/0"}`, "SQL_ERROR", 400, "22012"},
		{"raise", `{"sql":"DO $$BEGIN RAISE EXCEPTION 'boom'; END$$"}`, "SQL_ERROR", 400, "P0001"},
		{"unique violation", `{"sql":"INSERT INTO users (email) VALUES ('a@x')"}`, "SQL_ERROR", 409, "23505"},
		{"foreign key violation", `{"sql":"INSERT INTO orders VALUES (1, 999)"}`, "SQL_ERROR", 409, "23503"},
		{"insufficient privilege", `{"op":"tx","statements":[{"sql":"SET LOCAL ROLE ` + role + `"},{"sql":"SELECT * FROM users"}]}`, "FORBIDDEN", 403, "42501"},
		{"read-only transaction", `{"sql":"INSERT INTO users (email) VALUES ('ro@x')","read_only":true}`, "FORBIDDEN", 403, "25006"},
		{"undefined table", `{"sql":"SELECT * FROM nope"}`, "NOT_FOUND", 404, "42P01"},
		{"undefined function", `{"sql":"SELECT nope(1)"}`, "NOT_FOUND", 404, "42883"},
		{"unknown table for insert", `{"op":"insert","table":"nope","data":{"a":1}}`, "NOT_FOUND", 404, ""},
		{"statement timeout", `{"sql":"SELECT pg_sleep(5)","timeout_ms":100}`, "TIMEOUT", 408, ""},
		{"serialization failure", `{"sql":"DO $$BEGIN RAISE EXCEPTION 'ser' USING ERRCODE = '40001'; END$$"}`, "CONFLICT", 409, "40001"},
		{"deadlock", `{"sql":"DO $$BEGIN RAISE EXCEPTION 'dl' USING ERRCODE = '40P01'; END$$"}`, "CONFLICT", 409, "40P01"},
		{"too many connections", `{"sql":"DO $$BEGIN RAISE EXCEPTION 'full' USING ERRCODE = '53300'; END$$"}`, "UNAVAILABLE", 503, "53300"},
		{"connection failure", `{"sql":"DO $$BEGIN RAISE EXCEPTION 'gone' USING ERRCODE = '08006'; END$$"}`, "UNAVAILABLE", 503, "08006"},
		{"admin shutdown", `{"sql":"DO $$BEGIN RAISE EXCEPTION 'bye' USING ERRCODE = '57P01'; END$$"}`, "UNAVAILABLE", 503, "57P01"},
		{"internal", `{"sql":"DO $$BEGIN RAISE EXCEPTION 'xx' USING ERRCODE = 'XX000'; END$$"}`, "INTERNAL", 500, "XX000"},
		{"request too large", `{"sql":"SELECT 1","params":["` + strings.Repeat("x", 2<<20) + `"]}`, "TOO_LARGE", 413, ""},
		{"answer too large", `{"sql":"SELECT repeat('x', 9000000)"}`, "TOO_LARGE", 413, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := b.exec(tc.body)
			require.Equal(t, fmt.Sprint(tc.status), a.status, "body: %s", a.body)
			e := a.errorOf(t)
			require.Equal(t, tc.code, e["code"], "body: %s", a.body)
			require.EqualValues(t, fmt.Sprint(tc.status), fmt.Sprint(e["status"]))
			require.NotEmpty(t, e["message"])
			if tc.sqlstate != "" {
				require.Equal(t, tc.sqlstate, e["sqlstate"], "body: %s", a.body)
			}
		})
	}
	// The unique violation keeps the server's detail.
	e := b.exec(`{"sql":"INSERT INTO users (email) VALUES ('a@x')"}`).errorOf(t)
	require.Equal(t, "Key (email)=(a@x) already exists.", e["detail"])
	// And the worker still serves.
	b.ok(`{"sql":"SELECT 1"}`)
}

func TestPoolExhaustedIsUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.maxConns = 1; o.acquire = 200 * time.Millisecond })
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := b.send(subjects.DBExecute, []byte(`{"sql":"SELECT pg_sleep(1.5)"}`))
		assert.NoError(t, err)
	}()
	require.Eventually(t, func() bool { return b.cl.Pool().Stat().AcquiredConns() == 1 }, 5*time.Second, 10*time.Millisecond)
	e := b.exec(`{"sql":"SELECT 1"}`).errorOf(t)
	require.Equal(t, "UNAVAILABLE", e["code"])
	wg.Wait()
	b.ok(`{"sql":"SELECT 1"}`)
}

// TestBadInputKeepsServing sends hostile and oversized requests and checks
// each gets a clear answer while the worker keeps answering.
func TestBadInputKeepsServing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bodies := []string{
		``, `null`, `[]`, `"x"`, `{`, `{"sql":"select 1"`, "\xff\xfe{}",
		`{"sql":"select 1","params":{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}`,
		`{"sql":"select :a::int8","params":{"a":123456789012345678901234567890}}`,
		`{"sql":"select :a::float8","params":{"a":1e400}}`,
		`{"sql":"select :a","params":{"a":"nul\u0000byte"}}`,
		`{"sql":"select $1","params":[` + strings.Repeat("1,", 9999) + `1]}`,
		`{"sql":"select 1","timeout_ms":9223372036854775807}`,
		`{"sql":"select 1","timeout_ms":-5}`,
		`{"sql":"select 1","max_rows":-1}`,
		`{"sql":"select 1","row_format":"csv"}`,
	}
	for _, body := range bodies {
		a := b.exec(body)
		if a.status != "" {
			e := a.errorOf(t)
			require.NotEmpty(t, e["message"], body)
			require.Contains(t, []string{"BAD_REQUEST", "SQL_ERROR", "TOO_LARGE"}, e["code"], "%.80s: %s", body, a.body)
		}
	}
	// A SELECT of a million rows is cut at max_rows, not sent whole.
	a := b.ok(`{"sql":"SELECT g FROM generate_series(1, 1000000) g","row_format":"array"}`)
	require.Equal(t, true, a["truncated"])
	require.Len(t, a["rows"], 10000)
	b.ok(`{"sql":"SELECT 1"}`)
}

func TestPanicBecomesInternal(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) {
		o.extra = []endpoint{{name: "boom", subject: "test.boom", handle: func(context.Context, *request) ([]byte, error) {
			panic("kaboom")
		}}}
	})
	a := b.request("test.boom", []byte(`{}`))
	require.Equal(t, "500", a.status)
	e := a.errorOf(t)
	require.Equal(t, "INTERNAL", e["code"])
	require.NotContains(t, string(a.body), "kaboom", "panic values stay in the log")
	b.ok(`{"sql":"SELECT 1"}`)
}

func TestDisabledMode(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.mode = "disabled" })
	e := b.exec(`{"sql":"SELECT 1"}`).errorOf(t)
	require.Equal(t, "FORBIDDEN", e["code"])
	a := b.request(subjects.DBHealth, nil)
	require.Empty(t, a.status)
}

// TestTooLargeWriteRollsBack: a write whose RETURNING answer does not fit is
// rolled back, not left applied behind an error.
func TestTooLargeWriteRollsBack(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.maxPayload = 64 << 10 })
	b.pg.Exec(t, "CREATE TABLE big (id serial, pad text)")
	e := b.exec(`{"sql":"INSERT INTO big (pad) SELECT repeat('x', 1000) FROM generate_series(1, 200) RETURNING *"}`).errorOf(t)
	require.Equal(t, "TOO_LARGE", e["code"])
	e = b.exec(`{"op":"many","sql":"INSERT INTO big (pad) VALUES (repeat('y', 40000)) RETURNING pad","params_list":[null,null]}`).errorOf(t)
	require.Equal(t, "TOO_LARGE", e["code"])
	a := b.ok(`{"op":"one","sql":"SELECT count(*) AS n FROM big"}`)
	require.JSONEq(t, `{"n":0}`, mustJSON(t, a["row"]))
	a = b.ok(`{"sql":"INSERT INTO big (pad) VALUES ('ok') RETURNING id"}`)
	require.JSONEq(t, `[{"id":203}]`, mustJSON(t, a["rows"]), "sequences are not transactional; the insert itself went through")
}
