package testenv

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// ShippedPasswords are the passwords NewShippedNATS gives the users of the
// shipped nats-server.conf.
var ShippedPasswords = map[string]string{
	"worker": "w-secret", "worker_js": "wj-secret", "publisher": "p-secret", "ops": "o-secret",
	"orders": "or-secret", "billing": "b-secret",
}

// NewShippedNATS runs a nats-server from the repository's nats-server.conf
// (at path, relative to the test's package), with ShippedPasswords in the
// environment, on a free port and a JetStream store of the test's own.
func NewShippedNATS(t *testing.T, path string) *server.Server {
	t.Helper()
	for user, pw := range ShippedPasswords {
		t.Setenv("NATS_"+strings.ToUpper(user)+"_PASSWORD", pw)
	}
	opts, err := server.ProcessConfigFile(path)
	require.NoError(t, err)
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, -1
	opts.StoreDir = t.TempDir()
	opts.NoSigs, opts.NoLog = true, true
	s, err := server.NewServer(opts)
	require.NoError(t, err)
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	require.True(t, s.ReadyForConnections(10*time.Second))
	return s
}

// ShippedInbox is the inbox prefix the shipped nats-server.conf gives user.
func ShippedInbox(user string) string { return "_INBOX_" + user }

// ConnectAs connects to a NewShippedNATS server as user, with the user's
// inbox prefix, plus opts.
func ConnectAs(t testing.TB, s *server.Server, user string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{nats.UserInfo(user, ShippedPasswords[user]), nats.CustomInboxPrefix(ShippedInbox(user))}, opts...)
	nc, err := nats.Connect(s.ClientURL(), opts...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}
