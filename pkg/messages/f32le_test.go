package messages_test

import (
	"encoding/base64"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

func TestF32LE(t *testing.T) {
	v := []float32{0, float32(math.Copysign(0, -1)), math.Float32frombits(1), math.MaxFloat32, -1.5}
	b := messages.Float32sLE(v)
	require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 0x80, 1, 0, 0, 0, 0xff, 0xff, 0x7f, 0x7f, 0, 0, 0xc0, 0xbf}, b, "little-endian, 4 bytes a dimension")
	got, err := messages.DecodeF32LE("vector_b64", base64.StdEncoding.EncodeToString(b), 5)
	require.NoError(t, err)
	require.Equal(t, b, got)
	back, err := messages.Float32sFromLE(got)
	require.NoError(t, err)
	for i := range v {
		require.Equal(t, math.Float32bits(v[i]), math.Float32bits(back[i]))
	}
	_, err = messages.Float32sFromLE([]byte{1, 2, 3})
	require.Error(t, err)

	for _, bad := range []string{
		"AACAPw",           // padding left out
		"AACAPw=",          // padding short
		"AACAPx==",         // non-zero padding bits: not the canonical form
		"AACA",             // 3 bytes
		"",                 // no dimensions
		"AADAfw==",         // NaN
		"AACAfw==",         // +Inf
		"AACA/w==",         // -Inf
		"AACAPwAAgD8AAIA/", // 3 dimensions, the limit 2
		"AACAP w==",        // a space
		"AACAPw==\"",       // a stray byte
		"AACA\nPw==",       // a line break (red team: Strict skips CR and LF)
		"AACAPw==\r\n",     // a trailing CRLF
	} {
		_, err := messages.DecodeF32LE("items[2].vector_b64", bad, 2)
		var me *messages.Error
		require.ErrorAs(t, err, &me, "%q", bad)
		require.Equal(t, messages.CodeBadRequest, me.Code, bad)
		require.Equal(t, "items[2].vector_b64", me.Param, bad)
	}

	for enc, want := range map[string]bool{"": false, "json": false, "f32le": true} {
		got, err := messages.CheckEncoding(enc)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	for _, enc := range []string{"F32LE", "f32be", "base64", " json"} {
		_, err := messages.CheckEncoding(enc)
		var me *messages.Error
		require.ErrorAs(t, err, &me)
		require.Equal(t, "encoding", me.Param)
	}
}
