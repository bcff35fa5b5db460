package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// DiscoveryWaitDefault is how long FindPeers waits for answers when some
// instance of the service answers but none serves the prefix (other
// environments on the same NATS). With no instance at all the server says so
// at once.
const DiscoveryWaitDefault = time.Second

// Peer is an instance of the service found on the bus, serving a prefix.
type Peer struct {
	// ID is the micro instance id; WorkerID its WORKER_ID (metadata).
	ID, WorkerID string
}

// ErrDiscoveryRefused is the error of a connection whose user may not
// publish $SRV requests (the shipped nats-server.conf's worker user): the
// bus cannot be asked.
var ErrDiscoveryRefused = errors.New("the broker refused the $SRV discovery request")

// FindPeers asks the bus which instances of the micro service named service
// serve prefix (their subject_prefix metadata; "" is no prefix), with a
// $SRV.PING.<service> request whose answers it reads for at most wait. It
// returns once one is found, at once when no instance of the service is
// subscribed at all, or after wait with none.
func FindPeers(ctx context.Context, nc *nats.Conn, service, prefix string, wait time.Duration) ([]Peer, error) {
	subject, err := micro.ControlSubject(micro.PingVerb, service, "")
	if err != nil {
		return nil, err
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("discover peers: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, fmt.Errorf("discover peers: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var peers []Peer
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if errors.Is(err, nats.ErrNoResponders) {
			return nil, nil // no instance of the service at all
		}
		if err != nil {
			if ctx.Err() == nil {
				return peers, fmt.Errorf("discover peers: %w", err)
			}
			if last := nc.LastError(); errors.Is(last, nats.ErrPermissionViolation) && strings.Contains(last.Error(), subject) {
				return nil, fmt.Errorf("%w (%v)", ErrDiscoveryRefused, last)
			}
			return peers, nil
		}
		if msg.Header.Get("Status") == "503" {
			return nil, nil // as above, should the client not turn it into an error
		}
		var ping micro.Ping
		if json.Unmarshal(msg.Data, &ping) != nil || ping.Metadata["subject_prefix"] != prefix {
			continue
		}
		peers = append(peers, Peer{ID: ping.ID, WorkerID: ping.Metadata["worker_id"]})
		return peers, nil
	}
}
