package deploytest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/config"
	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/client"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// TestInboxesArePrivate: under the shipped conf, one service cannot read
// another's answers. billing tries orders' inbox, the default _INBOX and
// everything; each is refused and billing receives nothing while orders is
// answered. No other user can read orders' inbox either.
func TestInboxesArePrivate(t *testing.T) {
	s := startConfiguredServer(t)
	startWorker(t, s, connectAs(t, s, "worker").nc)

	billing := connectAs(t, s, "billing")
	var spies []*nats.Subscription
	for _, subject := range []string{"_INBOX_orders.>", "_INBOX_orders.*", "_INBOX.>", "_INBOX_worker.>", ">"} {
		billing.refused(t, "billing reading "+subject, subject, func() {
			sub, err := billing.nc.SubscribeSync(subject)
			require.NoError(t, err)
			spies = append(spies, sub)
		})
	}
	for _, user := range []string{"publisher", "ops", "worker"} {
		a := connectAs(t, s, user)
		a.refused(t, user+" reading orders' inbox", "_INBOX_orders.>", func() { _, _ = a.nc.SubscribeSync("_INBOX_orders.>") })
	}

	orders := connectAs(t, s, "orders")
	c, err := client.New(orders.nc)
	require.NoError(t, err)
	ctx := context.Background()
	for range 3 {
		res, err := c.Query(ctx, "select 1 as x", nil)
		require.NoError(t, err)
		require.JSONEq(t, `[{"x":1}]`, string(res.Rows))
	}
	require.NoError(t, billing.nc.Flush())
	for _, sub := range spies {
		n, _, err := sub.Pending()
		require.NoError(t, err)
		require.Zero(t, n, "billing received one of orders' answers on %s", sub.Subject)
	}

	// A service left on the default _INBOX gets no answer at all: it may not
	// read _INBOX.>, and the worker may not publish there.
	lost := connectAs(t, s, "billing", nats.CustomInboxPrefix("_INBOX"))
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	lc, err := client.New(lost.nc)
	require.NoError(t, err)
	_, err = lc.Health(short)
	require.Error(t, err)
}

// TestAnswersGoOnlyToInboxes: a caller that names one of the worker's own
// subjects, or the JetStream API, as its reply subject gets nothing queued,
// stored or deleted; each answer is dropped and counted.
func TestAnswersGoOnlyToInboxes(t *testing.T) {
	s := startConfiguredServer(t)
	_, reg := startWorker(t, s, connectAs(t, s, "worker").nc)
	ctx := context.Background()
	ops, err := jetstream.New(connectAs(t, s, "ops").nc)
	require.NoError(t, err)
	lastSeqs := func() map[string]uint64 {
		seqs := map[string]uint64{}
		for _, name := range []string{maintenance.StreamJobs, maintenance.StreamVacuum, maintenance.StreamStats} {
			st, err := ops.Stream(ctx, name)
			require.NoError(t, err, "stream %s is still there", name)
			seqs[name] = st.CachedInfo().State.LastSeq
		}
		return seqs
	}
	before := lastSeqs()

	orders := connectAs(t, s, "orders")
	replies := []string{
		"db.vacuum.jobs", "db.stats.jobs",
		"db.vacuum.results.public.items", "db.stats.results.public.items", "db.vacuum.progress.x",
		"db.execute", "state.kv",
		"$JS.API.STREAM.DELETE.DB_VACUUM", "$JS.API.STREAM.PURGE.DB_JOBS",
		"_INBOX_nobody_trusts_me.x", "_INBOX_worker.x", "_INBOX_worker_js.x", // pass the worker, refused by the broker
		"_INBOX_orders", "_INBOX_orders_x", // no inbox has this shape
	}
	for _, reply := range replies {
		require.NoError(t, orders.nc.PublishRequest("db.health", reply, nil))
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, float64(len(replies)), testenv.Counter(c, reg.Registry, "dbworker_requests_total"))
	}, 10*time.Second, 20*time.Millisecond, "the worker handled every request")
	require.Equal(t, before, lastSeqs(), "nothing was queued or stored, and every stream is still there")
	// The trusted prefixes are the defaults, so _INBOX_nobody_trusts_me and
	// the worker's own inboxes pass the worker and are refused by the broker:
	// counted too (broker_refused), once the broker has said so.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, float64(len(replies)), testenv.Counter(c, reg.Registry, "dbworker_replies_dropped_total"))
	}, 10*time.Second, 20*time.Millisecond, "every answer was dropped, by the worker or the broker, and counted")

	// Callers on their inboxes are answered as before.
	oc, err := client.New(orders.nc)
	require.NoError(t, err)
	h, err := oc.Health(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, h.Status)
}

// TestWorkerJetStreamIsItsOwn: the worker user manages its three streams and
// its jobs consumer, and nothing else.
func TestWorkerJetStreamIsItsOwn(t *testing.T) {
	s := startConfiguredServer(t)
	startWorker(t, s, connectAs(t, s, "worker").nc)
	w := connectAs(t, s, "worker_js")
	for _, subject := range []string{
		"$JS.API.STREAM.CREATE.OTHER", "$JS.API.STREAM.UPDATE.OTHER", "$JS.API.STREAM.DELETE.OTHER",
		"$JS.API.STREAM.DELETE.DB_VACUUM", "$JS.API.STREAM.PURGE.DB_JOBS", "$JS.API.STREAM.DELETE.DB_JOBS",
		"$JS.API.CONSUMER.DELETE.DB_JOBS.maintenance", "$JS.API.CONSUMER.CREATE.DB_VACUUM.spy",
		"$JS.API.STREAM.MSG.DELETE.DB_VACUUM", "$JS.API.STREAM.LIST",
	} {
		w.refused(t, "worker publishing "+subject, subject, func() { _ = w.nc.PublishRequest(subject, w.nc.NewRespInbox(), []byte(`{}`)) })
	}
	js, err := jetstream.New(w.nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"other.>"}})
	require.Error(t, err)

	ops, err := jetstream.New(connectAs(t, s, "ops").nc)
	require.NoError(t, err)
	var names []string
	for name := range ops.StreamNames(context.Background()).Name() {
		names = append(names, name)
	}
	require.ElementsMatch(t, []string{maintenance.StreamJobs, maintenance.StreamStats, maintenance.StreamVacuum}, names)
}

// TestProgramsUseTheirInboxes: the connection the worker and the publisher
// open from their configuration (NATS_USER, NATS_INBOX_PREFIX), and
// pkg/client with client.InboxPrefix, work end to end under the shipped conf.
func TestProgramsUseTheirInboxes(t *testing.T) {
	s := startConfiguredServer(t)
	connect := func(user string) *nats.Conn {
		t.Helper()
		c := config.Client{NATSURL: s.ClientURL(), NATSUser: user, NATSPassword: testenv.ShippedPasswords[user],
			NATSInboxPrefix: testenv.ShippedInbox(user)}
		nc, err := c.ConnectNATS("test-"+user, "", zerolog.Nop())
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		return nc
	}
	// The worker's two connections, from its configuration.
	wc := config.Config{Client: config.Client{NATSURL: s.ClientURL(), NATSUser: "worker", NATSPassword: testenv.ShippedPasswords["worker"],
		NATSInboxPrefix: "_INBOX_worker"}, NATSJSUser: "worker_js", NATSJSPassword: testenv.ShippedPasswords["worker_js"], NATSJSInboxPrefix: "_INBOX_worker_js"}
	jc, ok := wc.JetStreamClient()
	require.True(t, ok)
	jsnc, err := jc.ConnectNATS("test-worker-js", "", zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(jsnc.Close)
	pg, _ := startWorkerJS(t, s, connect("worker"), jsnc, "_INBOX_orders.", "_INBOX_billing.", "_INBOX_publisher.")
	pg.Exec(t, "CREATE TABLE t (x int)")
	ctx := context.Background()

	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("orders", testenv.ShippedPasswords["orders"]), client.InboxPrefix("_INBOX_orders"))
	require.NoError(t, err)
	defer nc.Close()
	oc, err := client.New(nc)
	require.NoError(t, err)
	res, err := oc.Query(ctx, "select 2 as x", nil)
	require.NoError(t, err)
	require.JSONEq(t, `[{"x":2}]`, string(res.Rows))

	// The publisher: streams, a stats request, results read back.
	pnc := connect("publisher")
	js, err := jetstream.New(pnc)
	require.NoError(t, err)
	require.NoError(t, maintenance.SetupStreams(ctx, js, maintenance.Config{}))
	pc, err := client.New(pnc)
	require.NoError(t, err)
	st, err := pc.Maintenance().Stats(ctx, messages.StatsRequest{Table: pg.Schema + ".t"})
	require.NoError(t, err)
	require.Len(t, st.Tables, 1)
	got, err := maintenance.LastResults(ctx, js, maintenance.StreamStats, "db.stats.results.>", 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Contains(t, string(got[0]), pg.Schema)
}
