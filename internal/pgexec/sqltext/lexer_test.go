package sqltext

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
	"github.com/stretchr/testify/require"
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
			b, err := Bind(tc.sql, json.RawMessage(tc.params), 0)
			require.NoError(t, err)
			require.Equal(t, tc.want, b.SQL)
			got, err := json.Marshal(b.Args)
			require.NoError(t, err)
			require.JSONEq(t, tc.args, string(got))
		})
	}
}

func TestBindOffset(t *testing.T) {
	b, err := Bind("id = :id AND (x = :x OR y = ?)", json.RawMessage(`{"id":1,"x":2}`), 3)
	require.NoError(t, err)
	require.Equal(t, "id = $4 AND (x = $5 OR y = ?)", b.SQL)
	require.Equal(t, []string{"id", "x"}, b.Names)
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
		_, err := Bind(tc.sql, json.RawMessage(tc.params), 0)
		var me *messages.Error
		require.True(t, errors.As(err, &me), "%s %s: %v", tc.sql, tc.params, err)
		require.Equal(t, messages.CodeBadRequest, me.Code)
		require.Equal(t, tc.param, me.Param, "%s %s: %v", tc.sql, tc.params, err)
	}
}

func TestStatements(t *testing.T) {
	sc := Scan("  -- lead\n /* c */ begin; select ';' ; ;\n COMMIT -- end")
	var kws []string
	for _, st := range sc.Statements {
		kws = append(kws, st.Keyword)
	}
	require.Equal(t, []string{"BEGIN", "SELECT", "COMMIT"}, kws)
	require.Empty(t, Scan(" -- only a comment\n").Statements)
	require.Len(t, Scan("DO $$ BEGIN PERFORM 1; END $$").Statements, 1)
}

// TestLineCommentsEndAtCarriageReturn: PostgreSQL ends a -- comment at \r as
// well as \n, and so must the lexer, or it hides statements from the checks.
func TestLineCommentsEndAtCarriageReturn(t *testing.T) {
	sc := Scan("SELECT 1 --\r; COMMIT; DELETE FROM items; --\n")
	var kws []string
	for _, st := range sc.Statements {
		kws = append(kws, st.Keyword)
	}
	require.Equal(t, []string{"SELECT", "COMMIT", "DELETE"}, kws)
	require.Equal(t, "COMMIT", Scan("--\rCOMMIT").Statements[0].Keyword)
	st := Scan("PREPARE /* x */ transaction 'p'").Statements[0]
	require.Equal(t, []string{"PREPARE", "TRANSACTION"}, []string{st.Keyword, st.Keyword2})
}

// FuzzBind checks the lexer and binder on arbitrary SQL: no panic, and a
// successful named binding leaves no :name outside literals and comments.
func FuzzBind(f *testing.F) {
	for _, s := range []string{"SELECT :a, ':b', $$:c$$, \"d:e\" -- :f", "SELECT $1, ?, E'\\'' :a", "/* /* */ :a */ :b::int", "$a$ $a", "'", "a$1 :é"} {
		f.Add(s, `{"a":1,"b":2}`)
	}
	f.Fuzz(func(t *testing.T, sql, params string) {
		b, err := Bind(sql, json.RawMessage(params), 0)
		if err != nil {
			var me *messages.Error
			if !errors.As(err, &me) || me.Code != messages.CodeBadRequest {
				t.Fatalf("bind error is not BAD_REQUEST: %v", err)
			}
			return
		}
		if len(b.Args) != len(b.Names) {
			t.Fatalf("%d args, %d names", len(b.Args), len(b.Names))
		}
		sc := Scan(b.SQL)
		if len(b.Names) > 0 && b.Names[0][0] != '$' && b.Names[0][0] != '?' && sc.Named != 0 {
			t.Fatalf("named placeholders left in %q -> %q", sql, b.SQL)
		}
	})
}

func BenchmarkBind(b *testing.B) {
	sql := "SELECT u.id, u.email FROM users u WHERE u.active = :active AND u.created_at > :since AND u.name <> 'a:b' -- :c\n ORDER BY u.id LIMIT :limit"
	params := json.RawMessage(`{"active":true,"since":"2024-01-01","limit":10}`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Bind(sql, params, 0); err != nil {
			b.Fatal(err)
		}
	}
}
