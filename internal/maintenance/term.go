package maintenance

import (
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jeeves-avionics/dbworker/internal/natsversion"
)

// term stops a job's redelivery, giving the server the reason (it shows in
// the MSG_TERMINATED advisory) where the server understands one. A server
// older than natsversion.TermReason (2.10.4; Debian 12 ships 2.9.10) ignores
// a termination with a reason and redelivers the job after its AckWait,
// forever: it gets a plain Term.
func (s *Service) term(msg jetstream.Msg, reason string) {
	if natsversion.Supports(s.nc, natsversion.TermReason) {
		_ = msg.TermWithReason(reason)
		return
	}
	_ = msg.Term()
}
