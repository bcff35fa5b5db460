package subjects

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTokenRoundTrip(t *testing.T) {
	for in, want := range map[string]string{
		"users":        "users",
		"Mixed-Case_1": "Mixed-Case_1",
		"my table":     "my%20table",
		"a.b":          "a%2Eb",
		"100%":         "100%25",
		"*>":           "%2A%3E",
		"é":            "%C3%A9",
		"":             "%",
	} {
		got := EncodeToken(in)
		require.Equal(t, want, got, in)
		back, err := DecodeToken(got)
		require.NoError(t, err)
		require.Equal(t, in, back)
	}
}

func TestDecodeTokenRejectsNonCanonical(t *testing.T) {
	for _, bad := range []string{"a.b", "%2", "%zz", "%61", "%c3%a9", "a b"} {
		_, err := DecodeToken(bad)
		require.Error(t, err, bad)
	}
}

func FuzzToken(f *testing.F) {
	for _, s := range []string{"users", "a.b", "", "%", "é\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := EncodeToken(s)
		for i := 0; i < len(tok); i++ {
			c := tok[i]
			if !(tokenSafe(c) || c == '%') {
				t.Fatalf("token %q has %q", tok, c)
			}
		}
		back, err := DecodeToken(tok)
		if err != nil || back != s {
			t.Fatalf("round trip %q -> %q -> %q, %v", s, tok, back, err)
		}
	})
}

func TestPrefix(t *testing.T) {
	s, err := New("prod")
	require.NoError(t, err)
	require.Equal(t, "prod.db.execute", s.Of(DBExecute))
	s, err = New("")
	require.NoError(t, err)
	require.Equal(t, "db.execute", s.Of(DBExecute))
	for _, bad := range []string{"a..", ".a", "a b.", "x.>."} {
		_, err := New(bad)
		require.Error(t, err, bad)
	}
}

func TestStreamCredit(t *testing.T) {
	s, err := New("prod")
	require.NoError(t, err)
	require.Equal(t, "prod.db.stream.ABC", s.StreamCredit("ABC"))
	require.True(t, s.Owns(s.StreamCredit("ABC")), "a credit subject is never an answer's")
}
