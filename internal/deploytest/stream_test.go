package deploytest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/pkg/client"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// bigQuery's answer, about 18 MB, is three messages of the shipped conf's
// 8 MB max payload.
const bigQuery = "SELECT g AS id, md5(g::text) AS a, md5((-g)::text) AS b FROM generate_series(1, 200000) g"

// TestStreamsUnderTheShippedConf: a calling service reads a streamed answer
// under the shipped conf: its rows come on its own inbox, and it may grant
// credit on db.stream.*, where the worker listens (with a window of one
// message, every message after the first needs it). No calling service may
// listen there, so none can read another's credit or stand in for the
// worker.
func TestStreamsUnderTheShippedConf(t *testing.T) {
	s := startConfiguredServer(t)
	startWorker(t, s, connectAs(t, s, "worker").nc)
	orders := connectAs(t, s, "orders")

	inbox := orders.nc.NewInbox()
	sub, err := orders.nc.SubscribeSync(inbox)
	require.NoError(t, err)
	require.NoError(t, sub.SetPendingLimits(-1, -1))
	req := nats.NewMsg("db.execute")
	req.Reply, req.Data = inbox, []byte(`{"sql":"`+bigQuery+`"}`)
	req.Header.Set(messages.HeaderStreamWindow, "1")
	require.NoError(t, orders.nc.PublishMsg(req))
	var credit string
	for seq := 1; ; seq++ {
		m, err := sub.NextMsg(15 * time.Second)
		require.NoError(t, err, "message %d", seq)
		require.Empty(t, m.Header.Get("Nats-Service-Error-Code"), "%.200s", m.Data)
		if seq == 1 {
			credit = m.Header.Get(messages.HeaderStreamCredit)
			require.Regexp(t, `^db\.stream\.[A-Z2-7]{26}$`, credit)
		}
		if m.Header.Get(messages.HeaderStreamEnd) == "true" {
			require.Greater(t, seq, 3, "the answer was streamed")
			require.JSONEq(t, `{"row_count":200000,"rows_affected":200000,"command":"SELECT 200000","truncated":false}`, string(m.Data))
			break
		}
		require.NoError(t, orders.nc.Publish(credit, fmt.Appendf(nil, `{"ack":%d}`, seq)))
	}

	// The client does the same.
	c, err := client.New(orders.nc)
	require.NoError(t, err)
	res, err := c.Query(context.Background(), bigQuery, nil)
	require.NoError(t, err)
	require.EqualValues(t, 200000, res.RowsAffected)

	for _, user := range []string{"orders", "billing", "publisher", "ops"} {
		a := connectAs(t, s, user)
		a.refused(t, user+" listening for credit", "db.stream.*", func() { _, _ = a.nc.SubscribeSync("db.stream.*") })
	}
	for _, user := range []string{"publisher", "ops"} {
		a := connectAs(t, s, user)
		a.refused(t, user+" granting credit", "db.stream.X", func() { _ = a.nc.Publish("db.stream.X", []byte(`{"ack":1}`)) })
	}
}
