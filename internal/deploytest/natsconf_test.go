package deploytest

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/memory"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/internal/worker"
	"github.com/jeeves-avionics/dbworker/pkg/client"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

var passwords = map[string]string{"worker": "w-secret", "client": "c-secret", "publisher": "p-secret", "ops": "o-secret"}

// startConfiguredServer runs a nats-server from the repository's
// nats-server.conf, with passwords from the environment.
func startConfiguredServer(t *testing.T) *server.Server {
	t.Helper()
	for user, pw := range passwords {
		t.Setenv("NATS_"+strings.ToUpper(user)+"_PASSWORD", pw)
	}
	opts, err := server.ProcessConfigFile("../../nats-server.conf")
	require.NoError(t, err)
	require.True(t, opts.JetStream)
	require.EqualValues(t, 8<<20, opts.MaxPayload)
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, -1
	opts.StoreDir = t.TempDir()
	opts.NoSigs, opts.NoLog = true, true
	s, err := server.NewServer(opts)
	require.NoError(t, err)
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	require.True(t, s.ReadyForConnections(10*time.Second))
	return s
}

// TestConfigNeedsPasswordsFromTheEnvironment: without the variables the file
// does not load; it has no fixed password to fall back on.
func TestConfigNeedsPasswordsFromTheEnvironment(t *testing.T) {
	for user := range passwords {
		key := "NATS_" + strings.ToUpper(user) + "_PASSWORD"
		t.Setenv(key, "")
		os.Unsetenv(key)
	}
	_, err := server.ProcessConfigFile("../../nats-server.conf")
	require.ErrorContains(t, err, "NATS_WORKER_PASSWORD")
	body, err := os.ReadFile("../../nats-server.conf")
	require.NoError(t, err)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.Contains(line, "password:") && !strings.HasPrefix(strings.TrimSpace(line), "#") {
			require.Contains(t, line, "$NATS_", "every password is a variable: %s", line)
		}
	}
}

// as connects as user and collects the permission violations the server reports.
type as struct {
	nc         *nats.Conn
	violations chan string
}

func connectAs(t *testing.T, s *server.Server, user string) *as {
	t.Helper()
	a := &as{violations: make(chan string, 64)}
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(user, passwords[user]), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			a.violations <- err.Error()
		}
	}))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	a.nc = nc
	return a
}

// refused checks that do() makes the server report a permission violation
// naming subject.
func (a *as) refused(t *testing.T, what, subject string, do func()) {
	t.Helper()
	do()
	_ = a.nc.Flush()
	timeout := time.After(3 * time.Second)
	for {
		select {
		case v := <-a.violations:
			if strings.Contains(v, `"`+subject+`"`) {
				t.Logf("%s refused: %s", what, v)
				return
			}
		case <-timeout:
			t.Fatalf("%s was allowed", what)
		}
	}
}

// TestRolePermissions runs a real worker as "worker" under the shipped
// nats-server.conf and checks what each role may and may not do.
func TestRolePermissions(t *testing.T) {
	s := startConfiguredServer(t)
	pg := testenv.NewPostgres(t)
	ctx := context.Background()

	// The worker serves, manages its streams and consumes jobs as "worker".
	w := connectAs(t, s, "worker")
	cl, err := pgexec.Connect(ctx, pgexec.Config{DSN: pg.URL, MaxConns: 4})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	defer cl.Close()
	mem := memory.New(memory.Options{})
	defer mem.Close()
	maint, err := maintenance.New(maintenance.Config{WorkerID: "w1", Schemas: []string{pg.Schema}}, w.nc, cl, mem)
	require.NoError(t, err)
	wk, err := worker.New(worker.Config{ID: "w1", Logger: zerolog.Nop()}, worker.Deps{NATS: w.nc, Postgres: cl,
		Executor: pgexec.NewExecutor(cl, pgexec.ExecutorConfig{}), State: state.NewService(mem, state.ServiceConfig{}), Maintenance: maint})
	require.NoError(t, err)
	require.NoError(t, wk.Start(ctx))
	defer wk.Stop(ctx)
	pg.Exec(t, "CREATE TABLE t (x int)")

	// client: may request its endpoints, nothing else.
	c := connectAs(t, s, "client")
	cc := client.New(c.nc)
	res, err := cc.Query(ctx, "select 1 as x", nil)
	require.NoError(t, err)
	require.JSONEq(t, `[{"x":1}]`, string(res.Rows))
	rl, err := cc.RateLimit(ctx, "k", 1, time.Second)
	require.NoError(t, err)
	require.True(t, rl.Allowed)
	vac, err := cc.Vacuum(ctx, messages.VacuumRequest{Table: "t"})
	require.NoError(t, err)
	require.Equal(t, "ok", vac.Status, "the worker may store the result")
	c.refused(t, "client subscribing to db.>", "db.>", func() { _, _ = c.nc.SubscribeSync("db.>") })
	c.refused(t, "client reading requests on db.execute", "db.execute", func() { _, _ = c.nc.SubscribeSync("db.execute") })
	c.refused(t, "client publishing a job", "db.vacuum.jobs", func() { _ = c.nc.Publish("db.vacuum.jobs", []byte(`{}`)) })
	c.refused(t, "client publishing a result", "db.vacuum.results._database", func() { _ = c.nc.Publish("db.vacuum.results._database", []byte(`{}`)) })
	c.refused(t, "client using the JetStream API", "$JS.API.STREAM.DELETE.DB_VACUUM", func() { _ = c.nc.PublishRequest("$JS.API.STREAM.DELETE.DB_VACUUM", c.nc.NewRespInbox(), nil) })

	// publisher: queues jobs, reads results; cannot serve or delete.
	p := connectAs(t, s, "publisher")
	pjs, err := jetstream.New(p.nc)
	require.NoError(t, err)
	ack, err := pjs.Publish(ctx, "db.stats.jobs", []byte(`{"table":"t"}`))
	require.NoError(t, err)
	require.Equal(t, maintenance.StreamJobs, ack.Stream)
	require.NoError(t, maintenance.CreateMissingStreams(ctx, pjs, maintenance.Config{}))
	stream, err := pjs.Stream(ctx, maintenance.StreamVacuum)
	require.NoError(t, err)
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	got, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	require.NoError(t, err)
	require.Contains(t, string(got.Data()), `"status":"ok"`)
	p.refused(t, "publisher deleting a stream", "$JS.API.STREAM.DELETE.DB_VACUUM", func() { _ = p.nc.PublishRequest("$JS.API.STREAM.DELETE.DB_VACUUM", p.nc.NewRespInbox(), nil) })
	p.refused(t, "publisher calling db.execute", "db.execute", func() { _ = p.nc.Publish("db.execute", []byte(`{}`)) })
	p.refused(t, "publisher serving db.execute", "db.execute", func() { _, _ = p.nc.SubscribeSync("db.execute") })

	// ops: discovery and reading; nothing that changes anything.
	o := connectAs(t, s, "ops")
	msg, err := o.nc.Request("$SRV.INFO.dbworker", nil, 5*time.Second)
	require.NoError(t, err)
	var info struct{ Name string }
	require.NoError(t, json.Unmarshal(msg.Data, &info))
	require.Equal(t, "dbworker", info.Name)
	ojs, err := jetstream.New(o.nc)
	require.NoError(t, err)
	_, err = ojs.Stream(ctx, maintenance.StreamVacuum)
	require.NoError(t, err)
	o.refused(t, "ops calling db.execute", "db.execute", func() { _ = o.nc.Publish("db.execute", []byte(`{}`)) })
	o.refused(t, "ops purging a stream", "$JS.API.STREAM.PURGE.DB_VACUUM", func() { _ = o.nc.PublishRequest("$JS.API.STREAM.PURGE.DB_VACUUM", o.nc.NewRespInbox(), nil) })
	o.refused(t, "ops queueing a job", "db.vacuum.jobs", func() { _ = o.nc.Publish("db.vacuum.jobs", []byte(`{}`)) })

	// A wrong password is refused outright.
	_, err = nats.Connect(s.ClientURL(), nats.UserInfo("worker", "guess"))
	require.Error(t, err)
}
