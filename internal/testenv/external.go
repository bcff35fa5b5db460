package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jeeves-avionics/dbworker/internal/natsserver"
)

// ExternalNATSURLDefault is the nats-server `make services` runs (Debian's
// package: 2.9.10 on Debian 12, and so in CI).
const ExternalNATSURLDefault = "nats://127.0.0.1:4222"

// ExternalNATSURL is the external server tests use: TEST_NATS_URL, else
// ExternalNATSURLDefault.
func ExternalNATSURL() string {
	if v := os.Getenv("TEST_NATS_URL"); v != "" {
		return v
	}
	return ExternalNATSURLDefault
}

// ConnectExternalNATS connects to the external nats-server, closed when the
// test ends. The server is shared with every other test (and developer):
// isolate by a subject prefix of the test's own (NewSubjectPrefix) and
// delete what the test created. An unreachable server is Unavailable.
func ConnectExternalNATS(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ExternalNATSURL(), nats.Name("test/"+t.Name()), nats.Timeout(2*time.Second))
	if err != nil {
		Unavailable(t, "nats-server on "+ExternalNATSURL(), err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// DeleteStreamsOnCleanup deletes the named streams on nc's server when the
// test ends, those that exist.
func DeleteStreamsOnCleanup(t testing.TB, nc *nats.Conn, names ...string) {
	t.Helper()
	t.Cleanup(func() {
		js, err := jetstream.New(nc)
		if err != nil {
			t.Errorf("jetstream: %v", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, name := range names {
			if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				t.Errorf("delete stream %s: %v", name, err)
			}
		}
	})
}

// NATSServerBinary is the nats-server program tests run as processes:
// TEST_NATS_SERVER, else nats-server on the PATH, else Debian's
// /usr/sbin/nats-server (`make services` installs it). None is Unavailable.
func NATSServerBinary(t testing.TB) string {
	t.Helper()
	p, err := natsserver.Program()
	if err != nil {
		Unavailable(t, "the nats-server program", err)
	}
	return p
}

// NewNATSCluster runs n nats-server processes (NATSServerBinary) with
// JetStream, routed to each other on loopback, each with a store of its
// own, and returns their client URLs once JetStream has a meta leader. They
// are stopped when the test ends; their logs are printed if it failed.
func NewNATSCluster(t *testing.T, n int) []string {
	t.Helper()
	NATSServerBinary(t) // none: Unavailable
	ports := freePorts(t, 2*n)
	var routes []string
	for i := 0; i < n; i++ {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[n+i]))
	}
	dir := t.TempDir()
	var urls []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("n%d", i+1)
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
jetstream { store_dir: %q, max_memory_store: 64MB, max_file_store: 1GB }
cluster {
  name: dbworker-test
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, name, ports[i], filepath.Join(dir, name), ports[n+i], strings.Join(routes, ", "))
		p, err := natsserver.StartProcess(dir, name, conf)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			p.Stop()
			if t.Failed() {
				out, _ := os.ReadFile(p.LogPath)
				t.Logf("%s log:\n%s", name, tail(out, 4000))
			}
		})
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	waitForMetaLeader(t, strings.Join(urls, ","))
	return urls
}

// waitForMetaLeader waits until the cluster answers JetStream account info,
// which it does once it has a meta leader.
func waitForMetaLeader(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		nc, err := nats.Connect(url, nats.Timeout(time.Second))
		if err == nil {
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
			nc.Close()
			if err == nil {
				return
			}
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the nats-server cluster has no JetStream meta leader after 30s: %v", last)
}

// freePorts returns n TCP ports free on loopback now.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
