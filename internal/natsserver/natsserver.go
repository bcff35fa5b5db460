// Package natsserver runs an in-process nats-server with JetStream, for a
// one-machine setup (worker -embedded) and for tests.
package natsserver

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configure an embedded server.
type Options struct {
	// Host and Port to listen on. Port -1 picks a free port.
	Host string
	Port int
	// StoreDir holds JetStream's files. Defaults to a folder under the OS temp dir.
	StoreDir string
	// MaxPayload is the largest message the server accepts. Defaults to 1 MiB.
	MaxPayload int32
}

// OptionsFromURL takes host and port from a nats:// URL (the first of a comma
// separated list).
func OptionsFromURL(rawURL string) (Options, error) {
	first := strings.TrimSpace(strings.Split(rawURL, ",")[0])
	u, err := url.Parse(first)
	if err != nil || u.Host == "" {
		return Options{}, fmt.Errorf("embedded nats: cannot take an address from NATS_URL %q", first)
	}
	host, portStr, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, portStr = u.Host, "4222"
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return Options{}, fmt.Errorf("embedded nats: bad port in NATS_URL %q", first)
	}
	return Options{Host: host, Port: port}, nil
}

// Start runs a server and waits until it accepts connections.
func Start(o Options) (*server.Server, error) {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.StoreDir == "" {
		o.StoreDir = filepath.Join(os.TempDir(), "dbworker-nats")
	}
	if o.Port > 0 { // fail fast, with the reason, when the address is taken
		l, err := net.Listen("tcp", net.JoinHostPort(o.Host, strconv.Itoa(o.Port)))
		if err != nil {
			return nil, fmt.Errorf("embedded nats: %w", err)
		}
		l.Close()
	}
	opts := &server.Options{
		ServerName: "dbworker-embedded",
		Host:       o.Host,
		Port:       o.Port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		MaxPayload: o.MaxPayload,
		NoSigs:     true,
		NoLog:      true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("embedded nats: not ready within 10s")
	}
	return s, nil
}

// Program finds the nats-server program, for running a server as a process
// of its own (tests of a cluster, the benchmarks): TEST_NATS_SERVER, else
// nats-server on the PATH, else Debian's /usr/sbin/nats-server (`make
// services` installs it).
func Program() (string, error) {
	if p := os.Getenv("TEST_NATS_SERVER"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p, nil
	}
	const debian = "/usr/sbin/nats-server"
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	return "", errors.New("the nats-server program is not on the PATH nor at " + debian + " (run `make services`, or set TEST_NATS_SERVER)")
}
