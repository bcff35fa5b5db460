package deploytest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/worker"
)

// TestServingUserCannotDiscover: under the shipped conf the serving user may
// not publish $SRV requests, so a memory-state worker cannot ask the bus for
// peers: FindPeers says so (the worker warns and starts) rather than finding
// none.
func TestServingUserCannotDiscover(t *testing.T) {
	s := startConfiguredServer(t)
	ops := connectAs(t, s, "ops").nc
	w := connectAs(t, s, "worker").nc
	_, err := worker.FindPeers(context.Background(), w, "dbworker", "", 500*time.Millisecond)
	require.ErrorIs(t, err, worker.ErrDiscoveryRefused)
	// ops may: with no instance on the bus, the answer is at once.
	start := time.Now()
	peers, err := worker.FindPeers(context.Background(), ops, "dbworker", "", 5*time.Second)
	require.NoError(t, err)
	require.Empty(t, peers)
	require.Less(t, time.Since(start), 2*time.Second, "no responders is an answer")
}
