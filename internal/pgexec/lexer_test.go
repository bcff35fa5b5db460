package pgexec

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

func TestBindRewrites(t *testing.T) {
	cases := []struct {
		name   string
		sql    string
		params string
		want   string
		args   string // JSON array of the bound args
	}{
		{"named, one used twice", "SELECT :a, :b, :a", `{"a":1,"b":"x"}`, "SELECT $1, $2, $1", `[1,"x"]`},
		{"cast is not a param", "SELECT :a::int, x::text FROM t", `{"a":1}`, "SELECT $1::int, x::text FROM t", `[1]`},
		{"literals are skipped", `SELECT ':a', 'it''s :a', E'\' :a', "col:a", :b`, `{"b":2}`, `SELECT ':a', 'it''s :a', E'\' :a', "col:a", $1`, `[2]`},
		{"dollar quotes are skipped", "SELECT $$ :a $$, $fn$ :a ? $1 $fn$, :b", `{"b":2}`, "SELECT $$ :a $$, $fn$ :a ? $1 $fn$, $1", `[2]`},
		{"comments are skipped", "SELECT -- :a ?\n :b /* :c /* nested :d */ :e */", `{"b":1}`, "SELECT -- :a ?\n $1 /* :c /* nested :d */ :e */", `[1]`},
		{"positional", "SELECT $2, $1", `["a","b"]`, "SELECT $2, $1", `["a","b"]`},
		{"question marks", "SELECT ?, '?', ?", `[1,2]`, "SELECT $1, '?', $2", `[1,2]`},
		{"identifier with dollar", "SELECT foo$1 FROM t WHERE x = $1", `[5]`, "SELECT foo$1 FROM t WHERE x = $1", `[5]`},
		{"array slice with number", "SELECT a[1:2] FROM t WHERE x = :x", `{"x":1}`, "SELECT a[1:2] FROM t WHERE x = $1", `[1]`},
		{"no params", "SELECT 1", ``, "SELECT 1", `null`},
		{"null params", "SELECT '{:a}'", `null`, "SELECT '{:a}'", `null`},
		{"unterminated literal swallows the rest", "SELECT 'abc :a", `null`, "SELECT 'abc :a", `null`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := bind(tc.sql, json.RawMessage(tc.params), 0)
			require.NoError(t, err)
			require.Equal(t, tc.want, b.sql)
			got, err := json.Marshal(b.args)
			require.NoError(t, err)
			require.JSONEq(t, tc.args, string(got))
		})
	}
}

func TestBindOffset(t *testing.T) {
	b, err := bind("id = :id AND (x = :x OR y = ?)", json.RawMessage(`{"id":1,"x":2}`), 3)
	require.NoError(t, err)
	require.Equal(t, "id = $4 AND (x = $5 OR y = ?)", b.sql)
	require.Equal(t, []string{"id", "x"}, b.names)
}

func TestBindErrors(t *testing.T) {
	cases := []struct {
		sql, params, param string
	}{
		{"SELECT :a, :b", `{"a":1}`, "b"},
		{"SELECT :a", `{"a":1,"zz":2}`, "zz"},
		{"SELECT :a", ``, "a"},
		{"SELECT $1", `{"a":1}`, "params"},
		{"SELECT $1, $3", `[1,2,3]`, "$2"},
		{"SELECT $2", `[1]`, "$2"},
		{"SELECT ?, ?", `[1]`, "params"},
		{"SELECT 1", `[1]`, "params"},
		{"SELECT 1", `"x"`, "params"},
		{"SELECT 1", `{"a":`, "params"},
	}
	for _, tc := range cases {
		_, err := bind(tc.sql, json.RawMessage(tc.params), 0)
		var me *messages.Error
		require.True(t, errors.As(err, &me), "%s %s: %v", tc.sql, tc.params, err)
		require.Equal(t, messages.CodeBadRequest, me.Code)
		require.Equal(t, tc.param, me.Param, "%s %s: %v", tc.sql, tc.params, err)
	}
}

func TestStatements(t *testing.T) {
	sc := scanSQL("  -- lead\n /* c */ begin; select ';' ; ;\n COMMIT -- end")
	var kws []string
	for _, st := range sc.statements {
		kws = append(kws, st.keyword)
	}
	require.Equal(t, []string{"BEGIN", "SELECT", "COMMIT"}, kws)
	require.Empty(t, scanSQL(" -- only a comment\n").statements)
	require.Len(t, scanSQL("DO $$ BEGIN PERFORM 1; END $$").statements, 1)
}

// TestLineCommentsEndAtCarriageReturn: PostgreSQL ends a -- comment at \r as
// well as \n, and so must the lexer, or it hides statements from the checks.
func TestLineCommentsEndAtCarriageReturn(t *testing.T) {
	sc := scanSQL("SELECT 1 --\r; COMMIT; DELETE FROM items; --\n")
	var kws []string
	for _, st := range sc.statements {
		kws = append(kws, st.keyword)
	}
	require.Equal(t, []string{"SELECT", "COMMIT", "DELETE"}, kws)
	require.Equal(t, "COMMIT", scanSQL("--\rCOMMIT").statements[0].keyword)
	st := scanSQL("PREPARE /* x */ transaction 'p'").statements[0]
	require.Equal(t, []string{"PREPARE", "TRANSACTION"}, []string{st.keyword, st.keyword2})
}

func TestTextForm(t *testing.T) {
	int4 := &typeInfo{name: "int4", kind: kInt4}
	arr := &typeInfo{name: "_text", kind: kArray, elem: &typeInfo{name: "text", kind: kText}}
	bytea := &typeInfo{name: "bytea", kind: kBytea}
	sparse := &typeInfo{name: "sparsevec", kind: kSparsevec}
	ok := []struct {
		t        *typeInfo
		in, want string
	}{
		{int4, `42`, `42`},
		{int4, `"-7"`, `-7`},
		{arr, `["a","b\"c",null,"x\\y"]`, `{"a","b\"c",NULL,"x\\y"}`},
		{bytea, `"AAEC/w=="`, `\x000102ff`},
		{sparse, `{"dim":5,"indices":[0,3],"values":[1.5,2]}`, `{1:1.5,4:2}/5`},
	}
	for _, tc := range ok {
		got, err := textForm(tc.t, json.RawMessage(tc.in))
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, string(got))
	}
	for _, tc := range []struct {
		t  *typeInfo
		in string
	}{{int4, `1.5`}, {int4, `"x"`}, {int4, `true`}, {int4, `9999999999`}, {bytea, `"%%%"`}, {bytea, `1`}, {arr, `{}`}} {
		_, err := textForm(tc.t, json.RawMessage(tc.in))
		require.Error(t, err, tc.in)
	}
}

// FuzzBind checks the lexer and binder on arbitrary SQL: no panic, and a
// successful named binding leaves no :name outside literals and comments.
func FuzzBind(f *testing.F) {
	for _, s := range []string{"SELECT :a, ':b', $$:c$$, \"d:e\" -- :f", "SELECT $1, ?, E'\\'' :a", "/* /* */ :a */ :b::int", "$a$ $a", "'", "a$1 :é"} {
		f.Add(s, `{"a":1,"b":2}`)
	}
	f.Fuzz(func(t *testing.T, sql, params string) {
		b, err := bind(sql, json.RawMessage(params), 0)
		if err != nil {
			var me *messages.Error
			if !errors.As(err, &me) || me.Code != messages.CodeBadRequest {
				t.Fatalf("bind error is not BAD_REQUEST: %v", err)
			}
			return
		}
		if len(b.args) != len(b.names) {
			t.Fatalf("%d args, %d names", len(b.args), len(b.names))
		}
		sc := scanSQL(b.sql)
		if len(b.names) > 0 && b.names[0][0] != '$' && b.names[0][0] != '?' && sc.named != 0 {
			t.Fatalf("named placeholders left in %q -> %q", sql, b.sql)
		}
	})
}
