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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/metrics"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/memory"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/internal/worker"
	"github.com/jeeves-avionics/dbworker/pkg/client"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// startConfiguredServer runs a nats-server from the repository's
// nats-server.conf, with passwords from the environment.
func startConfiguredServer(t *testing.T) *server.Server {
	t.Helper()
	s := testenv.NewShippedNATS(t, "../../nats-server.conf")
	opts, err := server.ProcessConfigFile("../../nats-server.conf")
	require.NoError(t, err)
	require.True(t, opts.JetStream)
	require.EqualValues(t, 8<<20, opts.MaxPayload)
	return s
}

// TestConfigNeedsPasswordsFromTheEnvironment: without the variables the file
// does not load; it has no fixed password to fall back on.
func TestConfigNeedsPasswordsFromTheEnvironment(t *testing.T) {
	for user := range testenv.ShippedPasswords {
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

// connectAs connects as user, with the user's own inbox prefix unless opts
// name another.
func connectAs(t *testing.T, s *server.Server, user string, opts ...nats.Option) *as {
	t.Helper()
	a := &as{violations: make(chan string, 64)}
	a.nc = testenv.ConnectAs(t, s, user, append([]nats.Option{nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			a.violations <- err.Error()
		}
	})}, opts...)...)
	return a
}

// startWorker runs a real worker, with maintenance, serving over nc, doing
// JetStream work as worker_js, over a schema of the test's own, and returns
// the schema and the worker's metrics.
func startWorker(t *testing.T, s *server.Server, nc *nats.Conn, trusted ...string) (*testenv.Postgres, *metrics.Metrics) {
	t.Helper()
	return startWorkerJS(t, s, nc, connectAs(t, s, "worker_js").nc, trusted...)
}

// startWorkerJS is startWorker with the JetStream connection given.
func startWorkerJS(t *testing.T, s *server.Server, nc, jsnc *nats.Conn, trusted ...string) (*testenv.Postgres, *metrics.Metrics) {
	t.Helper()
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	cl, err := pgexec.Connect(ctx, pgexec.Config{DSN: pg.URL, MaxConns: 4})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(cl.Close)
	mem := memory.New(memory.Options{})
	t.Cleanup(func() { mem.Close() })
	maint, err := maintenance.New(maintenance.Config{WorkerID: "w1", Schemas: []string{pg.Schema}}, jsnc, cl, mem)
	require.NoError(t, err)
	reg := metrics.New()
	ex, err := pgexec.NewExecutor(cl, pgexec.ExecutorConfig{})
	require.NoError(t, err)
	svc, err := state.NewService(mem, state.ServiceConfig{})
	require.NoError(t, err)
	wk, err := worker.New(worker.Config{ID: "w1", Logger: zerolog.Nop(), Metrics: reg, TrustedReplyPrefixes: trusted},
		worker.Deps{NATS: nc, JetStream: jsnc, Postgres: cl, Executor: ex,
			State: svc, Maintenance: maint})
	require.NoError(t, err)
	require.NoError(t, wk.Start(ctx))
	t.Cleanup(func() { require.NoError(t, wk.Stop(context.Background())) })
	return pg, reg
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
	ctx := context.Background()
	pg, _ := startWorker(t, s, connectAs(t, s, "worker").nc)
	pg.Exec(t, "CREATE TABLE t (x int)")

	// orders, a calling service: may request its endpoints, nothing else.
	c := connectAs(t, s, "orders")
	cc, err := client.New(c.nc)
	require.NoError(t, err)
	res, err := cc.Query(ctx, "select 1 as x", nil)
	require.NoError(t, err)
	require.JSONEq(t, `[{"x":1}]`, string(res.Rows))
	rl, err := cc.RateLimits().Allow(ctx, "k", 1, time.Second)
	require.NoError(t, err)
	require.True(t, rl.Allowed)
	vac, err := cc.Maintenance().Vacuum(ctx, messages.VacuumRequest{Table: "t"})
	require.NoError(t, err)
	require.Equal(t, "ok", vac.Status, "the worker may store the result")
	// An interactive transaction: orders may begin and use it; billing, on
	// its own inbox prefix, cannot reach it even knowing its subject.
	tx, err := cc.BeginTx(ctx, client.TxOptions{})
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SELECT 1", nil)
	require.NoError(t, err)
	b := connectAs(t, s, "billing")
	msg, err := b.nc.Request(tx.Subject(), []byte(`{"op":"commit"}`), 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "410", msg.Header.Get("Nats-Service-Error-Code"), "another service's transaction is out of reach")
	require.NoError(t, tx.Commit(ctx))
	c.refused(t, "orders serving transactions", "db.tx.>", func() { _, _ = c.nc.SubscribeSync("db.tx.>") })
	c.refused(t, "orders subscribing to db.>", "db.>", func() { _, _ = c.nc.SubscribeSync("db.>") })
	c.refused(t, "orders reading requests on db.execute", "db.execute", func() { _, _ = c.nc.SubscribeSync("db.execute") })
	c.refused(t, "orders publishing a job", "db.vacuum.jobs", func() { _ = c.nc.Publish("db.vacuum.jobs", []byte(`{}`)) })
	c.refused(t, "orders publishing a result", "db.vacuum.results._database", func() { _ = c.nc.Publish("db.vacuum.results._database", []byte(`{}`)) })
	c.refused(t, "orders using the JetStream API", "$JS.API.STREAM.DELETE.DB_VACUUM", func() { _ = c.nc.PublishRequest("$JS.API.STREAM.DELETE.DB_VACUUM", c.nc.NewRespInbox(), nil) })

	// publisher: queues jobs, reads results; cannot serve or delete.
	p := connectAs(t, s, "publisher")
	pjs, err := jetstream.New(p.nc)
	require.NoError(t, err)
	ack, err := pjs.Publish(ctx, "db.stats.jobs", []byte(`{"table":"t"}`))
	require.NoError(t, err)
	require.Equal(t, maintenance.StreamJobs, ack.Stream)
	require.NoError(t, maintenance.SetupStreams(ctx, pjs, maintenance.Config{}))
	got, err := maintenance.LastResults(ctx, pjs, maintenance.StreamVacuum, "db.vacuum.results.>", 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Contains(t, string(got[0]), `"status":"ok"`)
	p.refused(t, "publisher deleting a stream", "$JS.API.STREAM.DELETE.DB_VACUUM", func() { _ = p.nc.PublishRequest("$JS.API.STREAM.DELETE.DB_VACUUM", p.nc.NewRespInbox(), nil) })
	p.refused(t, "publisher calling db.execute", "db.execute", func() { _ = p.nc.Publish("db.execute", []byte(`{}`)) })
	p.refused(t, "publisher serving db.execute", "db.execute", func() { _, _ = p.nc.SubscribeSync("db.execute") })

	// ops: discovery and reading; nothing that changes anything.
	o := connectAs(t, s, "ops")
	msg, err = o.nc.Request("$SRV.INFO.dbworker", nil, 5*time.Second)
	require.NoError(t, err)
	var info struct{ Name string }
	require.NoError(t, json.Unmarshal(msg.Data, &info))
	require.Equal(t, "dbworker", info.Name)
	ojs, err := jetstream.New(o.nc)
	require.NoError(t, err)
	_, err = ojs.Stream(ctx, maintenance.StreamVacuum)
	require.NoError(t, err)
	got, err = maintenance.LastResults(ctx, ojs, maintenance.StreamVacuum, "db.vacuum.results.>", 5)
	require.NoError(t, err)
	require.Len(t, got, 1, "ops reads results")
	o.refused(t, "ops calling db.execute", "db.execute", func() { _ = o.nc.Publish("db.execute", []byte(`{}`)) })
	o.refused(t, "ops purging a stream", "$JS.API.STREAM.PURGE.DB_VACUUM", func() { _ = o.nc.PublishRequest("$JS.API.STREAM.PURGE.DB_VACUUM", o.nc.NewRespInbox(), nil) })
	o.refused(t, "ops queueing a job", "db.vacuum.jobs", func() { _ = o.nc.Publish("db.vacuum.jobs", []byte(`{}`)) })

	// A wrong password is refused outright.
	_, err = nats.Connect(s.ClientURL(), nats.UserInfo("worker", "guess"))
	require.Error(t, err)
}

// TestReadersCreateNoConsumers: publisher and ops read DB_VACUUM and DB_STATS
// one message at a time and cannot create a consumer, whose deliver subject
// (or pull reply) they would choose: the server delivers as the account, so
// one on DB_VACUUM delivering into db.vacuum.jobs turned each stored result
// into a job, forever.
func TestReadersCreateNoConsumers(t *testing.T) {
	s := startConfiguredServer(t)
	w := connectAs(t, s, "worker_js")
	js, err := jetstream.New(w.nc)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, maintenance.SetupStreams(ctx, js, maintenance.Config{}))
	for _, user := range []string{"publisher", "ops"} {
		a := connectAs(t, s, user)
		for _, subject := range []string{
			"$JS.API.CONSUMER.CREATE.DB_VACUUM", "$JS.API.CONSUMER.CREATE.DB_VACUUM.loop",
			"$JS.API.CONSUMER.CREATE.DB_VACUUM.loop.db.vacuum.results.>", "$JS.API.CONSUMER.DURABLE.CREATE.DB_VACUUM.loop",
			"$JS.API.CONSUMER.CREATE.DB_STATS", "$JS.API.CONSUMER.CREATE.DB_STATS.loop",
			"$JS.API.CONSUMER.MSG.NEXT.DB_VACUUM.x", "$JS.API.CONSUMER.CREATE.DB_JOBS.x",
		} {
			body := []byte(`{"stream_name":"DB_VACUUM","config":{"deliver_subject":"db.vacuum.jobs","ack_policy":"none","deliver_policy":"all"}}`)
			a.refused(t, user+" publishing "+subject, subject, func() { _ = a.nc.PublishRequest(subject, a.nc.NewRespInbox(), body) })
		}
		ajs, err := jetstream.New(a.nc)
		require.NoError(t, err)
		short, cancel := context.WithTimeout(ctx, time.Second)
		_, err = ajs.OrderedConsumer(short, maintenance.StreamVacuum, jetstream.OrderedConsumerConfig{})
		cancel()
		require.Error(t, err, "%s created a consumer", user)
	}
}

// TestServingUserCannotStoreOrQueue: micro answers $SRV.PING, INFO and STATS
// on whatever reply subject it is given. Sent as ops with replies naming the
// results and jobs subjects, they store and queue nothing: the worker serves
// as a user that may publish only into its callers' inboxes, and does its
// JetStream work as worker_js. Each refused answer is counted.
func TestServingUserCannotStoreOrQueue(t *testing.T) {
	s := startConfiguredServer(t)
	w := connectAs(t, s, "worker")
	_, reg := startWorker(t, s, w.nc)
	ctx := context.Background()
	ops := connectAs(t, s, "ops")
	ojs, err := jetstream.New(ops.nc)
	require.NoError(t, err)
	lastSeqs := func() map[string]uint64 {
		seqs := map[string]uint64{}
		for _, name := range []string{maintenance.StreamJobs, maintenance.StreamVacuum, maintenance.StreamStats} {
			st, err := ojs.Stream(ctx, name)
			require.NoError(t, err)
			seqs[name] = st.CachedInfo().State.LastSeq
		}
		return seqs
	}
	before := lastSeqs()
	sent := 0
	for _, req := range []string{"$SRV.PING", "$SRV.INFO.dbworker", "$SRV.STATS", "$SRV.PING.dbworker"} {
		for _, reply := range []string{"db.vacuum.results.x", "db.vacuum.results._database", "db.stats.results.a.b", "db.stats.jobs", "db.vacuum.jobs", "db.vacuum.progress.x"} {
			require.NoError(t, ops.nc.PublishRequest(req, reply, nil))
			sent++
		}
	}
	require.NoError(t, ops.nc.Flush())
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, float64(sent), testenv.Counter(c, reg.Registry, "dbworker_replies_dropped_total"))
	}, 10*time.Second, 20*time.Millisecond, "every $SRV answer was refused by the broker and counted")
	require.Equal(t, before, lastSeqs(), "nothing was stored or queued")

	// The serving user can do nothing but answer (checked on a connection of
	// its own: the worker counts refusals on the one it serves with).
	w = connectAs(t, s, "worker")
	for _, subject := range []string{"db.vacuum.jobs", "db.vacuum.results.x", "db.stats.results.x", "$JS.API.INFO", "$JS.API.STREAM.INFO.DB_VACUUM", "_INBOX_worker_js.x"} {
		w.refused(t, "worker publishing "+subject, subject, func() { _ = w.nc.Publish(subject, nil) })
	}
	// ops discovers the service as before.
	msg, err := ops.nc.Request("$SRV.INFO.dbworker", nil, 5*time.Second)
	require.NoError(t, err)
	require.Contains(t, string(msg.Data), `"name":"dbworker"`)
}
