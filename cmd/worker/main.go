// Command worker serves dbworker's endpoints on NATS. Configuration comes from
// the environment; `worker -h` lists every variable with its default.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jeeves-avionics/dbworker/internal/config"
	"github.com/jeeves-avionics/dbworker/internal/worker"
)

// checkReady asks a running worker's /readyz, for container health checks in
// images without curl.
func checkReady(addr string) int {
	if addr == "" {
		fmt.Fprintln(os.Stderr, "worker: -ready needs HTTP_ADDR")
		return 2
	}
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		fmt.Fprintf(os.Stderr, "worker: not ready: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "worker: not ready: %s", body)
		return 1
	}
	return 0
}

func main() {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	embedded := fs.Bool("embedded", false, "start an in-process nats-server with JetStream on NATS_URL's address (same as NATS_EMBEDDED=true)")
	version := fs.Bool("version", false, "print the version and exit")
	ready := fs.Bool("ready", false, "check /readyz on HTTP_ADDR and exit 0 when ready (a container health check)")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: worker [-embedded] [-ready] [-version]\n\nServes db.execute, db.health and the other dbworker endpoints on NATS.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(out, "\nEnvironment:\n")
		_ = config.Usage(out)
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if *version {
		fmt.Println(worker.Version)
		return
	}
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintf(os.Stderr, "worker: invalid configuration: %v\n", err)
		os.Exit(2)
	}
	if *ready {
		os.Exit(checkReady(cfg.HTTPAddr))
	}
	if *embedded {
		cfg.NATSEmbedded = true
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain(cfg)
	if err := m.Run(ctx); err != nil {
		m.Close()
		fmt.Fprintf(os.Stderr, "worker: %v\n", err)
		os.Exit(1)
	}
	<-ctx.Done()
	stop() // a second signal kills at once
	if err := m.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "worker: shutdown: %v\n", err)
		os.Exit(1)
	}
}
