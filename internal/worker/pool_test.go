package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// TestQueueGroupSharesWork starts two workers in one queue group and checks
// both answer.
func TestQueueGroupSharesWork(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(t, "w2", options{maxConns: 4, acquire: 5 * time.Second, mode: "read_write", maxRows: 100, maxConcurrent: 4})
	seen := map[string]int{}
	for i := 0; i < 60; i++ {
		a := b.request(subjects.DBHealth, nil)
		require.Empty(t, a.status, "%s", a.body)
		var h messages.HealthResult
		require.NoError(t, json.Unmarshal(a.body, &h))
		seen[h.Worker.ID]++
	}
	require.Len(t, seen, 2, "both workers answer: %v", seen)
}

// TestSlowQueriesDoNotBlockFastOnes: with requests handed to a pool, a fast
// query is answered while slow ones run.
func TestSlowQueriesDoNotBlockFastOnes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := b.send(subjects.DBExecute, []byte(`{"sql":"SELECT pg_sleep(1)"}`))
			if assert.NoError(t, err) {
				assert.Empty(t, a.status, "%s", a.body)
			}
		}()
	}
	require.Eventually(t, func() bool { return b.w.InFlight() == 3 }, 5*time.Second, 5*time.Millisecond)
	b.ok(`{"sql":"SELECT 1"}`)
	require.GreaterOrEqual(t, b.w.InFlight(), int64(3), "the fast query was answered while the slow ones still ran")
	wg.Wait()
}

// TestDrainAnswersInFlight stops a worker with requests in flight: every one
// is answered, none lost.
func TestDrainAnswersInFlight(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.maxConcurrent = 4 })
	const n = 12 // more than the db lane: some wait in its queue
	inbox := b.nc.NewRespInbox()
	replies, err := b.nc.SubscribeSync(inbox + ".*")
	require.NoError(t, err)
	for i := 0; i < n; i++ {
		body := fmt.Sprintf(`{"sql":"SELECT %d AS i, pg_sleep(0.3)"}`, i)
		require.NoError(t, b.nc.PublishRequest(b.sub.Of(subjects.DBExecute), fmt.Sprintf("%s.%d", inbox, i), []byte(body)))
	}
	require.NoError(t, b.nc.Flush()) // the server has every request
	require.Eventually(t, func() bool { return b.w.InFlight() == n }, 5*time.Second, 5*time.Millisecond,
		"four running and the others waiting in the lane's queue")
	require.NoError(t, b.w.Stop(context.Background()))
	got := map[string]bool{}
	for i := 0; i < n; i++ {
		msg, err := replies.NextMsg(10 * time.Second)
		require.NoError(t, err, "a request in flight was not answered (%d of %d)", i, n)
		require.Empty(t, msg.Header.Get("Nats-Service-Error-Code"), "%s", msg.Data)
		got[msg.Subject] = true
	}
	require.Len(t, got, n)
	// Stopped: nothing serves any more.
	_, err = b.nc.Request(b.sub.Of(subjects.DBExecute), []byte(`{"sql":"SELECT 1"}`), time.Second)
	require.Error(t, err)
}

// TestMicroDiscovery: `nats micro ls/info` see the service and its endpoints,
// under the subject prefix.
func TestMicroDiscovery(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.prefix = "prod." })
	msg, err := b.nc.Request("$SRV.INFO.dbworker", nil, 5*time.Second)
	require.NoError(t, err)
	var info micro.Info
	require.NoError(t, json.Unmarshal(msg.Data, &info))
	require.Equal(t, "dbworker", info.Name)
	require.Equal(t, "prod.", info.Metadata["subject_prefix"], "the prefix tells environments apart")
	require.Equal(t, "w1", info.Metadata["worker_id"])
	subs := map[string]string{}
	for _, ep := range info.Endpoints {
		subs[ep.Subject] = ep.QueueGroup
	}
	require.Equal(t, "dbworker", subs["prod.db.execute"])
	require.Equal(t, "dbworker", subs["prod.db.health"])
	b.ok(`{"sql":"SELECT 1"}`) // b.exec applies the prefix
}

func TestHealth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.request(subjects.DBHealth, nil)
	require.Empty(t, a.status)
	var h messages.HealthResult
	require.NoError(t, json.Unmarshal(a.body, &h))
	require.Equal(t, "healthy", h.Status)
	require.Equal(t, "healthy", h.Postgres.Status)
	require.NotEmpty(t, h.Postgres.Version)
	require.NotNil(t, h.Postgres.PGVector)
	require.EqualValues(t, 8, h.Postgres.Pool.Max)
	require.Equal(t, "memory", h.State.Backend)
	require.Equal(t, "healthy", h.State.Status)
	require.True(t, h.NATS.JetStream)
	require.Equal(t, "w1", h.Worker.ID)
	require.EqualValues(t, 1, h.Worker.InFlight)
	e := b.request(subjects.DBHealth, []byte(`{"x":1}`)).errorOf(t)
	require.Equal(t, "BAD_REQUEST", e["code"])
}

// TestRequestID: a caller's Request-Id (or Nats-Msg-Id) names the request in
// the worker's logs and comes back on the answer; without one the worker
// makes one.
func TestRequestID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for header, id := range map[string]string{"Request-Id": "req-123", "Nats-Msg-Id": "msg-456"} {
		msg := nats.NewMsg(b.sub.Of(subjects.DBHealth))
		msg.Header.Set(header, id)
		reply, err := b.nc.RequestMsg(msg, 5*time.Second)
		require.NoError(t, err)
		require.Equal(t, id, reply.Header.Get("Request-Id"), header)
	}
	reply, err := b.nc.Request(b.sub.Of(subjects.DBHealth), nil, 5*time.Second)
	require.NoError(t, err)
	require.NotEmpty(t, reply.Header.Get("Request-Id"))
}
