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

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/state/memory"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageAndBadInput(t *testing.T) {
	code, out, _ := runCLI(t, "help")
	require.Equal(t, exitOK, code)
	require.Contains(t, out, "SCHEDULES_FILE")
	code, _, errOut := runCLI(t, "reindex")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "unknown command")
	t.Setenv("LOG_LEVEL", "loud")
	code, _, errOut = runCLI(t, "schedules")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "LOG_LEVEL")
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
	ctx := context.Background()
	cl, err := pgexec.Connect(ctx, pgexec.Config{DSN: pg.URL, MaxConns: 4})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	defer cl.Close()
	mem := memory.New(memory.Options{})
	defer mem.Close()
	w, err := maintenance.New(maintenance.Config{WorkerID: "w1", Schemas: []string{pg.Schema}, ProgressInterval: 50 * time.Millisecond,
		BeforeVacuumSQL: "SELECT pg_sleep(0.3)"}, testenv.Connect(t, ns), cl, mem)
	require.NoError(t, err)
	require.NoError(t, w.Start(ctx))
	defer w.Stop(ctx)
	pg.Exec(t, "CREATE TABLE users (id int); INSERT INTO users SELECT generate_series(1, 1000); DELETE FROM users WHERE id % 2 = 0")

	code, out, errOut := runCLI(t, "vacuum", "--table", pg.Schema+".users", "--wait", "--timeout", "30s")
	require.Equal(t, exitOK, code, errOut)
	var res messages.VacuumResult
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.Equal(t, messages.StatusOK, res.Status)
	require.EqualValues(t, 500, res.Before.DeadRows)
	require.Contains(t, errOut, "queued job "+res.JobID)
	require.Contains(t, errOut, "done", "progress was shown")

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
	code, _, _ = runCLI(t, "history", "reindex")
	require.Equal(t, exitUsage, code)
}

// TestUnderTheShippedConf runs the publisher as user publisher, with its own
// inbox prefix, against the shipped nats-server.conf: it queues a job,
// follows it to its result and reads the history, with no more JetStream
// rights than the file gives it.
func TestUnderTheShippedConf(t *testing.T) {
	pg := testenv.NewPostgres(t)
	ns := testenv.NewShippedNATS(t, "../../nats-server.conf")
	ctx := context.Background()
	cl, err := pgexec.Connect(ctx, pgexec.Config{DSN: pg.URL, MaxConns: 4})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	defer cl.Close()
	mem := memory.New(memory.Options{})
	defer mem.Close()
	w, err := maintenance.New(maintenance.Config{WorkerID: "w1", Schemas: []string{pg.Schema}, ProgressInterval: 50 * time.Millisecond},
		testenv.ConnectAs(t, ns, "worker_js"), cl, mem)
	require.NoError(t, err)
	require.NoError(t, w.Start(ctx))
	defer w.Stop(ctx)
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
