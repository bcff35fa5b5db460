package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/jeeves-avionics/dbworker/internal/procstat"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/redis"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// path is one thing measured.
type path struct {
	name, group string
	baseline    bool
	worker      bool // goes through a worker: sample its RSS
	// service is the process that answers, whose CPU is the path's service
	// CPU: "mem" or "redis" (the workers), "noop", or "" (a direct baseline).
	service string
	fn      func(context.Context) error
}

func run(ctx context.Context, o options) error {
	schema := fmt.Sprintf("bench_%d", os.Getpid())
	admin, err := pgx.Connect(ctx, o.pgURL)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, fmt.Sprintf(`CREATE SCHEMA %[1]s;
		CREATE TABLE %[1]s.t (id int8 PRIMARY KEY, name text, active bool, score float8, created_at timestamptz, uid uuid);
		INSERT INTO %[1]s.t SELECT g, 'name-' || g, g %% 2 = 0, g * 1.5, timestamptz '2026-01-01' + g * interval '1 minute', gen_random_uuid()
		  FROM generate_series(1, 10000) g;
		ANALYZE %[1]s.t`, schema)); err != nil {
		return err
	}
	defer admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	u, _ := url.Parse(o.pgURL)
	q := u.Query()
	q.Set("search_path", schema+",public")
	u.RawQuery = q.Encode()
	pgURL := u.String()

	tmp, err := os.MkdirTemp("", "dbworker-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// nats-server runs as a process of its own, so that its CPU is its own.
	natsProc, natsURL, err := startNATS(ctx, tmp)
	if err != nil {
		return err
	}
	defer natsProc.Stop()
	// The PostgreSQL backends of this run's workers and baselines have an
	// application_name of their own: dbworker/<WORKER_ID>.
	app := fmt.Sprintf("bench-%d-", os.Getpid())
	profiling := map[string]string{} // worker: its HTTP address, with -pprof

	redisPrefix := fmt.Sprintf("bench:%d:", os.Getpid())
	start := func(prefix string, env ...string) (*exec.Cmd, error) {
		name := strings.TrimSuffix(prefix, ".")
		cmd := exec.Command(o.workerBin)
		if o.pprofDir != "" && name != "stream" {
			port, err := freePort()
			if err != nil {
				return nil, err
			}
			profiling[name] = fmt.Sprintf("127.0.0.1:%d", port)
			env = append(env, "PPROF=true", "HTTP_ADDR="+profiling[name])
		}
		cmd.Env = append(os.Environ(), append([]string{"NATS_URL=" + natsURL, "POSTGRES_URL=" + pgURL, "SUBJECT_PREFIX=" + prefix,
			"LOG_LEVEL=warn", "MAINT_CONCURRENCY=0", "WORKER_ID=" + app + name}, env...)...)
		cmd.Stderr = os.Stderr
		return cmd, cmd.Start()
	}
	memWorker, err := start("mem.")
	if err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer stopProcess(memWorker)
	redisWorker, err := start("redis.", "DEPLOYMENT_MODE=distributed", "REDIS_URL="+o.redisURL, "STATE_KEY_PREFIX="+redisPrefix)
	if err != nil {
		return err
	}
	defer stopProcess(redisWorker)

	// Callers share a few connections, as a client service would.
	var conns []*nats.Conn
	for i := 0; i < 4; i++ {
		nc, err := nats.Connect(natsURL)
		if err != nil {
			return err
		}
		defer nc.Close()
		conns = append(conns, nc)
	}
	var rr atomic.Uint64
	conn := func() *nats.Conn { return conns[rr.Add(1)%uint64(len(conns))] }
	for _, subj := range []string{"mem.db.health", "redis.db.health"} {
		if err := waitFor(ctx, conns[0], subj); err != nil {
			return err
		}
	}

	// The NATS ceiling: a micro endpoint that answers at once, with a body the
	// size of db.execute's SELECT 1 answer.
	sel1, err := conns[0].Request("mem.db.execute", []byte(`{"sql":"SELECT 1"}`), 5*time.Second)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	noop := exec.Command(self, "-noop", natsURL, "-noop-size", strconv.Itoa(len(sel1.Data)))
	noop.Stderr = os.Stderr
	if err := noop.Start(); err != nil {
		return err
	}
	defer stopProcess(noop)
	if err := waitFor(ctx, conns[0], "bench.noop"); err != nil {
		return err
	}

	pool, err := pgxpool.New(ctx, fmt.Sprintf("%s&pool_max_conns=%d&application_name=dbworker/%sdirect", pgURL, o.pgConns, app))
	if err != nil {
		return err
	}
	defer pool.Close()
	direct, err := redis.Factory(ctx, state.Options{RedisURL: o.redisURL, KeyPrefix: redisPrefix + "direct:"})
	if err != nil {
		return err
	}
	defer direct.Close()
	rc := direct.(*redis.Backend).Client()
	defer redis.DeletePrefix(context.Background(), rc, redisPrefix)

	req := func(subject, body string) func(context.Context) error {
		b := []byte(body)
		return func(ctx context.Context) error {
			m, err := conn().RequestWithContext(ctx, subject, b)
			if err != nil {
				return err
			}
			if m.Header.Get("Nats-Service-Error-Code") != "" {
				return fmt.Errorf("%s: %s", subject, m.Data)
			}
			return nil
		}
	}
	pgQuery := func(sql string) func(context.Context) error {
		return func(ctx context.Context) error {
			rows, err := pool.Query(ctx, sql)
			if err != nil {
				return err
			}
			for rows.Next() {
				if _, err := rows.Values(); err != nil {
					rows.Close()
					return err
				}
			}
			return rows.Err()
		}
	}
	pgJSON := func(sql string) func(context.Context) error {
		return func(ctx context.Context) error {
			var out []byte
			return pool.QueryRow(ctx, "SELECT json_agg(t) FROM ("+sql+") t").Scan(&out)
		}
	}
	vec := make([]string, 384)
	for i := range vec {
		vec[i] = strconv.FormatFloat(float64(i)/384, 'f', 4, 64)
	}
	vector := "[" + strings.Join(vec, ",") + "]"
	var hashes []string
	for i := 0; i < 32; i++ {
		hashes = append(hashes, fmt.Sprintf(`"h%d"`, i))
		for _, p := range []string{"mem.", "redis."} {
			if _, err := conns[0].Request(p+"cache.embedding", []byte(fmt.Sprintf(`{"op":"set","hash":"h%d","vector":%s}`, i, vector)), 5*time.Second); err != nil {
				return err
			}
		}
	}
	blob := make([]byte, 4*384)
	var keys []string
	for i := 0; i < 32; i++ {
		k := fmt.Sprintf("%sdirect:emb:h%d", redisPrefix, i)
		keys = append(keys, k)
		if err := rc.Set(ctx, k, blob, time.Hour).Err(); err != nil {
			return err
		}
	}
	const rows100 = "SELECT * FROM t WHERE id <= 100"
	const rows10k = "SELECT * FROM t"
	// Each call locks a key of its own: an acquire of a held lock is refused,
	// and contention is not what this path measures.
	var lockN atomic.Int64
	lockPair := func(prefix string) func(context.Context) error {
		return func(ctx context.Context) error {
			key := "bench-" + strconv.FormatInt(lockN.Add(1), 10)
			acq := []byte(`{"op":"acquire","key":"` + key + `","owner":"o","ttl_ms":30000}`)
			m, err := conn().RequestWithContext(ctx, prefix+"state.lock", acq)
			if err != nil {
				return err
			}
			var got messages.LockAcquireResult
			if err := json.Unmarshal(m.Data, &got); err != nil || !got.Acquired {
				return fmt.Errorf("state.lock acquire: %s", m.Data)
			}
			rel, _ := json.Marshal(messages.LockRequest{Op: messages.OpRelease, Key: key, Lease: got.Lease})
			return req(prefix+"state.lock", string(rel))(ctx)
		}
	}
	var n atomic.Int64
	key := func() string { return "k" + strconv.FormatInt(n.Add(1)%1000, 10) }
	paths := []path{
		{name: "db.execute SELECT 1", group: "select1", worker: true, service: "mem", fn: req("mem.db.execute", `{"sql":"SELECT 1"}`)},
		{name: "no-op micro endpoint (NATS ceiling)", group: "select1", baseline: true, service: "noop", fn: req("bench.noop", `{"sql":"SELECT 1"}`)},
		{name: "direct pgx SELECT 1", group: "select1", baseline: true, fn: pgQuery("SELECT 1")},

		{name: "db.execute 100 rows (objects)", group: "rows100", worker: true, service: "mem", fn: req("mem.db.execute", `{"sql":"`+rows100+`"}`)},
		{name: "db.execute 100 rows (arrays)", group: "rows100", worker: true, service: "mem", fn: req("mem.db.execute", `{"sql":"`+rows100+`","row_format":"array"}`)},
		{name: "direct pgx 100 rows", group: "rows100", baseline: true, fn: pgQuery(rows100)},
		{name: "direct pgx json_agg 100 rows", group: "rows100", baseline: true, fn: pgJSON(rows100)},

		{name: "db.execute 10k rows (objects)", group: "rows10k", worker: true, service: "mem", fn: req("mem.db.execute", `{"sql":"`+rows10k+`"}`)},
		{name: "db.execute 10k rows (arrays)", group: "rows10k", worker: true, service: "mem", fn: req("mem.db.execute", `{"sql":"`+rows10k+`","row_format":"array"}`)},
		{name: "direct pgx 10k rows", group: "rows10k", baseline: true, fn: pgQuery(rows10k)},
		{name: "direct pgx json_agg 10k rows", group: "rows10k", baseline: true, fn: pgJSON(rows10k)},

		{name: "state.ratelimit (memory)", group: "ratelimit", worker: true, service: "mem", fn: req("mem.state.ratelimit", `{"key":"bench","limit":1000000000,"window_ms":1000}`)},
		{name: "state.ratelimit (redis)", group: "ratelimit", worker: true, service: "redis", fn: req("redis.state.ratelimit", `{"key":"bench","limit":1000000000,"window_ms":1000}`)},
		{name: "no-op micro endpoint (NATS ceiling) ", group: "ratelimit", baseline: true, service: "noop", fn: req("bench.noop", `{}`)},
		{name: "direct Lua rate limit (go-redis)", group: "ratelimit", baseline: true, fn: func(ctx context.Context) error {
			_, err := direct.RateLimit(ctx, "bench", 1e9, 1, time.Second)
			return err
		}},

		{name: "state.lock acquire+release (memory)", group: "lock", worker: true, service: "mem", fn: lockPair("mem.")},
		{name: "state.lock acquire+release (redis)", group: "lock", worker: true, service: "redis", fn: lockPair("redis.")},
		{name: "direct Lua acquire+release (go-redis)", group: "lock", baseline: true, fn: func(ctx context.Context) error {
			k := state.CallerLock(key())
			got, err := direct.AcquireLock(ctx, k, "o", 30*time.Second)
			if err != nil {
				return err
			}
			_, err = direct.ReleaseLock(ctx, k, got.Lease)
			return err
		}},

		{name: "cache.embedding get 384 dims (redis)", group: "cache", worker: true, service: "redis", fn: req("redis.cache.embedding", `{"op":"get","hash":"h1"}`)},
		{name: "cache.embedding mget 32x384 (redis)", group: "cache", worker: true, service: "redis", fn: req("redis.cache.embedding", `{"op":"mget","hashes":[`+strings.Join(hashes, ",")+`]}`)},
		{name: mgetBinaryPath, group: "cache", worker: true, service: "redis", fn: req("redis.cache.embedding", `{"op":"mget","encoding":"f32le","hashes":[`+strings.Join(hashes, ",")+`]}`)},
		{name: "direct GET", group: "cache", baseline: true, fn: func(ctx context.Context) error { return rc.Get(ctx, keys[1]).Err() }},
		{name: "direct MGET 32", group: "cache", baseline: true, fn: func(ctx context.Context) error { return rc.MGet(ctx, keys...).Err() }},
	}

	pr := &procs{services: map[string]int{"mem": memWorker.Process.Pid, "redis": redisWorker.Process.Pid, "noop": noop.Process.Pid},
		nats: natsProc.Cmd.Process.Pid, redis: redisPid(ctx, rc), self: os.Getpid(), pg: admin, pgLike: "dbworker/" + app + "%"}
	var results []result
	maxRSS := 0.0
	if o.streamOnly {
		paths = nil
	}
	for _, p := range paths {
		if !o.selects(p) {
			continue
		}
		var profiled func() error
		if addr := profiling[p.service]; addr != "" {
			profiled = profile(ctx, addr, filepath.Join(o.pprofDir, slug(p.name)+".pprof"), time.Duration(len(o.callers))*(o.duration*6/5+time.Second))
		}
		for _, c := range o.callers {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r := measure(ctx, c, o.duration, p.fn, func() func(int64) *cpuPerRequest { return pr.start(ctx, p.service) })
			r.Path, r.Group, r.Baseline = strings.TrimSpace(p.name), p.group, p.baseline
			if p.worker {
				r.RSSMB = max(rssMB(memWorker.Process.Pid), rssMB(redisWorker.Process.Pid))
				maxRSS = max(maxRSS, r.RSSMB)
			}
			fmt.Fprintf(os.Stderr, "%-42s c=%-3d %9.0f ops/s  p50 %8.0fµs  p99 %8.0fµs  errors %d%s\n", r.Path, c, r.OpsPerSec, r.P50us, r.P99us, r.Errors, cpuLine(r.CPU))
			results = append(results, r)
		}
		if profiled != nil {
			if err := profiled(); err != nil {
				return fmt.Errorf("profile of %s: %w", p.name, err)
			}
		}
	}
	var stream []streamResult
	if o.only == nil || o.only["stream"] {
		stream, err = benchStream(ctx, start, natsURL, pool, 3)
	}
	if err != nil {
		return fmt.Errorf("large results: %w", err)
	}
	env := describe(ctx, admin, rc, conns[0])
	rep := report{Env: env, Results: results, Stream: stream, MaxRSSMB: maxRSS, Duration: o.duration.String(), Callers: o.callers}
	if o.only != nil {
		fmt.Println(markdown(rep))
		return nil
	}
	if o.streamOnly {
		fmt.Println(streamMarkdown(rep))
		return nil
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(o.out, "benchmarks.json"), js, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.out, "benchmarks.svg"), []byte(chart(results, o.callers)), 0o644); err != nil {
		return err
	}
	md := markdown(rep)
	fmt.Println(md)
	return writeMarkdown(filepath.Join(o.out, "benchmarks.md"), md)
}

func waitFor(ctx context.Context, nc *nats.Conn, subject string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := nc.Request(subject, nil, 500*time.Millisecond); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("no worker answers %s", subject)
}

func stopProcess(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
	}
}

// rssMB reads a process's resident set size, 0 when it cannot.
func rssMB(pid int) float64 { return memoryMB(pid, "VmRSS") }

// memoryMB reads one memory field of a process's /proc status, in MB; 0
// when it cannot.
func memoryMB(pid int, field string) float64 {
	n, _ := procstat.Memory(pid, field)
	return float64(n) / (1 << 20)
}

type environment struct {
	Date     string `json:"date"`
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	Go       string `json:"go"`
	Postgres string `json:"postgres"`
	Redis    string `json:"redis"`
	NATS     string `json:"nats"`
}

func describe(ctx context.Context, pg *pgx.Conn, rc goredis.UniversalClient, nc *nats.Conn) environment {
	e := environment{Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Cores: runtime.NumCPU(), Go: runtime.Version(), NATS: nc.ConnectedServerVersion()}
	_ = pg.QueryRow(ctx, "SHOW server_version").Scan(&e.Postgres)
	if info, err := rc.Info(ctx, "server").Result(); err == nil {
		for _, l := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
				e.Redis = v
			}
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				e.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return e
}
