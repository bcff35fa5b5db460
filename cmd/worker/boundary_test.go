package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

// TestReadOnlyWorkerNeedsAReadOnlyLogin: a read-only worker whose login can
// write refuses to start with one line; with the shipped read-only role it
// starts (running no DDL) and PostgreSQL refuses its writes.
func TestReadOnlyWorkerNeedsAReadOnlyLogin(t *testing.T) {
	pg := testenv.NewPostgres(t)
	pg.Exec(t, "CREATE TABLE items (id int)")
	roles := pg.ApplyRoles(t)
	ns := testenv.NewNATS(t)
	nc := testenv.Connect(t, ns)
	base := []string{"NATS_URL=" + ns.ClientURL(), "DB_EXECUTE_MODE=read_only", "WORKER_ID=ro-" + pg.Schema}

	for dsn, why := range map[string]string{pg.URL: "superuser", roles.ReadWriteURL: "may write a table"} {
		cmd := exec.Command(workerBin)
		cmd.Env = append(os.Environ(), append(base, "POSTGRES_URL="+dsn)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "a read-only worker started with a login that %s", why)
		require.Contains(t, stderr.String(), why)
		require.Contains(t, stderr.String(), "DB_READ_ONLY_ALLOW_PRIVILEGED")
	}

	startWorker(t, nc, append(base, "POSTGRES_URL="+roles.ReadOnlyURL)...)
	reply := func(body string) map[string]any {
		msg, err := nc.Request("db.execute", []byte(body), 10*time.Second)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(msg.Data, &m))
		return m
	}
	require.Contains(t, reply(`{"sql":"SELECT count(*) AS n FROM items"}`), "rows")
	e := reply(`{"sql":"INSERT INTO items VALUES (1)"}`)["error"].(map[string]any)
	require.Equal(t, "FORBIDDEN", e["code"])
}

// TestHostileAnswersKeepTheWorkerSmall: values far over the answer bound are
// refused without the worker holding them, encoded, in memory.
func TestHostileAnswersKeepTheWorkerSmall(t *testing.T) {
	pg := testenv.NewPostgres(t)
	ns := testenv.NewNATS(t)
	nc := testenv.Connect(t, ns)
	cmd, _ := startWorker(t, nc, "NATS_URL="+ns.ClientURL(), "POSTGRES_URL="+pg.URL, "WORKER_ID=mem-"+pg.Schema)
	for _, sql := range []string{
		"SELECT repeat(chr(10), 150000000) AS v",                   // one value of 150 MB: over the row bound
		"SELECT repeat(chr(10), 40000000) AS v",                    // 40 MB, would escape to 80 MB
		"SELECT repeat('x', 4000) FROM generate_series(1, 100000)", // many rows
	} {
		msg, err := nc.Request("db.execute", []byte(`{"sql":"`+sql+`"}`), 60*time.Second)
		require.NoError(t, err)
		require.Contains(t, string(msg.Data), "TOO_LARGE", sql)
	}
	hwmKB := testenv.PeakRSS(t, cmd.Process.Pid) >> 10
	t.Logf("worker peak RSS: %d MB", hwmKB/1024)
	require.Less(t, hwmKB, int64(300<<10), "peak RSS %d MB", hwmKB/1024)
}

// TestReadWriteWorkerRunsAsTheShippedRole: the read-write login that
// deploy/postgres/roles.sql makes can start a worker (its start-up DDL
// included) and serve writes.
func TestReadWriteWorkerRunsAsTheShippedRole(t *testing.T) {
	pg := testenv.NewPostgres(t)
	pg.Exec(t, "CREATE TABLE items (id int)")
	roles := pg.ApplyRoles(t)
	ns := testenv.NewNATS(t)
	nc := testenv.Connect(t, ns)
	logs := startWorkerAs(t, nc, "rw-"+pg.Schema, "NATS_URL="+ns.ClientURL(), "POSTGRES_URL="+roles.ReadWriteURL, "VECTOR_SCHEMA="+pg.Schema)
	require.Contains(t, logs.String(), "requests run under a login that can write",
		"a read-write worker without a read-only read pool says that read_only requests may move sequences")
	for subject, body := range map[string]string{
		"db.execute": `{"sql":"INSERT INTO items VALUES (1)"}`,
		"db.vector":  `{"op":"create_collection","collection":"docs","dimension":3}`,
		"db.graph":   `{"op":"add_node","node_id":"n1"}`,
	} {
		msg, err := nc.Request(subject, []byte(body), 10*time.Second)
		require.NoError(t, err)
		require.Empty(t, msg.Header.Get("Nats-Service-Error-Code"), "%s %s: %s", subject, body, msg.Data)
	}
}

// TestReadOnlyRequestsOfAReadWriteWorkerUnderTheReadOnlyLogin: PostgreSQL 15
// lets a statement RESET transaction_read_only after its snapshot, so a
// read_only request whose login may write can advance a sequence (table
// writes are still rolled back; nextval and setval are not). A read-write
// worker whose POSTGRES_READ_URL is the same database under the shipped
// read-only login runs read_only requests as a role that cannot write
// anything: every variant is refused by the server and the sequence is
// untouched.
func TestReadOnlyRequestsOfAReadWriteWorkerUnderTheReadOnlyLogin(t *testing.T) {
	pg := testenv.NewPostgres(t)
	pg.Exec(t, "CREATE TABLE items (id int); INSERT INTO items VALUES (1); CREATE SEQUENCE s")
	roles := pg.ApplyRoles(t)
	ns := testenv.NewNATS(t)
	nc := testenv.Connect(t, ns)
	logs := startWorkerAs(t, nc, "rw-ro-"+pg.Schema, "NATS_URL="+ns.ClientURL(), "POSTGRES_URL="+roles.ReadWriteURL,
		"POSTGRES_READ_URL="+roles.ReadOnlyURL, "VECTOR_SCHEMA="+pg.Schema)
	require.NotContains(t, logs.String(), "requests run under a login that can write", "the read-only read pool backs read_only requests")
	reply := func(req map[string]any) map[string]any {
		body, err := json.Marshal(req)
		require.NoError(t, err)
		msg, err := nc.Request("db.execute", body, 10*time.Second)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(msg.Data, &m))
		return m
	}
	for _, sql := range []string{
		"DO $$ BEGIN RESET transaction_read_only; PERFORM nextval('s'); END $$",
		"DO $$ BEGIN PERFORM set_config('transaction_read_only', NULL, true); PERFORM setval('s', 100); END $$",
		"DO $$ BEGIN RESET transaction_read_only; PERFORM nextval('s'); SET transaction_read_only = on; END $$",
		"SELECT nextval('s')",
		"DO $$ BEGIN RESET transaction_read_only; INSERT INTO items VALUES (2); END $$",
	} {
		got := reply(map[string]any{"sql": sql, "read_only": true})
		e, ok := got["error"].(map[string]any)
		require.True(t, ok, "%s: answered %v", sql, got)
		require.Equal(t, "FORBIDDEN", e["code"], sql)
	}
	require.Equal(t, 0, pg.Count("SELECT count(*) FROM s WHERE is_called"), "the sequence never moved")
	require.Equal(t, 1, pg.Count("SELECT count(*) FROM items"))
	got := reply(map[string]any{"sql": "SELECT count(*) AS n FROM items", "read_only": true})
	require.Contains(t, got, "rows", "reads are served")
	got = reply(map[string]any{"sql": "SELECT nextval('s') AS n"})
	require.Contains(t, got, "rows", "the read-write login still writes")
}
