package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jeeves-avionics/dbworker/internal/natsversion"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/worker"
)

// checkFleet runs before anything else starts: the nats-server must be one
// dbworker supports, and a worker with state in memory must be the only one
// serving its prefix (docs/operations.md, "Running a fleet").
func (m *Main) checkFleet(ctx context.Context) error {
	if err := m.checkServerVersion(); err != nil {
		return err
	}
	return m.checkMemoryPeers(ctx)
}

// checkServerVersion logs the nats-server's version in one line, and refuses
// one older than natsversion.Minimum.
func (m *Main) checkServerVersion() error {
	raw := m.jsnc.ConnectedServerVersion()
	v, err := natsversion.Check(m.jsnc)
	switch {
	case err != nil:
		return err
	case v.IsZero():
		m.Log.Warn().Str("nats_server", raw).Stringer("minimum", natsversion.Minimum).
			Msg("nats-server version not understood; assuming the oldest supported server's behaviour")
	case !v.AtLeast(natsversion.TermReason):
		m.Log.Info().Stringer("nats_server", v).Stringer("minimum", natsversion.Minimum).
			Msgf("nats-server %s supported; older than %s, so terminated jobs carry no reason in their advisories", v, natsversion.TermReason)
	default:
		m.Log.Info().Stringer("nats_server", v).Stringer("minimum", natsversion.Minimum).Msgf("nats-server %s supported", v)
	}
	return nil
}

// checkMemoryPeers refuses to start a worker with state in memory when other
// workers serve its prefix: each would keep its own rate limits, locks and
// values, so a limit of 2 would let 2 calls through per worker and two
// callers could hold the same lock. STATE_MEMORY_ALLOW_PEERS overrides it.
// The check is made once, at start: workers started at the same instant may
// each find none.
func (m *Main) checkMemoryPeers(ctx context.Context) error {
	cfg := m.Config
	if cfg.StateBackendName() != state.BackendMemory {
		return nil
	}
	prefix := cfg.Subjects().Prefix()
	peers, err := worker.FindPeers(ctx, m.nc, cfg.ServiceName, prefix, worker.DiscoveryWaitDefault)
	if err != nil {
		ev := m.Log.Warn().Err(err)
		if errors.Is(err, worker.ErrDiscoveryRefused) {
			ev = ev.Str("hint", "let the serving user publish $SRV.PING."+cfg.ServiceName+" and read its inbox, or run DEPLOYMENT_MODE=distributed")
		}
		ev.Msg("could not ask the bus whether other workers serve this prefix; starting with state in memory")
		return nil
	}
	if len(peers) == 0 {
		return nil
	}
	ids := make([]string, len(peers))
	for i, p := range peers {
		ids[i] = p.WorkerID
	}
	what := fmt.Sprintf("state is in memory (DEPLOYMENT_MODE=%s) and other workers serve SUBJECT_PREFIX %q (%s): each would keep its own rate limits, locks and values",
		cfg.DeploymentMode, prefix, strings.Join(ids, ", "))
	if cfg.MemoryAllowPeers {
		m.Log.Warn().Strs("peers", ids).Msg(what + "; starting anyway (STATE_MEMORY_ALLOW_PEERS=true)")
		return nil
	}
	return errors.New(what + "; use DEPLOYMENT_MODE=distributed with REDIS_URL (or STATE_MEMORY_ALLOW_PEERS=true to run anyway)")
}
