package worker

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
)

// TestHostileRequests sends requests built to break things through every
// field that reaches SQL or a decoder. Each gets a clear error (or, where the
// input is legal, a correct answer); the worker keeps serving; the database
// is unchanged.
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.maintenance = true })
	b.pg.Exec(t, `CREATE TABLE sentinel (id int PRIMARY KEY, v text); INSERT INTO sentinel SELECT g, md5(g::text) FROM generate_series(1, 50) g;
		CREATE TABLE users (id serial PRIMARY KEY, email text)`)
	checksum := func() string {
		a := b.ok(`{"op":"one","sql":"SELECT md5(string_agg(id || v, ',' ORDER BY id)) AS h, (SELECT count(*) FROM users) AS u, (SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()) AS t FROM sentinel"}`)
		return fmt.Sprint(a["row"])
	}
	before := checksum()

	nested := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)
	bigString := strings.Repeat("x", 1<<20)
	var manyParams strings.Builder
	manyParams.WriteString(`{"sql":"SELECT $1","params":[`)
	for i := 0; i < 10000; i++ {
		if i > 0 {
			manyParams.WriteByte(',')
		}
		manyParams.WriteString("1")
	}
	manyParams.WriteString("]}")

	cases := []struct {
		name, subject, body string
		codes               []string // acceptable error codes; empty: must succeed
	}{
		{"table name injection (insert)", subjects.DBExecute, `{"op":"insert","table":"users; DROP TABLE sentinel","data":{"email":"x"}}`, []string{"NOT_FOUND", "BAD_REQUEST"}},
		{"quoted table name injection", subjects.DBExecute, `{"op":"insert","table":"users\" ; DROP TABLE sentinel; --","data":{"email":"x"}}`, []string{"NOT_FOUND", "BAD_REQUEST"}},
		{"column name injection", subjects.DBExecute, `{"op":"insert","table":"users","data":{"email\") VALUES ('x'); DROP TABLE sentinel; --":"x"}}`, []string{"BAD_REQUEST"}},
		{"returning injection", subjects.DBExecute, `{"op":"insert","table":"users","data":{"email":"x"},"returning":["id; DROP TABLE sentinel"]}`, []string{"BAD_REQUEST"}},
		{"where with a second statement", subjects.DBExecute, `{"op":"update","table":"users","data":{"email":"y"},"where":"true; DROP TABLE sentinel"}`, []string{"BAD_REQUEST"}},
		{"where with a comment trick", subjects.DBExecute, `{"op":"update","table":"users","data":{"email":"y"},"where":"id = 0 --; DROP TABLE sentinel"}`, nil},
		{"value with SQL in it", subjects.DBExecute, `{"sql":"SELECT :v::text AS v","params":{"v":"'; DROP TABLE sentinel; --"}}`, nil},
		{"vector collection injection", subjects.DBVector, `{"op":"create_collection","collection":"x; DROP TABLE sentinel"}`, []string{"BAD_REQUEST"}},
		{"vector filter injection", subjects.DBVector, `{"op":"search","collection":"nope","vector":[1,2,3],"filter":{"') OR 1=1; DROP TABLE sentinel; --":1}}`, []string{"NOT_FOUND"}},
		{"graph id injection", subjects.DBGraph, `{"op":"get_neighbors","node_id":"x' OR '1'='1"}`, []string{"NOT_FOUND"}},
		{"stats table injection", subjects.DBStats, `{"table":"sentinel; DROP TABLE sentinel"}`, []string{"NOT_FOUND", "BAD_REQUEST"}},
		{"invalid UTF-8", subjects.DBExecute, "{\"sql\":\"SELECT '\xff\xfe'\"}", []string{"BAD_REQUEST", "SQL_ERROR"}},
		{"NUL byte in SQL", subjects.DBExecute, `{"sql":"SELECT 1\u0000; DROP TABLE sentinel"}`, []string{"BAD_REQUEST", "SQL_ERROR"}},
		{"NUL byte in a parameter", subjects.DBExecute, `{"sql":"SELECT :v::text","params":{"v":"a\u0000b"}}`, []string{"BAD_REQUEST"}},
		{"NUL byte in a table name", subjects.DBExecute, `{"op":"insert","table":"use\u0000rs","data":{"email":"x"}}`, []string{"BAD_REQUEST", "NOT_FOUND"}},
		{"100-level nested JSON param", subjects.DBExecute, `{"sql":"SELECT :v::jsonb #> '{a}' IS NOT NULL AS ok","params":{"v":` + nested + `}}`, nil},
		{"100-level nested JSON in kv", subjects.StateKV, `{"op":"set","key":"deep","value":` + nested + `}`, nil},
		{"number past int64", subjects.DBExecute, `{"sql":"SELECT :v::int8","params":{"v":9223372036854775808}}`, []string{"BAD_REQUEST"}},
		{"number past float64", subjects.DBExecute, `{"sql":"SELECT :v::float8","params":{"v":1e999}}`, []string{"BAD_REQUEST", "SQL_ERROR"}},
		{"number past float64 in a vector", subjects.CacheEmbedding, `{"op":"set","hash":"h","vector":[1e999]}`, []string{"BAD_REQUEST"}},
		{"1 MB string", subjects.DBExecute, `{"sql":"SELECT length(:v) AS n","params":{"v":"` + bigString + `"}}`, []string{"TOO_LARGE"}},
		{"10000 params", subjects.DBExecute, manyParams.String(), []string{"BAD_REQUEST"}},
		{"unknown field", subjects.DBExecute, `{"sql":"SELECT 1","drop":"sentinel"}`, []string{"BAD_REQUEST"}},
		{"unknown field (lock)", subjects.StateLock, `{"op":"acquire","key":"k","forever":true}`, []string{"BAD_REQUEST"}},
		{"wrong JSON type", subjects.StateRateLimit, `{"key":["k"],"limit":1,"window_ms":1}`, []string{"BAD_REQUEST"}},
		{"huge limit", subjects.StateRateLimit, `{"key":"k","limit":99999999999999999999,"window_ms":1}`, []string{"BAD_REQUEST"}},
		{"key of 1 MB", subjects.StateKV, `{"op":"get","key":"` + strings.Repeat("k", 1<<19) + `"}`, []string{"BAD_REQUEST"}},
	}
	for _, tc := range cases {
		a := b.request(tc.subject, []byte(tc.body))
		if len(tc.codes) == 0 {
			require.Empty(t, a.status, "%s: %.300s", tc.name, a.body)
			continue
		}
		require.NotEmpty(t, a.status, "%s: expected an error, got %.300s", tc.name, a.body)
		e := a.errorOf(t)
		require.Contains(t, tc.codes, e["code"], "%s: %.300s", tc.name, a.body)
		require.NotEmpty(t, e["message"], tc.name)
		require.Less(t, len(a.body), 2048, "%s: errors stay short", tc.name)
	}
	require.Equal(t, before, checksum(), "the database is unchanged")
	b.ok(`{"sql":"SELECT 1"}`)
}
