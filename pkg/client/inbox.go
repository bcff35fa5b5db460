package client

import (
	"strings"

	"github.com/nats-io/nats.go"
)

// InboxPrefixEnv is the variable dbworker's own programs read their inbox
// prefix from; services may read it too.
const InboxPrefixEnv = "NATS_INBOX_PREFIX"

// InboxPrefix returns the connection option that makes the connection's reply
// inboxes start with prefix, such as "_INBOX_orders". On a broker that gives
// each user an inbox of its own (dbworker's nats-server.conf gives user U
// "_INBOX_U") a client must use it, or no answer reaches it. Every request of
// a Client comes back on its connection's inboxes, so the Client honours the
// prefix with nothing more to set. "" keeps nats.go's "_INBOX"; a trailing
// dot is dropped.
//
//	nc, err := nats.Connect(url, nats.UserInfo("orders", pw),
//		client.InboxPrefix(os.Getenv(client.InboxPrefixEnv)))
func InboxPrefix(prefix string) nats.Option {
	prefix = strings.TrimSuffix(prefix, ".")
	if prefix == "" {
		return func(*nats.Options) error { return nil }
	}
	return nats.CustomInboxPrefix(prefix)
}
