package maintenance

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// JetStream API error codes the set-up reads (nats-server's errors.json).
const (
	jsErrClusterNotAssigned    = 10007 // JetStream cluster not assigned to this server
	jsErrClusterNotAvailable   = 10008 // JetStream system temporarily unavailable (no meta leader yet)
	jsErrClusterNotLeader      = 10009 // JetStream cluster can not handle request
	jsErrConsumerNameInUse     = 10013 // consumer name already in use (a concurrent create)
	jsErrInsufficientResources = 10023 // too few servers (up) for the replicas
	jsErrReplicasNotSupported  = 10074 // replicas > 1 not supported in non-clustered mode
	jsErrMemberChangeInFlight  = 10202 // cluster member change is in progress
	jsErrReconfigureInProgress = 10226 // stream reconfiguration already in progress
)

// Retry pacing of the set-up: each request gets attemptTimeout (as long as
// nats.go's own default), and waits between attempts grow from backoffMin to
// backoffMax, with jitter so that workers started together spread out.
const (
	attemptTimeout = 5 * time.Second
	backoffMin     = 100 * time.Millisecond
	backoffMax     = 2 * time.Second
)

// errAgain asks retry for another attempt at once: the state changed under
// the attempt (a stream created meanwhile by another process).
var errAgain = errors.New("changed meanwhile; again")

// retry runs attempt until it returns nil, a final error, or ctx ends. Each
// attempt runs under attemptTimeout. Errors worth another attempt are those
// of a cluster or server still starting, or of a race with another process
// doing the same (transient); the first is logged at warn, later ones at
// debug. Once ctx ends, the last error is returned.
func retry(ctx context.Context, log zerolog.Logger, what string, attempt func(ctx context.Context) error) error {
	wait := backoffMin
	start := time.Now()
	for n := 1; ; n++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := attempt(actx)
		cancel()
		switch {
		case err == nil:
			if n > 1 {
				log.Info().Int("attempts", n).Dur("took", time.Since(start)).Msgf("%s set up", what)
			}
			return nil
		case errors.Is(err, errAgain):
			select { // not a tight loop, should the server still say "not found"
			case <-ctx.Done():
				return fmt.Errorf("%s: gave up after %d attempts: %w", what, n, ctx.Err())
			case <-time.After(backoffMin):
			}
			continue
		case !transient(err):
			return fmt.Errorf("%s: %w", what, err)
		}
		ev := log.Debug()
		if n == 1 {
			ev = log.Warn()
		}
		ev.Err(err).Int("attempt", n).Msgf("%s: retrying", what)
		d := wait/2 + rand.N(wait/2+1)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: gave up after %d attempts in %s: %w", what, n, time.Since(start).Round(time.Millisecond), err)
		case <-time.After(d):
		}
		wait = min(2*wait, backoffMax)
	}
}

// transient reports an error that another attempt may not meet: a request
// that timed out or found no JetStream responder (a server starting), a
// cluster without a leader or with too few servers up yet, a concurrent
// create of the same consumer.
func transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrConnectionReconnecting) {
		return true
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case jsErrClusterNotAssigned, jsErrClusterNotAvailable, jsErrClusterNotLeader, jsErrConsumerNameInUse,
		jsErrInsufficientResources, jsErrMemberChangeInFlight, jsErrReconfigureInProgress:
		return true
	}
	return apiErr.Code == 503
}

// isAPIError reports a JetStream API error of code.
func isAPIError(err error, code jetstream.ErrorCode) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == code
}
