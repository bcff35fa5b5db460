package natsserver

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

func TestOptionsFromURL(t *testing.T) {
	o, err := OptionsFromURL("nats://127.0.0.1:4333, nats://other:4222")
	require.NoError(t, err)
	require.Equal(t, Options{Host: "127.0.0.1", Port: 4333}, o)
	o, err = OptionsFromURL("nats://localhost")
	require.NoError(t, err)
	require.Equal(t, 4222, o.Port)
	_, err = OptionsFromURL("::nope")
	require.Error(t, err)
}

func TestStartServesJetStream(t *testing.T) {
	s, err := Start(Options{Port: -1, StoreDir: t.TempDir(), MaxPayload: 4 << 20})
	require.NoError(t, err)
	defer s.Shutdown()
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	require.EqualValues(t, 4<<20, nc.MaxPayload())
	js, err := nc.JetStream()
	require.NoError(t, err)
	_, err = js.AccountInfo()
	require.NoError(t, err)
}

// TestShippedConfig loads the repository's nats-server.conf with the server's
// own parser and runs a server from it.
func TestShippedConfig(t *testing.T) {
	opts, err := server.ProcessConfigFile("../../nats-server.conf")
	require.NoError(t, err)
	require.True(t, opts.JetStream)
	require.EqualValues(t, 8<<20, opts.MaxPayload)
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, -1
	opts.StoreDir = t.TempDir()
	opts.NoSigs, opts.NoLog = true, true
	s, err := server.NewServer(opts)
	require.NoError(t, err)
	go s.Start()
	defer s.Shutdown()
	require.True(t, s.ReadyForConnections(10*time.Second))
	require.True(t, s.JetStreamEnabled())
}

func TestStartFailsFastOnATakenPort(t *testing.T) {
	s, err := Start(Options{Port: -1, StoreDir: t.TempDir()})
	require.NoError(t, err)
	defer s.Shutdown()
	start := time.Now()
	_, err = Start(Options{Port: s.Addr().(*net.TCPAddr).Port, StoreDir: t.TempDir()})
	require.ErrorContains(t, err, "address already in use")
	require.Less(t, time.Since(start), 5*time.Second)
}
