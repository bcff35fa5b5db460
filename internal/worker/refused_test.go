package worker

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// TestRefusalsAreSampled: one log line per interval, the rest counted in the next.
func TestRefusalsAreSampled(t *testing.T) {
	s := &sampler{every: 10 * time.Second}
	t0 := time.Unix(1000, 0)
	ok, n := s.allow(t0)
	require.True(t, ok)
	require.Zero(t, n)
	for i := range 50 {
		ok, _ = s.allow(t0.Add(time.Duration(i) * time.Millisecond))
		require.False(t, ok)
	}
	ok, n = s.allow(t0.Add(10 * time.Second))
	require.True(t, ok)
	require.Equal(t, 50, n)
}

func TestRefusedPublish(t *testing.T) {
	subject, ok := refusedPublish(fmt.Errorf("%w: %s", nats.ErrPermissionViolation, `Permissions Violation for Publish to "_INBOX_x.y"`))
	require.True(t, ok)
	require.Equal(t, "_INBOX_x.y", subject)
	_, ok = refusedPublish(fmt.Errorf("%w: %s", nats.ErrPermissionViolation, `Permissions Violation for Subscription to "db.>"`))
	require.False(t, ok)
	_, ok = refusedPublish(errors.New(`for Publish to "x"`))
	require.False(t, ok)
}
