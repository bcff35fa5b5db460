package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/jeeves-avionics/dbworker/internal/natsserver"
	"github.com/jeeves-avionics/dbworker/internal/procstat"
)

// cpuPerRequest is the CPU time, in µs per request, each process spent on a
// point: the service that answered (a worker, or the no-op endpoint),
// nats-server, the PostgreSQL backends of the workers and of the direct
// baselines, redis-server and the callers (this process).
type cpuPerRequest struct {
	Service  float64 `json:"service"`
	NATS     float64 `json:"nats_server"`
	Postgres float64 `json:"postgres"`
	Redis    float64 `json:"redis"`
	Callers  float64 `json:"callers"`
	// PostgresGone counts backends that exited during the point: their
	// time since the point began is missing from Postgres.
	PostgresGone int `json:"postgres_backends_gone,omitempty"`
}

// Total is the CPU of every process per request.
func (c cpuPerRequest) Total() float64 { return c.Service + c.NATS + c.Postgres + c.Redis + c.Callers }

// procs are the processes a point's CPU is read from.
type procs struct {
	services map[string]int // "mem", "redis", "noop", "stream": pid
	nats     int
	redis    int // 0 when Redis's pid is not on this machine
	self     int
	// pg finds the pids of the PostgreSQL backends serving this run's
	// workers and baselines, by application_name.
	pg      *pgx.Conn
	pgLike  string
	pgWarns int
}

// cpuSample is the CPU time of every process at one moment.
type cpuSample struct {
	services map[string]procstat.Sample
	nats, redis, self,
	pg procstat.Sample
}

func (p *procs) backends(ctx context.Context) []int {
	rows, err := p.pg.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1", p.pgLike)
	if err != nil {
		if p.pgWarns++; p.pgWarns == 1 {
			fmt.Fprintln(os.Stderr, "bench: no PostgreSQL backends' CPU:", err)
		}
		return nil
	}
	pids, _ := pgx.CollectRows(rows, pgx.RowTo[int])
	return pids
}

func (p *procs) sample(ctx context.Context, alsoPG []int) cpuSample {
	s := cpuSample{services: map[string]procstat.Sample{}}
	for name, pid := range p.services {
		s.services[name] = procstat.Read([]int{pid})
	}
	s.nats = procstat.Read([]int{p.nats})
	s.self = procstat.Read([]int{p.self})
	if p.redis != 0 {
		s.redis = procstat.Read([]int{p.redis})
	}
	// A backend seen at the start and gone now is read (and missed) too.
	s.pg = procstat.Read(append(p.backends(ctx), alsoPG...))
	return s
}

// start samples every process before a point; the function it returns
// samples them after it and divides by the requests made.
func (p *procs) start(ctx context.Context, service string) func(ops int64) *cpuPerRequest {
	before := p.sample(ctx, nil)
	return func(ops int64) *cpuPerRequest {
		var pgPids []int
		for pid := range before.pg {
			pgPids = append(pgPids, pid)
		}
		after := p.sample(ctx, pgPids)
		if ops == 0 {
			return nil
		}
		per := func(d procstat.Delta) float64 { return float64(d.Total.Nanoseconds()) / 1e3 / float64(ops) }
		pg := after.pg.Since(before.pg)
		c := &cpuPerRequest{
			NATS: per(after.nats.Since(before.nats)), Postgres: per(pg), Redis: per(after.redis.Since(before.redis)),
			Callers: per(after.self.Since(before.self)), PostgresGone: pg.Gone,
		}
		if service != "" {
			c.Service = per(after.services[service].Since(before.services[service]))
		}
		return c
	}
}

// redisPid is redis-server's pid (INFO server's process_id), when that
// process is on this machine.
func redisPid(ctx context.Context, rc goredis.UniversalClient) int {
	info, err := rc.Info(ctx, "server").Result()
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "process_id:"); ok {
			pid, _ := strconv.Atoi(v)
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.HasPrefix(string(b), "redis") {
				return pid
			}
		}
	}
	fmt.Fprintln(os.Stderr, "bench: redis-server is not a process of this machine: no Redis CPU")
	return 0
}

// startNATS runs nats-server (natsserver.StartProcess) as a process of its
// own, with JetStream and an 8 MB max payload, on a free port of loopback,
// so that its CPU is its own. Its log goes to a file: -only runs print their
// report on stdout.
func startNATS(ctx context.Context, dir string) (*natsserver.Process, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	conf := fmt.Sprintf("listen: 127.0.0.1:%d\nmax_payload: 8MB\njetstream { store_dir: %q }\n", port, filepath.Join(dir, "js"))
	p, err := natsserver.StartProcess(dir, "nats", conf)
	if err != nil {
		return nil, "", err
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	for deadline := time.Now().Add(15 * time.Second); ; {
		nc, err := nats.Connect(url, nats.Timeout(time.Second))
		if err == nil {
			nc.Close()
			return p, url, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.Stop()
			return nil, "", fmt.Errorf("nats-server (log %s) does not answer on %s: %w", p.LogPath, url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freePort returns a TCP port free on loopback now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cpuLine is a point's CPU per request for the progress lines.
func cpuLine(c *cpuPerRequest) string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf("  CPU µs/req: service %.1f nats %.1f pg %.1f redis %.1f callers %.1f", c.Service, c.NATS, c.Postgres, c.Redis, c.Callers)
}

// profile fetches a CPU profile of the worker serving on addr (PPROF=true)
// for d, into file; the function it returns waits for it.
func profile(ctx context.Context, addr, file string, d time.Duration) func() error {
	done := make(chan error, 1)
	go func() {
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds()+0.999))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			done <- err
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			done <- fmt.Errorf("%s: %s", url, resp.Status)
			return
		}
		b, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(file, b, 0o644)
		}
		done <- err
	}()
	return func() error { return <-done }
}

// slug makes a path's name a file name: letters, digits and dots, with a
// '_' for each run of anything else.
func slug(name string) string {
	var b strings.Builder
	for _, r := range strings.TrimSpace(name) {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' {
			b.WriteRune(r)
		} else if s := b.String(); s != "" && !strings.HasSuffix(s, "_") {
			b.WriteByte('_')
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}
