package natsserver_test

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/natsserver"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

func TestMain(m *testing.M) { testenv.VerifyNoLeaks(m) }

func TestOptionsFromURL(t *testing.T) {
	o, err := natsserver.OptionsFromURL("nats://127.0.0.1:4333, nats://other:4222")
	require.NoError(t, err)
	require.Equal(t, natsserver.Options{Host: "127.0.0.1", Port: 4333}, o)
	o, err = natsserver.OptionsFromURL("nats://localhost")
	require.NoError(t, err)
	require.Equal(t, 4222, o.Port)
	_, err = natsserver.OptionsFromURL("::nope")
	require.Error(t, err)
}

func TestStartServesJetStream(t *testing.T) {
	s, err := natsserver.Start(natsserver.Options{Port: -1, StoreDir: t.TempDir(), MaxPayload: 4 << 20})
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

func TestStartFailsFastOnATakenPort(t *testing.T) {
	s, err := natsserver.Start(natsserver.Options{Port: -1, StoreDir: t.TempDir()})
	require.NoError(t, err)
	defer s.Shutdown()
	start := time.Now()
	_, err = natsserver.Start(natsserver.Options{Port: s.Addr().(*net.TCPAddr).Port, StoreDir: t.TempDir()})
	require.ErrorContains(t, err, "address already in use")
	require.Less(t, time.Since(start), 5*time.Second)
}
