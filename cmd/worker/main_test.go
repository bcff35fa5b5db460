package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

var workerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dbworker-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workerBin = filepath.Join(dir, "worker")
	if out, err := exec.Command("go", "build", "-o", workerBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build worker: %v\n%s", err, out)
		os.Exit(1)
	}
	testenv.VerifyNoLeaks(m, func() { os.RemoveAll(dir) })
}

func TestHelpListsEveryVariable(t *testing.T) {
	out, err := exec.Command(workerBin, "-h").CombinedOutput()
	require.NoError(t, err)
	for _, v := range []string{"POSTGRES_URL", "POSTGRES_POOL_SIZE", "NATS_URL", "DB_EXECUTE_MODE", "-embedded"} {
		require.Contains(t, string(out), v)
	}
	require.Contains(t, string(out), "Usage: worker [-embedded] [-ready] [-version]")
	require.Contains(t, string(out), "-ready\n")
}

// TestBadValuesNameWhatIsAccepted: a value of the wrong type stops start-up
// with one line naming the variable and what it takes.
func TestBadValuesNameWhatIsAccepted(t *testing.T) {
	for _, c := range [][2]string{
		{"POSTGRES_POOL_SIZE=ten", `worker: invalid configuration: POSTGRES_POOL_SIZE: must be a whole number, such as 10, got "ten"`},
		{"NATS_EMBEDDED=yes", `worker: invalid configuration: NATS_EMBEDDED: must be true or false, got "yes"`},
		{"NATS_URL=htp://x", `worker: invalid configuration: NATS_URL: scheme must be nats://, tls://, ws:// or wss://, got "htp://"`},
		// micro refused it only once the worker had started its maintenance.
		{"SERVICE_NAME=bad name", `worker: invalid configuration: SERVICE_NAME: "bad name": a micro service name is letters, digits, '-' and '_' only`},
	} {
		cmd := exec.Command(workerBin)
		cmd.Env = append(os.Environ(), c[0])
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, c[0])
		require.Equal(t, 2, ee.ExitCode(), c[0])
		require.Equal(t, c[1], strings.TrimSpace(string(out)))
	}
}

// TestMisspeltVariableWarns: a variable close to one of ours is named in a
// warning at start, with the right name.
func TestMisspeltVariableWarns(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := l.Addr().String()
	l.Close()
	cmd := exec.Command(workerBin)
	// Nothing listens on NATS_URL: the worker warns, then fails to connect.
	cmd.Env = append(os.Environ(), "DEPLOYMNT_MODE=distributed", "NATS_URL=nats://"+closed, "LOG_FORMAT=json")
	out, _ := cmd.CombinedOutput()
	require.Contains(t, string(out), `"variable":"DEPLOYMNT_MODE","did_you_mean":"DEPLOYMENT_MODE"`)
	require.Contains(t, string(out), "DEPLOYMNT_MODE is not a dbworker variable and is ignored; did you mean DEPLOYMENT_MODE?")
}

func TestInvalidConfigStopsWithOneLine(t *testing.T) {
	cmd := exec.Command(workerBin)
	cmd.Env = append(os.Environ(), "POSTGRES_POOL_SIZE=0", "POSTGRES_PASSWORD=hunter2")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 2, ee.ExitCode())
	msg := strings.TrimSpace(stderr.String())
	require.Contains(t, msg, "POSTGRES_POOL_SIZE")
	require.NotContains(t, msg, "\n")
	require.NotContains(t, msg, "hunter2")
}

// TestSIGTERMDrains runs the real binary, fills it with slow requests and
// sends SIGTERM: every request already received is answered and the process
// exits cleanly.
func TestSIGTERMDrains(t *testing.T) {
	pg := testenv.NewPostgres(t)
	ns := testenv.NewNATS(t)
	nc := testenv.Connect(t, ns)
	id := "drain-" + pg.Schema
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	httpAddr := l.Addr().String()
	l.Close()
	ready := func() error {
		c := exec.Command(workerBin, "-ready")
		c.Env = append(os.Environ(), "HTTP_ADDR="+httpAddr)
		return c.Run()
	}
	cmd, logs := startWorker(t, nc, "NATS_URL="+ns.ClientURL(), "POSTGRES_URL="+pg.URL, "WORKER_ID="+id, "HTTP_ADDR="+httpAddr,
		"WORKER_MAX_CONCURRENT=4", "POSTGRES_POOL_SIZE=4", "POSTGRES_MAX_OVERFLOW=0", "LOG_LEVEL=debug")
	require.Eventually(t, func() bool { return ready() == nil }, 10*time.Second, 50*time.Millisecond, "worker -ready: %s", logs)

	const n = 10
	inbox := nc.NewRespInbox()
	replies, err := nc.SubscribeSync(inbox + ".*")
	require.NoError(t, err)
	for i := 0; i < n; i++ {
		require.NoError(t, nc.PublishRequest("db.execute", fmt.Sprintf("%s.%d", inbox, i), []byte(`{"sql":"SELECT pg_sleep(0.5)"}`)))
	}
	require.NoError(t, nc.Flush())
	// Wait until the pool is saturated: four sleeps running in PostgreSQL.
	activity := watchActivity(t, pg.URL)
	require.Eventually(t, func() bool { return activity("dbworker/"+id, "%pg_sleep%") == 4 }, 10*time.Second, 20*time.Millisecond)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	for i := 0; i < n; i++ {
		msg, err := replies.NextMsg(10 * time.Second)
		require.NoError(t, err, "request %d of %d lost; logs:\n%s", i, n, logs)
		require.Empty(t, msg.Header.Get("Nats-Service-Error-Code"), "%s", msg.Data)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "logs:\n%s", logs)
	case <-time.After(15 * time.Second):
		t.Fatalf("worker did not exit after draining; logs:\n%s", logs)
	}
	require.Contains(t, logs.String(), "drained")
	require.Error(t, ready(), "a stopped worker is not ready")
}

// TestKilledWorkerJobIsRedone: a worker killed during a VACUUM leaves its job
// unacked and its lock to expire; another worker then runs the job once.
func TestKilledWorkerJobIsRedone(t *testing.T) {
	pg := testenv.NewPostgres(t)
	ns := testenv.NewNATS(t)
	nc := testenv.Connect(t, ns)
	prefix := testenv.NewRedisPrefix(t)
	ctx := context.Background()
	pg.Exec(t, "CREATE TABLE k (x int); INSERT INTO k SELECT generate_series(1, 1000)")

	release := holdVacuumOff(t, pg.URL, "k") // the run lasts until we let go

	start := func(id string) (*exec.Cmd, *bytes.Buffer) {
		return startWorker(t, nc, "NATS_URL="+ns.ClientURL(), "POSTGRES_URL="+pg.URL, "WORKER_ID="+id,
			"DEPLOYMENT_MODE=distributed", "REDIS_URL="+testenv.RedisURL(), "STATE_KEY_PREFIX="+prefix,
			"MAINT_LOCK_TTL=2s", "MAINT_ACK_WAIT=2s", "MAINT_LOCK_TIMEOUT=60s", "MAINT_SCHEMAS="+pg.Schema, "LOG_LEVEL=debug")
	}
	a, aLogs := start("a-" + pg.Schema)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := js.Stream(ctx, "DB_JOBS")
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "worker a did not set up the streams: %s", aLogs)
	_, err = js.Publish(ctx, "db.vacuum.jobs", []byte(`{"table":"k","skip_locked":false}`), jetstream.WithMsgID("job-k-1"))
	require.NoError(t, err)

	activity := watchActivity(t, pg.URL)
	require.Eventually(t, func() bool { return activity("dbworker/a-"+pg.Schema+"/vacuum", "VACUUM%") > 0 }, 20*time.Second, 20*time.Millisecond, "logs: %s", aLogs)
	require.NoError(t, a.Process.Kill())
	_ = a.Wait()
	release()

	_, bLogs := start("b-" + pg.Schema)
	stream, err := js.Stream(ctx, "DB_VACUUM")
	require.NoError(t, err)
	var res messages.VacuumResult
	require.Eventually(t, func() bool {
		msg, err := stream.GetLastMsgForSubject(ctx, "db.vacuum.results."+pg.Schema+".k")
		return err == nil && json.Unmarshal(msg.Data, &res) == nil
	}, 30*time.Second, 100*time.Millisecond, "no result; worker b logs:\n%s", bLogs)
	require.Equal(t, messages.StatusOK, res.Status, "%+v", res)
	require.Equal(t, "job-k-1", res.JobID)
	require.Equal(t, "b-"+pg.Schema, res.WorkerID)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, info.State.Msgs, "exactly one result: the killed run stored none")
	require.Eventually(t, func() bool {
		jobs, err := js.Stream(ctx, "DB_JOBS")
		return err == nil && jobs.CachedInfo().State.Msgs == 0
	}, 10*time.Second, 50*time.Millisecond, "the job is acked")
}

// holdVacuumOff takes a lock VACUUM must wait for on table, in a transaction
// of its own, so a run lasts until release is called (or the test ends).
func holdVacuumOff(t *testing.T, url, table string) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "LOCK TABLE "+pgx.Identifier{table}.Sanitize()+" IN SHARE UPDATE EXCLUSIVE MODE")
	require.NoError(t, err)
	var once sync.Once
	release = func() {
		once.Do(func() {
			require.NoError(t, tx.Commit(ctx))
			conn.Close(ctx)
		})
	}
	t.Cleanup(release)
	return release
}

// watchActivity returns a counter of the PostgreSQL sessions of application
// app whose query matches like (a LIKE pattern).
func watchActivity(t *testing.T, url string) func(app, like string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return func(app, like string) int {
		var n int
		if err := conn.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE $2", app, like).Scan(&n); err != nil {
			return -1
		}
		return n
	}
}

// startWorker runs the binary with env and waits until it serves.
func startWorker(t *testing.T, nc *nats.Conn, env ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(workerBin)
	cmd.Env = append(os.Environ(), env...)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	require.Eventually(t, func() bool {
		_, err := nc.Request("db.health", nil, 300*time.Millisecond)
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "worker did not come up: %s", &logs)
	return cmd, &logs
}

// TestSIGKILLWithRequestsInFlight: callers of a killed worker get no answer
// (they time out), never a wrong one.
func TestSIGKILLWithRequestsInFlight(t *testing.T) {
	pg := testenv.NewPostgres(t)
	ns := testenv.NewNATS(t)
	nc := testenv.Connect(t, ns)
	id := "kill-" + pg.Schema
	cmd, _ := startWorker(t, nc, "NATS_URL="+ns.ClientURL(), "POSTGRES_URL="+pg.URL, "WORKER_ID="+id)
	inbox := nc.NewRespInbox()
	replies, err := nc.SubscribeSync(inbox + ".*")
	require.NoError(t, err)
	const n = 5
	for i := 0; i < n; i++ {
		require.NoError(t, nc.PublishRequest("db.execute", fmt.Sprintf("%s.%d", inbox, i), []byte(`{"sql":"SELECT pg_sleep(2), 42 AS answer"}`)))
	}
	activity := watchActivity(t, pg.URL)
	require.Eventually(t, func() bool { return activity("dbworker/"+id, "%pg_sleep%") == n }, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, cmd.Process.Kill())
	_, err = replies.NextMsg(3 * time.Second)
	require.ErrorIs(t, err, nats.ErrTimeout, "a killed worker answers nothing")
	// Its statements do not outlive it for long.
	require.Eventually(t, func() bool { return activity("dbworker/"+id, "%") == 0 }, 10*time.Second, 50*time.Millisecond)
}

// TestSIGTERMWithAJobRunning: a job cut off by the drain timeout is recorded
// failed and left unacked, so another worker does it; nothing is acked that
// was not done.
func TestSIGTERMWithAJobRunning(t *testing.T) {
	pg := testenv.NewPostgres(t)
	ns := testenv.NewNATS(t)
	nc := testenv.Connect(t, ns)
	ctx := context.Background()
	pg.Exec(t, "CREATE TABLE k (x int)")
	holdVacuumOff(t, pg.URL, "k")

	id := "term-" + pg.Schema
	cmd, logs := startWorker(t, nc, "NATS_URL="+ns.ClientURL(), "POSTGRES_URL="+pg.URL, "WORKER_ID="+id,
		"SHUTDOWN_TIMEOUT=1s", "MAINT_LOCK_TIMEOUT=60s", "MAINT_SCHEMAS="+pg.Schema)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.Publish(ctx, "db.vacuum.jobs", []byte(`{"table":"k","skip_locked":false}`), jetstream.WithMsgID("term-job"))
	require.NoError(t, err)
	activity := watchActivity(t, pg.URL)
	require.Eventually(t, func() bool { return activity("dbworker/"+id+"/vacuum", "VACUUM%") == 1 }, 20*time.Second, 20*time.Millisecond, "logs: %s", logs)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("worker did not stop; logs:\n%s", logs)
	}
	jobs, err := js.Stream(ctx, "DB_JOBS")
	require.NoError(t, err)
	info, err := jobs.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, info.State.Msgs, "the cut-off job was not acked; logs:\n%s", logs)
	results, err := js.Stream(ctx, "DB_VACUUM")
	require.NoError(t, err)
	msg, err := results.GetLastMsgForSubject(ctx, "db.vacuum.results."+pg.Schema+".k")
	require.NoError(t, err)
	var res messages.VacuumResult
	require.NoError(t, json.Unmarshal(msg.Data, &res))
	require.Equal(t, messages.StatusFailed, res.Status, "the cut-off run is recorded")
	require.Equal(t, "term-job", res.JobID)
}
