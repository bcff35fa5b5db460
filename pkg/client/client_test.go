package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/pkg/client"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

func TestEveryOperation(t *testing.T) {
	ctx := context.Background()
	c := client.New(nc)

	h, err := c.Health(ctx)
	require.NoError(t, err)
	require.Equal(t, "healthy", h.Status)

	row, err := c.Insert(ctx, "users", map[string]any{"email": "op@x"})
	require.NoError(t, err)
	require.NotNil(t, row["id"])
	n, err := c.Update(ctx, "users", map[string]any{"active": false}, "email = :e", map[string]any{"e": "op@x"})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	res, err := c.Query(ctx, "SELECT email, active FROM users WHERE email = ?", []any{"op@x"})
	require.NoError(t, err)
	var rows []struct {
		Email  string
		Active bool
	}
	require.NoError(t, res.ScanRows(&rows))
	require.Equal(t, "op@x", rows[0].Email)
	require.False(t, rows[0].Active)

	_, err = c.Tx(ctx, client.Statement{SQL: "INSERT INTO users (email) VALUES ('tx@x')"}, client.Statement{SQL: "SELECT 1/0"})
	var e *client.Error
	require.True(t, errors.As(err, &e))
	require.Equal(t, "22012", e.SQLState)
	require.EqualValues(t, 1, *e.FailedIndex)

	lock, err := c.AcquireLock(ctx, "op:lock", "me", time.Minute, 0)
	require.NoError(t, err)
	require.True(t, lock.Acquired)
	st, err := c.LockStatus(ctx, "op:lock")
	require.NoError(t, err)
	require.Equal(t, "me", st.Owner)
	ref, err := c.RefreshLock(ctx, "op:lock", "me", time.Minute)
	require.NoError(t, err)
	require.True(t, ref.Refreshed)
	rel, err := c.ReleaseLock(ctx, "op:lock", "me")
	require.NoError(t, err)
	require.True(t, rel.Released)

	require.NoError(t, c.SetEmbedding(ctx, "h1", []float32{1, 2}, 0))
	vs, err := c.MGetEmbeddings(ctx, []string{"h1", "h2"})
	require.NoError(t, err)
	require.Equal(t, [][]float32{{1, 2}, nil}, vs)
	v, hit, err := c.GetEmbedding(ctx, "h1")
	require.NoError(t, err)
	require.True(t, hit)
	require.Equal(t, []float32{1, 2}, v)

	require.NoError(t, c.KVSet(ctx, "cfg", map[string]int{"a": 1}, time.Minute))
	var cfg map[string]int
	found, err := c.KVGet(ctx, "cfg", &cfg)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, 1, cfg["a"])
	cnt, err := c.KVIncr(ctx, "cnt", 5)
	require.NoError(t, err)
	require.EqualValues(t, 5, cnt)
	deleted, err := c.KVDelete(ctx, "cfg")
	require.NoError(t, err)
	require.True(t, deleted)

	stats, err := c.Stats(ctx, messages.StatsRequest{Table: "users"})
	require.NoError(t, err)
	require.Equal(t, "users", stats.Tables[0].Table)
	vac, err := c.Vacuum(ctx, messages.VacuumRequest{Table: "users"})
	require.NoError(t, err)
	require.Equal(t, "ok", vac.Status)
	job, err := c.VacuumAsync(ctx, messages.VacuumRequest{Table: "users"})
	require.NoError(t, err)
	require.Equal(t, "DB_JOBS", job.Stream)
}

func TestDeadlineIsTheTimeout(t *testing.T) {
	c := client.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Query(ctx, "SELECT pg_sleep(3)", nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 2*time.Second)
}

func TestNoWorker(t *testing.T) {
	c := client.New(nc, client.WithPrefix("nobody"))
	_, err := c.Health(context.Background())
	require.ErrorIs(t, err, client.ErrNoWorker)
}

func TestLockerRefreshesAndReportsLoss(t *testing.T) {
	ctx := context.Background()
	c := client.New(nc)
	l, err := c.Lock(ctx, "op:locker", "", 600*time.Millisecond, 0)
	require.NoError(t, err)
	require.NotEmpty(t, l.Owner())
	require.Positive(t, l.Token())
	// Held well past its TTL (time passing is the point of this wait): the
	// background refresh keeps it.
	<-time.After(1500 * time.Millisecond)
	st, err := c.LockStatus(ctx, "op:locker")
	require.NoError(t, err)
	require.Equal(t, l.Owner(), st.Owner)
	select {
	case <-l.Lost():
		t.Fatal(l.Err())
	default:
	}
	// Someone force-releases it (here: its own owner, behind its back): the
	// next refresh is refused and Lost closes.
	_, err = c.ReleaseLock(ctx, "op:locker", l.Owner())
	require.NoError(t, err)
	select {
	case <-l.Lost():
		require.ErrorContains(t, l.Err(), "not_held")
	case <-time.After(3 * time.Second):
		t.Fatal("loss not reported")
	}
	require.Error(t, l.Unlock(ctx), "releasing a lost lock says so")
}

func TestVectorAndGraph(t *testing.T) {
	ctx := context.Background()
	c := client.New(nc)
	col, err := c.CreateCollection(ctx, "client_docs", 3, "cosine")
	require.NoError(t, err)
	require.Equal(t, 3, col.Dimension)
	n, err := c.UpsertVectors(ctx, "client_docs", messages.VectorItem{ID: "a", Vector: []float64{1, 0, 0}}, messages.VectorItem{ID: "b", Vector: []float64{0, 1, 0}})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	matches, err := c.SearchVectors(ctx, messages.VectorRequest{Collection: "client_docs", Vector: []float64{0, 1, 0}, K: 1})
	require.NoError(t, err)
	require.Equal(t, "b", matches[0].ID)
	_, err = c.SearchVectors(ctx, messages.VectorRequest{Collection: "client_docs", Vector: []float64{0, 1}})
	var e *client.Error
	require.True(t, errors.As(err, &e))
	require.Equal(t, messages.CodeBadRequest, e.Code)

	var node messages.GraphNode
	require.NoError(t, c.Graph(ctx, messages.GraphRequest{Op: messages.OpAddNode, NodeID: "x"}, &node))
	require.NoError(t, c.Graph(ctx, messages.GraphRequest{Op: messages.OpAddNode, NodeID: "y"}, &node))
	var edge messages.GraphEdge
	require.NoError(t, c.Graph(ctx, messages.GraphRequest{Op: messages.OpAddEdge, From: "x", To: "y"}, &edge))
	var path messages.GraphPathResult
	require.NoError(t, c.Graph(ctx, messages.GraphRequest{Op: messages.OpFindPath, From: "x", To: "y"}, &path))
	require.True(t, path.Found)
	require.Len(t, path.Edges, 1)
}

func TestOptions(t *testing.T) {
	// WithTimeout applies when the context has no deadline.
	c := client.New(nc, client.WithTimeout(150*time.Millisecond))
	_, err := c.Query(context.Background(), "SELECT pg_sleep(3)", nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// WithRequestID sends the id in the Request-Id header; WithPrefix picks
	// the subjects. A spy stands in for a worker under the prefix "spy.".
	got := make(chan string, 1)
	sub, err := nc.Subscribe("spy.db.health", func(m *nats.Msg) {
		got <- m.Header.Get("Request-Id")
		_ = m.Respond([]byte(`{"status":"healthy"}`))
	})
	require.NoError(t, err)
	defer sub.Unsubscribe()
	h, err := client.New(nc, client.WithPrefix("spy")).Health(client.WithRequestID(context.Background(), "req-42"))
	require.NoError(t, err)
	require.Equal(t, "healthy", h.Status)
	require.Equal(t, "req-42", <-got)
}

func TestVectorRaw(t *testing.T) {
	ctx := context.Background()
	c := client.New(nc)
	_, err := c.CreateCollection(ctx, "client_raw", 3, "")
	require.NoError(t, err)
	raw, err := c.Vector(ctx, messages.VectorRequest{Op: messages.OpStats, Collection: "client_raw"})
	require.NoError(t, err)
	var st messages.VectorStats
	require.NoError(t, json.Unmarshal(raw, &st))
	require.Equal(t, "client_raw", st.Name)
	require.Equal(t, "cosine", st.Metric)
}

// TestInboxPrefix: requests are answered on the connection's inbox prefix.
func TestInboxPrefix(t *testing.T) {
	for prefix, want := range map[string]string{"_INBOX_orders": "_INBOX_orders.", "_INBOX_orders.": "_INBOX_orders.", "": "_INBOX."} {
		pnc, err := nats.Connect(nc.ConnectedUrl(), client.InboxPrefix(prefix))
		require.NoError(t, err)
		defer pnc.Close()
		require.True(t, strings.HasPrefix(pnc.NewRespInbox(), want), pnc.NewRespInbox())
		h, err := client.New(pnc).Health(context.Background())
		require.NoError(t, err, prefix)
		require.NotEmpty(t, h.Status)
	}
	_, err := nats.Connect(nc.ConnectedUrl(), client.InboxPrefix("_INBOX.>"))
	require.Error(t, err)
}
