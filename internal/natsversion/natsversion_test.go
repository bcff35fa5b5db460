package natsversion_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/natsversion"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want natsversion.Version
		ok   bool
	}{
		{"2.9.10", natsversion.Version{2, 9, 10}, true},
		{"v2.10.4", natsversion.Version{2, 10, 4}, true},
		{"2.11.0-beta.1", natsversion.Version{2, 11, 0}, true},
		{"2.10.27-binary", natsversion.Version{2, 10, 27}, true},
		{"", natsversion.Version{}, false},
		{"2.10", natsversion.Version{}, false},
		{"two.ten.four", natsversion.Version{}, false},
	} {
		got, ok := natsversion.Parse(c.in)
		require.Equal(t, c.ok, ok, c.in)
		require.Equal(t, c.want, got, c.in)
	}
}

func TestAtLeast(t *testing.T) {
	v := func(s string) natsversion.Version {
		x, ok := natsversion.Parse(s)
		require.True(t, ok, s)
		return x
	}
	require.True(t, v("2.10.4").AtLeast(natsversion.TermReason))
	require.True(t, v("2.11.0").AtLeast(natsversion.TermReason))
	require.True(t, v("3.0.0").AtLeast(natsversion.TermReason))
	require.False(t, v("2.10.3").AtLeast(natsversion.TermReason))
	require.False(t, v("2.9.10").AtLeast(natsversion.TermReason))
	require.True(t, v("2.9.10").AtLeast(natsversion.Minimum))
	require.False(t, v("2.8.4").AtLeast(natsversion.Minimum))
}

func TestUnsupportedError(t *testing.T) {
	err := error(&natsversion.UnsupportedError{Server: natsversion.Version{2, 8, 4}})
	require.True(t, errors.Is(err, natsversion.ErrUnsupported))
	require.EqualError(t, err, "nats-server 2.8.4 is older than 2.9.0, the oldest dbworker supports; upgrade the server")
}

// TestCheck: the embedded server (the module's nats-server) and the external
// one `make services` runs (Debian's 2.9.10 in CI) are both supported; only
// the embedded one understands a termination's reason.
func TestCheck(t *testing.T) {
	embedded := testenv.Connect(t, testenv.NewNATS(t))
	v, err := natsversion.Check(embedded)
	require.NoError(t, err)
	require.True(t, v.AtLeast(natsversion.TermReason), "embedded %s", v)
	require.True(t, natsversion.Supports(embedded, natsversion.TermReason))

	external := testenv.ConnectExternalNATS(t)
	v, err = natsversion.Check(external)
	require.NoError(t, err, "the external server is supported")
	require.False(t, v.IsZero(), "version %q", external.ConnectedServerVersion())
	require.Equal(t, v.AtLeast(natsversion.TermReason), natsversion.Supports(external, natsversion.TermReason))
	t.Logf("external nats-server %s", v)
}
