package pgexec_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// safeTypesSchema makes the domains, composite and table the carriers of
// numeric and int8 below are built from.
const safeTypesSchema = `CREATE DOMAIN dn AS numeric(10,2);
CREATE DOMAIN d8 AS int8; CREATE DOMAIN dd8 AS d8; CREATE DOMAIN d4 AS int4;
CREATE DOMAIN db AS bool; CREATE DOMAIN dbox AS box; CREATE DOMAIN dt AS text; CREATE DOMAIN da8 AS int8[];
CREATE TYPE pair AS (a int8, b numeric);
CREATE TABLE tr (id int8, n numeric); INSERT INTO tr VALUES (9223372036854775807, 1.10);
CREATE TABLE tw (id int4, r tr, p pair, ad8 d8[]);
INSERT INTO tw SELECT 1, t, (9223372036854775807, 1.10)::pair, ARRAY[9223372036854775807, 1]::d8[] FROM tr t`

var outBound = pgjson.Output{MaxBytes: 1 << 20}

// requireCode checks that err is the worker error code.
func requireCode(t *testing.T, err error, code messages.Code) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, code, pgerr.AsError(err).Code, "%v", err)
}

// safeOne runs sql with safe_numbers on and off and returns both first rows.
func safeOne(t *testing.T, ex *pgexec.Executor, sql string) (safe, plain string) {
	t.Helper()
	q, _ := json.Marshal(sql)
	for _, on := range []bool{true, false} {
		req := decodeReq(t, `{"sql":`+string(q)+`}`)
		req.SafeNumbers = &on
		answer, err := ex.Execute(context.Background(), req, outBound)
		require.NoError(t, err, sql)
		if on {
			safe = rowOf(t, answer, "rows")
		} else {
			plain = rowOf(t, answer, "rows")
		}
	}
	return safe, plain
}

// TestSafeNumbersDomains: a domain over numeric or int8 follows its base
// type wherever it is, as a column (PostgreSQL describes the base type) and
// as the element of an array (PostgreSQL describes the array of the domain):
// an array of a domain is written as an array of its base type, with and
// without safe_numbers, and a domain over a domain over int8 is int8.
func TestSafeNumbersDomains(t *testing.T) {
	t.Parallel()
	_, ex, out := safeSetup(t)
	_, err := ex.Execute(context.Background(), &messages.ExecuteRequest{Op: "script", SQL: safeTypesSchema}, out)
	require.NoError(t, err)

	safe, plain := safeOne(t, ex, `SELECT 1.10::dn AS dn, 9223372036854775807::dd8 AS dd8, 5::d8 AS small, 5::d4 AS d4`)
	require.Equal(t, `{"dn":"1.10","dd8":"9223372036854775807","small":5,"d4":5}`, safe)
	require.Equal(t, `{"dn":1.10,"dd8":9223372036854775807,"small":5,"d4":5}`, plain)

	safe, plain = safeOne(t, ex, `SELECT ARRAY[1.10, NULL]::dn[] AS adn, ARRAY[9223372036854775807, 5]::dd8[] AS add8,
		ARRAY[[5]]::d4[] AS ad4, ARRAY[true]::db[] AS adb, ARRAY['x']::dt[] AS adt, ad8, '{9223372036854775807,5}'::da8 AS da8 FROM tw`)
	require.Equal(t, `{"adn":["1.10",null],"add8":["9223372036854775807",5],"ad4":[[5]],"adb":[true],"adt":["x"],`+
		`"ad8":["9223372036854775807",1],"da8":["9223372036854775807",5]}`, safe)
	require.Equal(t, `{"adn":[1.10,null],"add8":[9223372036854775807,5],"ad4":[[5]],"adb":[true],"adt":["x"],`+
		`"ad8":[9223372036854775807,1],"da8":[9223372036854775807,5]}`, plain)

	// The columns name an array of a domain as an array of its base type
	// (a caller decodes by it), and a domain over box keeps box's ';'.
	answer, err := ex.Execute(context.Background(), decodeReq(t, `{"sql":"SELECT ARRAY[1]::dd8[] AS a, ARRAY[1]::dn[] AS b, ARRAY['(1,1),(0,0)', '(2,2),(1,1)']::dbox[] AS c"}`), out)
	require.NoError(t, err)
	require.Contains(t, string(answer), `"columns":[{"name":"a","type":"_int8"},{"name":"b","type":"_numeric"},{"name":"c","type":"_box"}]`)
	require.Contains(t, string(answer), `"rows":[{"a":[1],"b":[1.00],"c":["(1,1),(0,0)","(2,2),(1,1)"]}]`)

	// A domain parameter is converted as its base type: range checked.
	_, err = ex.Execute(context.Background(), decodeReq(t, `{"sql":"SELECT $1::d8 AS v","params":[92233720368547758070]}`), out)
	requireCode(t, err, messages.CodeBadRequest)
	answer, err = ex.Execute(context.Background(), decodeReq(t, `{"sql":"INSERT INTO tw (id, ad8) VALUES (2, $1) RETURNING ad8","params":[["9223372036854775807", 7]],"safe_numbers":true}`), out)
	require.NoError(t, err)
	require.Contains(t, string(answer), `"rows":[{"ad8":["9223372036854775807",7]}]`)
}

// TestSafeNumbersCarriers pins down every type that holds a numeric or an
// int8 without being one, and the edge values of both: composites, records,
// ranges, multiranges, money and xid8 are their text form (a string) with and
// without safe_numbers; json built from a row (row_to_json) keeps its
// numbers; aggregates follow the type they return (sum(int4) and count(*)
// are int8, sum(int8) and avg are numeric); float8, int2, int4 and oid stay
// numbers.
func TestSafeNumbersCarriers(t *testing.T) {
	t.Parallel()
	_, ex, out := safeSetup(t)
	_, err := ex.Execute(context.Background(), &messages.ExecuteRequest{Op: "script", SQL: safeTypesSchema}, out)
	require.NoError(t, err)

	for _, c := range []struct{ sql, safe, plain string }{
		{
			`SELECT ROW(9223372036854775807::int8, 1.10) AS rec, p, r, row_to_json(r) AS rj, to_jsonb(p) AS pj, ARRAY[p] AS ap FROM tw`,
			`{"rec":"(9223372036854775807,1.10)","p":"(9223372036854775807,1.10)","r":"(9223372036854775807,1.10)",` +
				`"rj":{"id":9223372036854775807,"n":1.10},"pj":{"a": 9223372036854775807, "b": 1.10},"ap":["(9223372036854775807,1.10)"]}`,
			``, // the same
		},
		{
			`SELECT int8range(1, 9223372036854775807) AS r8, numrange(1.10, 2.20) AS nr,
				int8multirange(int8range(1, 9223372036854775807)) AS mr8, nummultirange(numrange(1.10, 2.20)) AS mrn,
				ARRAY[int8range(9007199254740992, NULL)] AS ar, 12.34::money AS m,
				'18446744073709551615'::xid8 AS x8, '4294967295'::xid AS x, 4294967295::oid AS o`,
			`{"r8":"[1,9223372036854775807)","nr":"[1.10,2.20)","mr8":"{[1,9223372036854775807)}","mrn":"{[1.10,2.20)}",` +
				`"ar":["[9007199254740992,)"],"m":"$12.34","x8":"18446744073709551615","x":"4294967295","o":4294967295}`,
			``,
		},
		{
			`SELECT sum(x) AS s4, sum(x::int8) AS s8, count(*) AS c, avg(x) AS a, max(x::int8 * 4194304) AS m8, max(x::int8 * 4194306) AS m9
				FROM (VALUES (2147483647), (2147483647)) v(x)`,
			`{"s4":4294967294,"s8":"4294967294","c":2,"a":"2147483647.00000000","m8":9007199250546688,"m9":"9007203545513982"}`,
			`{"s4":4294967294,"s8":4294967294,"c":2,"a":2147483647.00000000,"m8":9007199250546688,"m9":9007203545513982}`,
		},
		{
			`SELECT '-0'::numeric AS nz, '-0'::float8 AS fz, 1.5::numeric(5,3) AS tm, 1e-20::numeric AS tiny,
				1e25::numeric AS big, 1e300::float8 AS f8, 0.1::float4 AS f4, 32767::int2 AS i2, (-2147483648)::int4 AS i4,
				'-Infinity'::numeric AS ninf, ARRAY['NaN', 'Infinity']::numeric[] AS anan, '[0:1]={1.1,2.2}'::numeric[] AS lb`,
			`{"nz":"0","fz":-0,"tm":"1.500","tiny":"0.00000000000000000001","big":"10000000000000000000000000",` +
				`"f8":1e+300,"f4":0.1,"i2":32767,"i4":-2147483648,"ninf":"-Infinity","anan":["NaN","Infinity"],"lb":["1.1","2.2"]}`,
			`{"nz":0,"fz":-0,"tm":1.500,"tiny":0.00000000000000000001,"big":10000000000000000000000000,` +
				`"f8":1e+300,"f4":0.1,"i2":32767,"i4":-2147483648,"ninf":"-Infinity","anan":["NaN","Infinity"],"lb":[1.1,2.2]}`,
		},
		{
			`SELECT '{"a": 9223372036854775807, "b": [1.10, 1e30]}'::jsonb AS jb, '{"a":1.10}'::json AS j`,
			`{"jb":{"a": 9223372036854775807, "b": [1.10, 1000000000000000000000000000000]},"j":{"a":1.10}}`,
			``,
		},
	} {
		safe, plain := safeOne(t, ex, c.sql)
		require.Equal(t, c.safe, safe, c.sql)
		if c.plain == "" {
			c.plain = c.safe
		}
		require.Equal(t, c.plain, plain, c.sql)
	}

	// The extreme exponents numeric holds: every digit, as a string.
	safe, plain := safeOne(t, ex, `SELECT 1e-300::numeric AS tiny, -1e300::numeric AS huge`)
	zeros := strings.Repeat("0", 299)
	require.Equal(t, `{"tiny":"0.`+zeros+`1","huge":"-1`+zeros+`0"}`, safe)
	require.Equal(t, `{"tiny":0.`+zeros+`1,"huge":-1`+zeros+`0}`, plain)
}

// TestSafeNumbersTooLarge: the answer bound counts the bytes sent, quotes
// included. An answer just under the bound as numbers passes it as strings
// and is TOO_LARGE; streamed, it is split into more messages instead.
func TestSafeNumbersTooLarge(t *testing.T) {
	t.Parallel()
	_, ex, _ := safeSetup(t)
	ctx := context.Background()
	const sql = `SELECT 9223372036854775807::int8 AS v FROM generate_series(1, 100)`
	plain, err := ex.Execute(ctx, decodeReq(t, `{"sql":"`+sql+`"}`), pgjson.Output{MaxBytes: 1 << 20})
	require.NoError(t, err)
	bound := pgjson.Output{MaxBytes: len(plain) + 100} // 200 quotes more do not fit
	_, err = ex.Execute(ctx, decodeReq(t, `{"sql":"`+sql+`"}`), bound)
	require.NoError(t, err)
	_, err = ex.Execute(ctx, decodeReq(t, `{"sql":"`+sql+`","safe_numbers":true}`), bound)
	requireCode(t, err, messages.CodeTooLarge)
	bound.MaxBytes = len(plain) + 200 + 1
	answer, err := ex.Execute(ctx, decodeReq(t, `{"sql":"`+sql+`","safe_numbers":true}`), bound)
	require.NoError(t, err)
	require.Len(t, answer, len(plain)+200)
}
