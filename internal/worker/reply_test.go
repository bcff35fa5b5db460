package worker

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

func TestReplyDropReason(t *testing.T) {
	prod, err := subjects.New("prod.")
	require.NoError(t, err)
	trusted := []string{"_INBOX.", "_INBOX_"}
	for _, c := range []struct {
		reply, want string
		trusted     []string
	}{
		{reply: "_INBOX.abc.def", want: ""},
		{reply: "_INBOX_orders.abc", want: ""},
		{reply: "_INBOX_orders.abc", trusted: []string{"_INBOX_orders."}, want: ""},
		{reply: "_INBOX_billing.abc", trusted: []string{"_INBOX_orders."}, want: replyUntrusted},
		{reply: "_INBOX_orders", trusted: []string{"_INBOX_orders."}, want: replyUntrusted},
		{reply: "_INBOX.", want: replyMalformed},
		{reply: "_INBOX", want: replyUntrusted},
		{reply: "_INBOX_orders", want: replyUntrusted},   // no inbox has this shape
		{reply: "_INBOX_orders_x", want: replyUntrusted}, // nor this
		{reply: "_INBOX_orders.", want: replyMalformed},
		{reply: "_INBOX_orders", trusted: []string{"_INBOX_orders"}, want: replyUntrusted},
		{reply: "_INBOX_orders.x", trusted: []string{"_INBOX_orders"}, want: ""},
		{reply: "replies.x", want: replyUntrusted},
		{reply: "db.vacuum.jobs", want: replyOwn},
		{reply: "prod.db.vacuum.jobs", want: replyOwn},
		{reply: "prod.db.vacuum.results.public.items", want: replyOwn},
		{reply: "db.stats.results.public.items", want: replyOwn},
		{reply: "prod.db.vacuum.progress.r1", want: replyOwn},
		{reply: "prod.state.kv", want: replyOwn},
		{reply: "cache.embedding", want: replyOwn},
		{reply: "prod.other.endpoint", want: replyOwn, trusted: []string{"prod."}},            // the request's own subject
		{reply: "prod.db.execute", want: replyOwn, trusted: []string{"prod.db."}},             // whatever is trusted
		{reply: "$JS.API.STREAM.DELETE.DB_VACUUM", want: replySystem, trusted: []string{"$"}}, // likewise
		{reply: "$SYS.REQ.SERVER.PING", want: replySystem},
		{reply: "$SRV.PING", want: replySystem},
		{reply: "_INBOX.*", want: replyMalformed},
		{reply: "_INBOX.>", want: replyMalformed},
		{reply: "_INBOX..x", want: replyMalformed},
		{reply: "_INBOX.a b", want: replyMalformed},
	} {
		tr := trusted
		if c.trusted != nil {
			tr = c.trusted
		}
		require.Equal(t, c.want, replyDropReason(c.reply, "prod.other.endpoint", tr, prod), "%s under %v", c.reply, tr)
	}
}

// TestAnswersOnlyTrustedReplies: a request whose reply subject is a job, a
// result subject, an endpoint, the JetStream API or anything but an inbox
// is handled, and its answer dropped and counted: nothing is queued, stored
// or deleted, and nobody listening there receives it.
func TestAnswersOnlyTrustedReplies(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.maintenance = true; o.prefix = "r1." })
	ctx := context.Background()
	js, err := jetstream.New(b.nc)
	require.NoError(t, err)
	lastSeq := func(stream string) uint64 {
		s, err := js.Stream(ctx, stream)
		require.NoError(t, err, stream)
		return s.CachedInfo().State.LastSeq
	}
	jobs, vacuum := lastSeq("R1_DB_JOBS"), lastSeq("R1_DB_VACUUM")
	listener, err := b.nc.SubscribeSync("elsewhere.>")
	require.NoError(t, err)

	replies := []string{
		"r1.db.vacuum.jobs", "r1.db.vacuum.results.public.items", "r1.db.stats.results.public.items",
		"db.vacuum.jobs", "r1.db.health", "r1.state.kv",
		"$JS.API.STREAM.DELETE.R1_DB_VACUUM", "elsewhere.listening",
	}
	for _, reply := range replies {
		require.NoError(t, b.nc.PublishRequest(b.sub.Of(subjects.DBHealth), reply, nil))
	}
	reg := b.w.cfg.Metrics.Registry
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.GreaterOrEqual(c, testenv.Counter(c, reg, "dbworker_requests_total"), float64(len(replies)))
	}, 10*time.Second, 20*time.Millisecond, "the worker handled every request")

	require.Equal(t, jobs, lastSeq("R1_DB_JOBS"), "no job was queued")
	require.Equal(t, vacuum, lastSeq("R1_DB_VACUUM"), "no result was stored, and the stream is still there")
	require.Equal(t, float64(len(replies)), testenv.Counter(t, reg, "dbworker_replies_dropped_total"), "every answer was dropped and counted")
	require.NoError(t, b.nc.Flush())
	n, _, err := listener.Pending()
	require.NoError(t, err)
	require.Zero(t, n, "nothing reached a subject outside the inboxes")

	// Callers on their inboxes are answered as before.
	require.NotEmpty(t, b.ok(``, subjects.DBHealth)["status"])
}
