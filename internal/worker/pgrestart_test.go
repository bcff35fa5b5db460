package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// privatePostgres is a PostgreSQL cluster of the test's own, made with initdb
// on a free port, which the test may stop and start at will.
type privatePostgres struct {
	t        testing.TB
	bin, dir string
	port     int
	asUser   string // run the tools as this user (initdb refuses root)
}

func newPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		testenv.Unavailable(t, "initdb", fmt.Errorf("no /usr/lib/postgresql/*/bin/initdb"))
	}
	p := &privatePostgres{t: t, bin: filepath.Dir(bins[len(bins)-1])}
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		p.asUser = "postgres"
	}
	dir, err := os.MkdirTemp("", "dbworker-pg")
	require.NoError(t, err)
	p.dir = dir
	t.Cleanup(func() {
		_ = p.run("pg_ctl", "-D", p.dir, "-m", "immediate", "stop")
		os.RemoveAll(dir)
	})
	if p.asUser != "" {
		require.NoError(t, exec.Command("chown", p.asUser, dir).Run())
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	require.NoError(t, p.run("initdb", "-D", dir, "-A", "trust", "-U", "postgres", "--no-sync"))
	p.start()
	return p
}

func (p *privatePostgres) run(tool string, args ...string) error {
	cmdline := filepath.Join(p.bin, tool) + " " + shellJoin(args)
	var cmd *exec.Cmd
	if p.asUser != "" {
		cmd = exec.Command("su", p.asUser, "-s", "/bin/sh", "-c", cmdline)
	} else {
		cmd = exec.Command("/bin/sh", "-c", cmdline)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", tool, err, out)
	}
	return nil
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

func (p *privatePostgres) start() {
	require.NoError(p.t, p.run("pg_ctl", "-D", p.dir, "-w", "-l", filepath.Join(p.dir, "log"),
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", p.port, p.dir), "start"))
}

func (p *privatePostgres) stop() {
	require.NoError(p.t, p.run("pg_ctl", "-D", p.dir, "-m", "fast", "-w", "stop"))
}

func (p *privatePostgres) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// TestPostgresRestart: while PostgreSQL is down db.* answers UNAVAILABLE and
// state.* keeps working; when it is back the pool heals, with no worker
// restart.
func TestPostgresRestart(t *testing.T) {
	t.Parallel()
	pp := newPrivatePostgres(t)
	b := &bundle{t: t, pg: &testenv.Postgres{URL: pp.url(), Schema: "public"}, ns: testenv.NewNATS(t)}
	b.nc = testenv.Connect(t, b.ns)
	b.sub, _ = subjects.New("")
	b.startWorker(t, "w1", options{maxConns: 4, acquire: 2 * time.Second, mode: "read_write", maxRows: 100, maxConcurrent: 8,
		maintenance: true, beforeVacuum: "SELECT pg_sleep(3)"})
	b.ok(`{"sql":"CREATE TABLE t (x int)"}`)
	b.ok(`{"sql":"INSERT INTO t VALUES (1)"}`)

	// A VACUUM job is running (held in its pre-run sleep) when PostgreSQL stops.
	progress, err := b.nc.SubscribeSync("db.vacuum.progress.*")
	require.NoError(t, err)
	js, err := jetstream.New(b.nc)
	require.NoError(t, err)
	_, err = js.Publish(context.Background(), "db.vacuum.jobs", []byte(`{"table":"t"}`), jetstream.WithMsgID("cut-off"))
	require.NoError(t, err)
	_, err = progress.NextMsg(10 * time.Second)
	require.NoError(t, err, "the job's run started")

	pp.stop()
	down := time.Now()
	for _, body := range []string{`{"sql":"SELECT * FROM t"}`, `{"op":"insert","table":"t","data":{"x":2}}`} {
		a := b.exec(body)
		require.Equal(t, "503", a.status, "%s: %s", body, a.body)
		require.Equal(t, "UNAVAILABLE", a.errorOf(t)["code"])
	}
	h := b.request(subjects.DBHealth, nil).json(t)
	require.Equal(t, "unhealthy", h["status"])
	b.ok(`{"key":"k","limit":5,"window_ms":1000}`, subjects.StateRateLimit) // state.* unaffected

	t.Logf("PostgreSQL was down for %s", time.Since(down).Round(10*time.Millisecond))
	pp.start()
	up := time.Now()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		a, err := b.send(subjects.DBExecute, []byte(`{"sql":"SELECT * FROM t"}`))
		require.NoError(c, err)
		assert.Empty(c, a.status, "%s", a.body)
	}, 20*time.Second, 50*time.Millisecond,
		"the pool heals without a worker restart")
	t.Logf("db.execute answered again %s after PostgreSQL was back", time.Since(up).Round(time.Millisecond))
	a := b.ok(`{"op":"one","sql":"SELECT count(*) AS n FROM t"}`)
	require.JSONEq(t, `{"n":1}`, mustJSON(t, a["row"]), "nothing half-written while it was down")

	// The cut-off run is recorded failed, and the job is done again, once.
	stream, err := js.Stream(context.Background(), maintenance.StreamVacuum)
	require.NoError(t, err)
	var statuses []string
	require.Eventually(t, func() bool {
		statuses = nil
		cons, err := stream.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{})
		if err != nil {
			return false
		}
		batch, err := cons.FetchNoWait(100)
		if err != nil {
			return false
		}
		ok := 0
		for m := range batch.Messages() {
			var r messages.VacuumResult
			if json.Unmarshal(m.Data(), &r) == nil && r.JobID == "cut-off" {
				statuses = append(statuses, r.Status)
				if r.Status == messages.StatusOK {
					ok++
				}
			}
		}
		return ok == 1
	}, 30*time.Second, 200*time.Millisecond)
	require.Contains(t, statuses, messages.StatusFailed, "the cut-off run was recorded: %v", statuses)
	t.Logf("job results in order: %v", statuses)
}
