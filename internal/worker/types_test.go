package worker

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTypesRoundTrip binds each type of PROTOCOL.md's result table from JSON,
// stores it, selects it back over NATS and expects the exact JSON.
func TestTypesRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.pg.Exec(t, `CREATE TYPE mood AS ENUM ('sad', 'happy');
		CREATE TYPE pair AS (a int, b text)`)

	cases := []struct {
		typ string
		in  string // JSON bound as :v
		out string // JSON expected back
	}{
		{"int2", `-32768`, `-32768`},
		{"int4", `2147483647`, `2147483647`},
		{"int8", `9223372036854775807`, `9223372036854775807`},
		{"int8", `"-9223372036854775808"`, `-9223372036854775808`},
		{"oid", `4294967295`, `4294967295`},
		{"numeric", `"12345678901234567890.000000000123"`, `12345678901234567890.000000000123`},
		{"numeric(10,2)", `1.5`, `1.50`},
		{"numeric", `-0.00042`, `-0.00042`},
		{"numeric", `100000000`, `100000000`},
		{"numeric", `"NaN"`, `"NaN"`},
		{"numeric", `"Infinity"`, `"Infinity"`},
		{"float4", `1.5`, `1.5`},
		{"float8", `0.1`, `0.1`},
		{"float8", `1e300`, `1e+300`},
		{"float8", `"-Infinity"`, `"-Infinity"`},
		{"float8", `"NaN"`, `"NaN"`},
		{"bool", `true`, `true`},
		{"bool", `false`, `false`},
		{"text", `"héllo \"quoted\"\n\ttab \u2028 ☃"`, `"héllo \"quoted\"\n\ttab \u2028 ☃"`},
		{"varchar(10)", `"abc"`, `"abc"`},
		{"char(4)", `"ab"`, `"ab  "`},
		{"name", `"pg_class"`, `"pg_class"`},
		{"mood", `"happy"`, `"happy"`},
		{"uuid", `"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"`, `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`},
		{"json", `{"b":1,"a":[1,2]}`, `{"b":1,"a":[1,2]}`},
		{"jsonb", `{"b":1,"a":[1,2.50]}`, `{"a": [1, 2.50], "b": 1}`},
		{"jsonb", `"just a string"`, `"just a string"`},
		{"bytea", `"AAEC/w=="`, `"AAEC/w=="`},
		{"date", `"2024-02-29"`, `"2024-02-29"`},
		{"date", `"infinity"`, `"infinity"`},
		{"date", `"1999-12-31"`, `"1999-12-31"`},
		{"timestamp", `"2024-02-29 12:34:56.123456"`, `"2024-02-29T12:34:56.123456"`},
		{"timestamp", `"1969-07-20T20:17:40"`, `"1969-07-20T20:17:40"`},
		{"timestamptz", `"2024-02-29T12:34:56.5+02:00"`, `"2024-02-29T10:34:56.5Z"`},
		{"timestamptz", `"-infinity"`, `"-infinity"`},
		{"time", `"12:34:56.789"`, `"12:34:56.789"`},
		{"timetz", `"12:34:56+02"`, `"12:34:56+02"`},
		{"interval", `"1 day 2 hours"`, `"1 day 02:00:00"`},
		{"inet", `"192.168.0.1/24"`, `"192.168.0.1/24"`},
		{"cidr", `"10.0.0.0/8"`, `"10.0.0.0/8"`},
		{"macaddr", `"08:00:2b:01:02:03"`, `"08:00:2b:01:02:03"`},
		{"int4range", `"[1,5)"`, `"[1,5)"`},
		{"pair", `"(1,x y)"`, `"(1,\"x y\")"`},
		{"int4[]", `[[1,2],[3,null]]`, `[[1,2],[3,null]]`},
		{"int8[]", `[]`, `[]`},
		{"text[]", `["a","b c",null,"{\"}",""]`, `["a","b c",null,"{\"}",""]`},
		{"numeric[]", `[1.10,"NaN"]`, `[1.10,"NaN"]`},
		{"uuid[]", `["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]`, `["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]`},
		{"bytea[]", `["AQI=",null]`, `["AQI=",null]`},
		{"jsonb[]", `[{"a":1},[2]]`, `[{"a": 1},[2]]`},
		{"timestamptz[]", `["2024-01-01T00:00:00Z"]`, `["2024-01-01T00:00:00Z"]`},
		{"mood[]", `["sad","happy"]`, `["sad","happy"]`},
		{"interval[]", `["1 day",null]`, `["1 day",null]`},
		{"box[]", `["((1,1),(0,0))","((3,3),(2,2))"]`, `["(1,1),(0,0)","(3,3),(2,2)"]`},
		{"bool[]", `[true,false]`, `[true,false]`},
		{"vector(3)", `[1,2.5,-3]`, `[1,2.5,-3]`},
		{"halfvec(2)", `[1.5,-2]`, `[1.5,-2]`},
		{"sparsevec(5)", `{"dim":5,"indices":[0,3],"values":[1.5,2]}`, `{"dim":5,"indices":[0,3],"values":[1.5,2]}`},
		{"text", `null`, `null`},
		{"int4", `null`, `null`},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%02d_%s", i, tc.typ), func(t *testing.T) {
			table := fmt.Sprintf("rt_%d", i)
			b.ok(fmt.Sprintf(`{"op":"script","sql":"CREATE TABLE %s (v %s)"}`, table, tc.typ))
			ins := b.ok(fmt.Sprintf(`{"sql":"INSERT INTO %s (v) VALUES (:v)","params":{"v":%s}}`, table, tc.in))
			require.EqualValues(t, "1", fmt.Sprint(ins["rows_affected"]))
			a := b.exec(fmt.Sprintf(`{"sql":"SELECT v FROM %s","row_format":"array"}`, table))
			require.Empty(t, a.status, "%s", a.body)
			var got struct {
				Rows [][]json.RawMessage `json:"rows"`
			}
			require.NoError(t, json.Unmarshal(a.body, &got))
			require.Len(t, got.Rows, 1)
			require.Equal(t, tc.out, string(got.Rows[0][0]), "answer: %s", a.body)
		})
	}
}

// TestNumericMatchesPostgres checks the binary numeric decoder against the
// server's own text output over many values.
func TestNumericMatchesPostgres(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.exec(`{"sql":"SELECT v, v::text FROM (SELECT (random() * 10 ^ (random() * 40 - 20))::numeric(60,25) * sign(random() - 0.5)::numeric AS v FROM generate_series(1, 500) UNION ALL VALUES (0::numeric), (0.0001), (10000), (9999.9999), (-1e-20), (123456789012345678901234567890), (1::numeric / 3)) s","row_format":"array"}`)
	require.Empty(t, a.status, "%s", a.body)
	var got struct {
		Rows [][]json.RawMessage `json:"rows"`
	}
	require.NoError(t, json.Unmarshal(a.body, &got))
	require.Len(t, got.Rows, 507)
	for _, row := range got.Rows {
		var text string
		require.NoError(t, json.Unmarshal(row[1], &text))
		require.Equal(t, text, string(row[0]))
	}
}
