package messages

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFloatJSON: a finite Float is written as encoding/json writes a
// float64 (0.00001, not 1e-05; 123456789, not 1.23456789e+08), as the
// float64 score and distance were before; NaN and ±Inf are the strings
// db.execute writes; each form reads back.
func TestFloatJSON(t *testing.T) {
	for _, v := range []float64{0, math.Copysign(0, -1), 1, -0.5, 0.00001, 1e-7, 123456789, 1e20, 1e21, math.MaxFloat64, math.SmallestNonzeroFloat64, 0.1 + 0.2} {
		want, err := json.Marshal(v)
		require.NoError(t, err)
		got, err := json.Marshal(Float(v))
		require.NoError(t, err)
		require.Equal(t, string(want), string(got), "%v", v)
		var back Float
		require.NoError(t, json.Unmarshal(got, &back))
		require.Equal(t, v, float64(back))
	}
	for v, want := range map[float64]string{math.Inf(1): `"Infinity"`, math.Inf(-1): `"-Infinity"`} {
		got, err := json.Marshal(Float(v))
		require.NoError(t, err)
		require.Equal(t, want, string(got))
		var back Float
		require.NoError(t, json.Unmarshal(got, &back))
		require.Equal(t, v, float64(back))
	}
	got, err := json.Marshal(Float(math.NaN()))
	require.NoError(t, err)
	require.Equal(t, `"NaN"`, string(got))
	var back Float
	require.NoError(t, json.Unmarshal(got, &back))
	require.True(t, math.IsNaN(float64(back)))
	require.Error(t, json.Unmarshal([]byte(`"nan"`), &back))
}
