package pgjson

import (
	"encoding/json"
	"math"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\" back\\ slash", "\x00\x01\x1f ctl", "tab\tnl\ncr\r", "é☃𝄞", "\u2028\u2029", "<html>&"} {
		got := AppendString(nil, s)
		var back string
		require.NoError(t, json.Unmarshal(got, &back), "%q -> %s", s, got)
		require.Equal(t, s, back)
	}
	got := AppendString(nil, []byte("bad \xff utf8"))
	require.True(t, utf8.Valid(got))
	require.Equal(t, `"bad \ufffd utf8"`, string(got))
}

func TestAppendFloat(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		bits int
		want string
	}{
		{0.1, 64, "0.1"}, {1e21, 64, "1e+21"}, {1e-7, 64, "1e-7"}, {100, 64, "100"},
		{float64(float32(0.1)), 32, "0.1"}, {math.NaN(), 64, `"NaN"`}, {math.Inf(-1), 64, `"-Infinity"`},
	} {
		require.Equal(t, tc.want, string(AppendFloat(nil, tc.f, tc.bits)))
	}
}

func TestParseTextArray(t *testing.T) {
	for in, want := range map[string]string{
		`{}`:                      `[]`,
		`{a,"b c",NULL,"NULL"}`:   `["a","b c",null,"NULL"]`,
		`{{1,2},{3,4}}`:           `[["1","2"],["3","4"]]`,
		`[0:1]={x,y}`:             `["x","y"]`,
		`{"a\"b","c\\d"}`:         `["a\"b","c\\d"]`,
		`{"(1,\"x y\")","(2,z)"}`: `["(1,\"x y\")","(2,z)"]`,
	} {
		got, err := appendTextArray(nil, []byte(in), ',')
		require.NoError(t, err, in)
		require.Equal(t, want, string(got), in)
	}
	got, err := appendTextArray(nil, []byte(`{(1,1),(0,0);(3,3),(2,2)}`), ';')
	require.NoError(t, err)
	require.Equal(t, `["(1,1),(0,0)","(3,3),(2,2)"]`, string(got))
	for _, bad := range []string{`{`, `{a`, `x`, `{"a}`, `[1:2]`} {
		_, err := appendTextArray(nil, []byte(bad), ',')
		require.Error(t, err, bad)
	}
}

// TestHalfvec decodes pgvector's binary halfvec through x448/float16: normal,
// subnormal, largest and infinite halves.
func TestHalfvec(t *testing.T) {
	halves := []byte{0x3c, 0x00, 0xc0, 0x00, 0x3e, 0x00, 0x00, 0x01, 0x7b, 0xff, 0x7c, 0x00}
	got, err := appendHalfvec(nil, append([]byte{0, 6, 0, 0}, halves...))
	require.NoError(t, err)
	require.Equal(t, `[1,-2,1.5,5.9604645e-8,65504,"Infinity"]`, string(got))
	_, err = appendHalfvec(nil, append([]byte{0, 7, 0, 0}, halves...))
	require.ErrorIs(t, err, errShortValue)
}

func BenchmarkAppendRow(b *testing.B) {
	types := []*Type{{Kind: KindInt8}, {Kind: KindText}, {Kind: KindBool}, {Kind: KindFloat8}, {Kind: KindTimestamptz}, {Kind: KindUUID}}
	row := [][]byte{
		{0, 0, 0, 0, 0, 0, 0x30, 0x39},
		[]byte("someone@example.com"),
		{1},
		{0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a},
		{0, 2, 0xb5, 0xe3, 0x9c, 0x5d, 0x10, 0},
		{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11},
	}
	names := [][]byte{[]byte(`"id"`), []byte(`"email"`), []byte(`"active"`), []byte(`"score"`), []byte(`"created_at"`), []byte(`"uuid"`)}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var err error
		if buf, err = AppendRow(buf[:0], row, types, names, RowFormat{}); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzTextArray: the text-array parser never panics, and what it accepts it
// turns into valid JSON.
func FuzzTextArray(f *testing.F) {
	for _, s := range []string{`{}`, `{a,"b c",NULL}`, `{{1,2},{3,4}}`, `[0:1]={x,y}`, `{"a\"b"}`, `{`, `{"`, `{{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		out, err := appendTextArray(nil, v, ',')
		if err == nil && !json.Valid(out) {
			t.Fatalf("%q gave invalid JSON %q", v, out)
		}
	})
}

// FuzzAppendValue: every binary decoder rejects malformed input with an
// error, never a panic, and writes valid JSON when it accepts.
func FuzzAppendValue(f *testing.F) {
	f.Add(uint8(KindNumeric), []byte{0, 1, 0, 0, 0, 0, 0, 2, 0, 12})
	f.Add(uint8(KindNumeric), []byte{0, 0, 0, 0, 0xC0, 0, 0, 0})
	f.Add(uint8(KindInt8), []byte{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add(uint8(KindArray), []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 23, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 7})
	f.Add(uint8(KindVector), []byte{0, 2, 0, 0, 63, 128, 0, 0, 64, 0, 0, 0})
	f.Add(uint8(KindSparsevec), []byte{0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 63, 128, 0, 0})
	f.Add(uint8(KindTimestamptz), []byte{0, 2, 181, 227, 156, 93, 16, 0})
	f.Fuzz(func(t *testing.T, k uint8, v []byte) {
		ti := &Type{Kind: Kind(k % uint8(KindArray+1)), Elem: &Type{Kind: KindInt4}}
		if ti.Kind == KindOther {
			return
		}
		out, err := AppendValue(nil, ti, v)
		if err == nil && !json.Valid(out) {
			t.Fatalf("kind %d, %x gave invalid JSON %q", ti.Kind, v, out)
		}
		// Safe numbers accept and refuse the same values, and write JSON.
		safe, safeErr := AppendSafeValue(nil, ti, v)
		if (safeErr == nil) != (err == nil) || (safeErr == nil && !json.Valid(safe)) {
			t.Fatalf("kind %d, %x: safe numbers gave %q, %v (plain: %v)", ti.Kind, v, safe, safeErr, err)
		}
	})
}

func TestTextForm(t *testing.T) {
	int4 := &Type{Name: "int4", Kind: KindInt4}
	arr := &Type{Name: "_text", Kind: KindArray, Elem: &Type{Name: "text", Kind: KindText}}
	bytea := &Type{Name: "bytea", Kind: KindBytea}
	sparse := &Type{Name: "sparsevec", Kind: KindSparsevec}
	ok := []struct {
		t        *Type
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
		t  *Type
		in string
	}{{int4, `1.5`}, {int4, `"x"`}, {int4, `true`}, {int4, `9999999999`}, {bytea, `"%%%"`}, {bytea, `1`}, {arr, `{}`}} {
		_, err := textForm(tc.t, json.RawMessage(tc.in))
		require.Error(t, err, tc.in)
	}
}
