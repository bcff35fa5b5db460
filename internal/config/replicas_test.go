package config

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
)

// TestJSReplicas: auto (the default) or 1 to 5, for the worker and the
// publisher alike; anything else names what is accepted.
func TestJSReplicas(t *testing.T) {
	cleanEnv(t)
	c, err := Load()
	require.NoError(t, err)
	require.EqualValues(t, maintenance.ReplicasAuto, c.JSReplicas, "auto by default")
	require.False(t, c.JSUpdateStreams, "existing streams are left alone by default")

	for v, want := range map[string]int{"auto": maintenance.ReplicasAuto, "1": 1, "3": 3, "5": 5} {
		t.Setenv("JS_REPLICAS", v)
		c, err := Load()
		require.NoError(t, err, v)
		require.EqualValues(t, want, c.JSReplicas, v)
		p, err := LoadPublisher()
		require.NoError(t, err, v)
		require.EqualValues(t, want, p.JSReplicas, v)
	}
	for _, v := range []string{"0", "6", "three", "AUTO", "-1"} {
		t.Setenv("JS_REPLICAS", v)
		_, err := Load()
		require.EqualError(t, err, `JS_REPLICAS: must be auto or 1 to 5, got "`+v+`"`)
	}
}
