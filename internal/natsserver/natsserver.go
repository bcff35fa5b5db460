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
	"syscall"
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

// Process is the nats-server program (Program) running as a process of its
// own, its output in a log file.
type Process struct {
	Cmd *exec.Cmd
	// LogPath is the file its output goes to.
	LogPath string
	log     *os.File
}

// StartProcess writes conf (nats-server's configuration file format) to
// dir/name.conf and runs the nats-server program on it, its output to
// dir/name.log. It does not wait for the server to listen.
func StartProcess(dir, name, conf string) (*Process, error) {
	bin, err := Program()
	if err != nil {
		return nil, err
	}
	confPath := filepath.Join(dir, name+".conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	p := &Process{LogPath: filepath.Join(dir, name+".log")}
	if p.log, err = os.Create(p.LogPath); err != nil {
		return nil, err
	}
	p.Cmd = exec.Command(bin, "-c", confPath)
	p.Cmd.Stdout, p.Cmd.Stderr = p.log, p.log
	if err := p.Cmd.Start(); err != nil {
		p.log.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	return p, nil
}

// Stop asks the server to stop (SIGTERM), kills it when it has not within
// 10 s, and waits for it.
func (p *Process) Stop() {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-done
	}
	p.log.Close()
}
