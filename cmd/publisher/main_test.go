package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/memory"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/internal/worker"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

func TestMain(m *testing.M) { testenv.VerifyNoLeaks(m) }

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageAndBadInput(t *testing.T) {
	code, out, _ := runCLI(t, "-h")
	require.Equal(t, exitOK, code)
	require.Contains(t, out, "SCHEDULES_FILE")
	require.Contains(t, out, "Exit codes")
	code, _, errOut := runCLI(t, "reindex")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "unexpected argument reindex")
	code, _, errOut = runCLI(t, "history", "reindex")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, `must be one of "vacuum","stats"`)
	code, _, errOut = runCLI(t, "vacuum", "--tabel", "x")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "--tabel")
	t.Setenv("LOG_LEVEL", "loud")
	code, _, errOut = runCLI(t, "schedules")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "LOG_LEVEL")
}

// TestEveryCommandHasHelp: -h and --help print the command's help on stdout
// and exit 0, before any configuration is read.
func TestEveryCommandHasHelp(t *testing.T) {
	t.Setenv("LOG_LEVEL", "loud") // help needs no valid configuration
	for _, args := range [][]string{{"-h"}, {"--help"}, {"run", "-h"}, {"schedules", "-h"}, {"vacuum", "-h"},
		{"stats", "-h"}, {"history", "-h"}, {"history", "vacuum", "-h"}, {"history", "stats", "--help"}} {
		code, out, errOut := runCLI(t, args...)
		require.Equal(t, exitOK, code, "%v: %s", args, errOut)
		require.Contains(t, out, "Usage: publisher", args)
		require.Empty(t, errOut, args)
	}
	_, out, _ := runCLI(t, "history", "-h")
	require.Contains(t, out, "<kind>")
	require.Contains(t, out, "--last")
	_, out, _ = runCLI(t, "vacuum", "-h")
	require.Contains(t, out, "--wait")
	_, out, _ = runCLI(t, "schedules", "-h")
	require.Contains(t, out, "--check")
}

// TestMisspeltVariableWarns: the publisher names a misspelt variable too.
func TestMisspeltVariableWarns(t *testing.T) {
	t.Setenv("SCHEDULES_FILES", "x.yaml")
	code, _, errOut := runCLI(t, "schedules", "-f", "../../schedules.yaml")
	require.Equal(t, exitOK, code)
	require.Contains(t, errOut, "publisher: warning: SCHEDULES_FILES is not a dbworker variable and is ignored; did you mean SCHEDULES_FILE?")
}

func TestSchedulesCommand(t *testing.T) {
	code, out, errOut := runCLI(t, "schedules", "-f", "../../schedules.yaml")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "vacuum-nightly")
	require.Contains(t, out, "stats-every-15m")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("schedules:\n  - {name: x, cron: 'never', job: stats}\n"), 0o600))
	code, _, errOut = runCLI(t, "schedules", "-f", bad)
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "cron")
}

// TestVacuumWaitAndHistory queues a VACUUM job for a running worker, follows
// it to its result, then reads it back from the history.
func TestVacuumWaitAndHistory(t *testing.T) {
	pg := testenv.NewPostgres(t)
	ns := testenv.NewNATS(t)
	t.Setenv("NATS_URL", ns.ClientURL())
	startMaintenance(t, pg, testenv.Connect(t, ns), maintenance.Config{ProgressInterval: 50 * time.Millisecond},
		maintenance.TestSignals{BeforeVacuumSQL: "SELECT pg_sleep(0.3)"})
	pg.Exec(t, "CREATE TABLE users (id int); INSERT INTO users SELECT generate_series(1, 1000); DELETE FROM users WHERE id % 2 = 0")

	code, out, errOut := runCLI(t, "vacuum", "--table", pg.Schema+".users", "--wait", "--timeout", "30s")
	require.Equal(t, exitOK, code, errOut)
	var res messages.VacuumResult
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.Equal(t, messages.StatusOK, res.Status)
	require.EqualValues(t, 500, res.Before.DeadRows)
	require.Contains(t, errOut, "queued job "+res.JobID)
	require.Contains(t, errOut, "vacuum: ok after", "progress was shown")

	code, out, _ = runCLI(t, "vacuum", "--table", "no_such_table", "--wait", "--timeout", "30s")
	require.Equal(t, exitFailed, code)
	require.Contains(t, out, "NOT_FOUND")

	code, out, _ = runCLI(t, "vacuum", "--table", pg.Schema+".users")
	require.Equal(t, exitOK, code)
	require.Contains(t, out, `"stream":"DB_JOBS"`)

	code, out, errOut = runCLI(t, "history", "vacuum", "--table", pg.Schema+".users", "--last", "1", "--json")
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, 1, strings.Count(strings.TrimSpace(out), "\n")+1)
	code, out, _ = runCLI(t, "history", "vacuum", "--table", "users")
	require.Equal(t, exitOK, code)
	require.Contains(t, out, res.JobID)
	code, out, _ = runCLI(t, "history", "vacuum", "--table", "no_such_table")
	require.Equal(t, exitOK, code)
	require.Contains(t, out, "no_such_table", "a failed job is filed under the table it names")
	require.Contains(t, out, messages.StatusFailed)
}

// TestUnderTheShippedConf runs the publisher as user publisher, with its own
// inbox prefix, against the shipped nats-server.conf: it queues a job,
// follows it to its result and reads the history, with no more JetStream
// rights than the file gives it.
func TestUnderTheShippedConf(t *testing.T) {
	pg := testenv.NewPostgres(t)
	ns := testenv.NewShippedNATS(t, "../../nats-server.conf")
	startMaintenance(t, pg, testenv.ConnectAs(t, ns, "worker_js"), maintenance.Config{ProgressInterval: 50 * time.Millisecond})
	pg.Exec(t, "CREATE TABLE users (id int)")

	t.Setenv("NATS_URL", ns.ClientURL())
	t.Setenv("NATS_USER", "publisher")
	t.Setenv("NATS_PASSWORD", testenv.ShippedPasswords["publisher"])
	t.Setenv("NATS_INBOX_PREFIX", "_INBOX_publisher")
	code, out, errOut := runCLI(t, "vacuum", "--table", pg.Schema+".users", "--wait", "--timeout", "30s")
	require.Equal(t, exitOK, code, errOut)
	var res messages.VacuumResult
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.Equal(t, messages.StatusOK, res.Status)
	code, out, errOut = runCLI(t, "history", "vacuum", "--table", pg.Schema+".users", "--json")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, res.JobID)

	// On the default _INBOX, the publisher cannot read its answers.
	t.Setenv("NATS_INBOX_PREFIX", "")
	os.Unsetenv("NATS_INBOX_PREFIX")
	code, _, _ = runCLI(t, "history", "vacuum", "--table", pg.Schema+".users", "--json")
	require.NotEqual(t, exitOK, code)
}

// TestVacuumProgressPhases slows a VACUUM down (vacuum_cost_delay) so that
// it reports progress for a while, and checks what --wait writes when its
// output is not a terminal: each phase on lines of its own, scanned then
// vacuumed blocks counted against the table's, and never a 0/0 frame.
func TestVacuumProgressPhases(t *testing.T) {
	// A database of its own: in a shared one, another test's open
	// transaction would keep the dead rows, and VACUUM would skip the phases
	// this test is about.
	pg := testenv.NewDatabase(t)
	ns := testenv.NewNATS(t)
	t.Setenv("NATS_URL", ns.ClientURL())
	startMaintenance(t, pg, testenv.Connect(t, ns), maintenance.Config{ProgressInterval: 20 * time.Millisecond},
		maintenance.TestSignals{BeforeVacuumSQL: "SET vacuum_cost_delay = '5ms'; SET vacuum_cost_limit = 20"})
	// About 300 heap blocks, half their rows dead, and an index: VACUUM scans
	// the heap, vacuums the index, then vacuums the heap.
	pg.Exec(t, `CREATE TABLE slow (id int, pad text) WITH (fillfactor = 10, autovacuum_enabled = false);
		INSERT INTO slow SELECT i, repeat('x', 100) FROM generate_series(1, 2000) i;
		CREATE INDEX ON slow (id, pad); -- wide enough that vacuuming it lasts past a few progress reads
		DELETE FROM slow WHERE id % 2 = 0`)

	code, out, errOut := runCLI(t, "vacuum", "--table", pg.Schema+".slow", "--wait", "--timeout", "60s")
	require.Equal(t, exitOK, code, errOut)
	t.Logf("progress:\n%s", errOut)
	var res messages.VacuumResult
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.Equal(t, messages.StatusOK, res.Status)

	require.NotContains(t, errOut, "0/0", "no 0/0 frames")
	require.NotContains(t, errOut, "\r", "plain lines, no redrawing")
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	require.True(t, strings.HasPrefix(lines[0], "queued job "+res.JobID))
	require.Regexp(t, `^vacuum: ok after \d`, lines[len(lines)-1])
	scanned := -1
	vacuumed := -1
	for i, l := range lines[1 : len(lines)-1] {
		require.Regexp(t, `^vacuum: .+, [0-9.]+m?s elapsed`, l)
		if scanned < 0 && strings.Contains(l, "scanning heap (blocks scanned) ") {
			scanned = i
			require.Regexp(t, `scanning heap \(blocks scanned\) \d+/[1-9]\d* \(\d+%\)`, l)
		}
		if vacuumed < 0 && strings.Contains(l, "vacuuming heap (blocks vacuumed) ") {
			vacuumed = i
			require.Regexp(t, `vacuuming heap \(blocks vacuumed\) \d+/[1-9]\d* \(\d+%\)`, l)
		}
	}
	require.GreaterOrEqual(t, scanned, 0, "the scan was shown")
	require.Greater(t, vacuumed, scanned, "then the vacuuming of the heap")
	require.Contains(t, errOut, "vacuuming indexes", "and the index phase between them")
}

// TestSchedulesCheck: --check asks a running worker whether each schedule's
// target exists, and fails naming the ones that do not.
func TestSchedulesCheck(t *testing.T) {
	pg := testenv.NewPostgres(t)
	ns := testenv.NewNATS(t)
	t.Setenv("NATS_URL", ns.ClientURL())
	startWorker(t, pg, testenv.Connect(t, ns))
	pg.Exec(t, "CREATE TABLE users (id int)")

	file := filepath.Join(t.TempDir(), "schedules.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`schedules:
  - {name: everything, cron: "@daily", job: vacuum}
  - {name: users, cron: "@daily", job: vacuum, body: {table: `+pg.Schema+`.users}}
  - {name: schema-stats, cron: "@daily", job: stats, body: {schema: `+pg.Schema+`}}
  - {name: typo, cron: "@daily", job: vacuum, body: {table: `+pg.Schema+`.userz}}
  - {name: no-schema, cron: "@daily", job: stats, body: {schema: no_such_schema}}
`), 0o600))
	code, out, errOut := runCLI(t, "schedules", "-f", file)
	require.Equal(t, exitOK, code, "without --check the file is only parsed: %s", errOut)
	require.NotContains(t, out, "TARGET")

	code, out, errOut = runCLI(t, "schedules", "-f", file, "--check")
	require.Equal(t, exitFailed, code, out)
	require.Contains(t, errOut, "2 schedule(s) name a target the workers cannot find")
	byName := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		name, _, _ := strings.Cut(l, " ")
		byName[name] = l
	}
	require.True(t, strings.HasSuffix(byName["everything"], "ok"), byName["everything"])
	require.True(t, strings.HasSuffix(byName["users"], "ok"), byName["users"])
	require.True(t, strings.HasSuffix(byName["schema-stats"], "ok"), byName["schema-stats"])
	require.Contains(t, byName["typo"], `NOT_FOUND: table "`+pg.Schema+`.userz" does not exist`)
	require.Contains(t, byName["no-schema"], `NOT_FOUND: schema "no_such_schema" does not exist`)
}

// TestStatsCommand: stats asks a worker (through pkg/client) and prints a
// table, or the answer as JSON; an error answer fails naming db.stats.
func TestStatsCommand(t *testing.T) {
	pg := testenv.NewPostgres(t)
	ns := testenv.NewNATS(t)
	t.Setenv("NATS_URL", ns.ClientURL())
	startWorker(t, pg, testenv.Connect(t, ns))
	pg.Exec(t, "CREATE TABLE users (id int); INSERT INTO users SELECT generate_series(1, 10)")

	code, out, errOut := runCLI(t, "stats", "--table", pg.Schema+".users")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "TABLE")
	require.Contains(t, out, pg.Schema+".users")
	code, out, errOut = runCLI(t, "stats", "--table", pg.Schema+".users", "--json")
	require.Equal(t, exitOK, code, errOut)
	var res messages.StatsResult
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.Equal(t, "users", res.Tables[0].Table)
	require.NotEmpty(t, res.RunID)

	code, _, errOut = runCLI(t, "stats", "--table", pg.Schema+".userz")
	require.Equal(t, exitFailed, code)
	require.Contains(t, errOut, "publisher: db.stats: NOT_FOUND")
	require.Contains(t, errOut, "userz")

	// No worker under another prefix: the client says so.
	t.Setenv("SUBJECT_PREFIX", "elsewhere.")
	code, _, errOut = runCLI(t, "stats", "--timeout", "2s")
	require.Equal(t, exitFailed, code)
	require.Contains(t, errOut, "db.stats: no dbworker serves this subject")
}

// startWorker starts a worker serving db.stats (and the rest) over pg's
// schema on nc until the test ends; it takes no maintenance jobs.
func startWorker(t *testing.T, pg *testenv.Postgres, nc *nats.Conn) {
	t.Helper()
	zero := 0
	maint, cl, mem := newMaintenance(t, pg, nc, maintenance.Config{Concurrency: &zero})
	ex, err := pgexec.NewExecutor(cl, pgexec.ExecutorConfig{})
	require.NoError(t, err)
	svc, err := state.NewService(mem, state.ServiceConfig{})
	require.NoError(t, err)
	w, err := worker.New(worker.Config{ID: "w1"}, worker.Deps{NATS: nc, Postgres: cl, Executor: ex,
		State: svc, Maintenance: maint})
	require.NoError(t, err)
	require.NoError(t, w.Start(context.Background()))
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
}

// newMaintenance is the workers' side of the publisher's commands: the
// maintenance service over pg's schema, on nc, with state in memory. cfg's
// WorkerID and Schemas are filled in.
func newMaintenance(t *testing.T, pg *testenv.Postgres, nc *nats.Conn, cfg maintenance.Config) (*maintenance.Service, *pgexec.Client, state.Backend) {
	t.Helper()
	cl, err := pgexec.Connect(context.Background(), pgexec.Config{DSN: pg.URL, MaxConns: 4})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(cl.Close)
	mem := memory.New(memory.Options{})
	t.Cleanup(func() { mem.Close() })
	cfg.WorkerID, cfg.Schemas = "w1", []string{pg.Schema}
	m, err := maintenance.New(cfg, nc, cl, mem)
	require.NoError(t, err)
	return m, cl, mem
}

// startMaintenance starts newMaintenance's service until the test ends,
// with the test signals given.
func startMaintenance(t *testing.T, pg *testenv.Postgres, nc *nats.Conn, cfg maintenance.Config, signals ...maintenance.TestSignals) {
	t.Helper()
	m, _, _ := newMaintenance(t, pg, nc, cfg)
	for _, ts := range signals {
		m.TestSignals = ts
	}
	require.NoError(t, m.Start(context.Background()))
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
}
