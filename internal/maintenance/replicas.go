package maintenance

import (
	"net/url"

	"github.com/nats-io/nats.go"
)

// ReplicasAuto, as Config.Replicas (JS_REPLICAS=auto), creates the streams
// with min(3, cluster size) replicas: 1 on a single server, 3 on a cluster of
// three or more.
const ReplicasAuto = 0

// autoReplicas is min(3, the size of the cluster nc is connected to).
func autoReplicas(nc *nats.Conn) int { return min(3, clusterSize(nc)) }

// clusterSize is how many servers the cluster nc is connected to has, as the
// client sees it: 1 for a server in no cluster (its INFO names none);
// otherwise the distinct addresses of the connection's server pool, which
// holds NATS_URL's servers and those the cluster advertises to clients (the
// INFO's connect_urls). A cluster that does not advertise (no_advertise),
// reached through one address, looks like one server: set JS_REPLICAS there.
// A server advertising several addresses of its own may look like more than
// one; SetupStreams falls back to 1 replica if JetStream turns out not to be
// clustered.
func clusterSize(nc *nats.Conn) int {
	if nc.ConnectedClusterName() == "" {
		return 1
	}
	seen := map[string]bool{}
	for _, s := range nc.Servers() {
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			seen[u.Host] = true
		}
	}
	return max(1, len(seen))
}
