package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jeeves-avionics/dbworker/pkg/client"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// stackChurn ignores the goroutines the package's worker starts and ends
// as it goes (its jobs consumer's fetches), for tests that look for their
// own goroutines with goleak.
var stackChurn = goleak.IgnoreAnyFunction("github.com/nats-io/nats.go/jetstream.(*pullConsumer).fetch.func1")

// baseline returns the goroutines running now, once c's connection has
// made the one it starts at its first request (its reply subscription).
func baseline(t *testing.T, c *client.Client) goleak.Option {
	t.Helper()
	_, err := c.Health(context.Background())
	require.NoError(t, err)
	return goleak.IgnoreCurrent()
}

func TestHealth(t *testing.T) {
	h, err := newClient(t).Health(context.Background())
	require.NoError(t, err)
	require.Equal(t, messages.HealthHealthy, h.Status)
}

func TestKV(t *testing.T) {
	ctx := context.Background()
	kv := newClient(t).KV()
	require.NoError(t, kv.Set(ctx, "cfg", map[string]int{"a": 1}, client.WithTTL(time.Minute)))
	var cfg map[string]int
	require.NoError(t, kv.Get(ctx, "cfg", &cfg))
	require.Equal(t, 1, cfg["a"])
	cnt, err := kv.Incr(ctx, "cnt", 5)
	require.NoError(t, err)
	require.EqualValues(t, 5, cnt)
	deleted, err := kv.Delete(ctx, "cfg")
	require.NoError(t, err)
	require.True(t, deleted)
	require.ErrorIs(t, kv.Get(ctx, "cfg", &cfg), client.ErrKeyNotFound)

	require.NoError(t, kv.Set(ctx, "short", "v", client.WithTTL(50*time.Millisecond)))
	require.Eventually(t, func() bool {
		var v string
		return kv.Get(ctx, "short", &v) != nil
	}, 3*time.Second, 20*time.Millisecond, "WithTTL expires the value")
}

func TestRateLimits(t *testing.T) {
	ctx := context.Background()
	rl := newClient(t).RateLimits()
	res, err := rl.Allow(ctx, "rl:cost", 5, time.Minute, client.WithCost(3))
	require.NoError(t, err)
	require.True(t, res.Allowed)
	require.EqualValues(t, 2, res.Remaining)
	res, err = rl.Allow(ctx, "rl:cost", 5, time.Minute, client.WithCost(0))
	require.NoError(t, err)
	require.EqualValues(t, 2, res.Remaining, "cost 0 asks without consuming")
	res, err = rl.Allow(ctx, "rl:cost", 5, time.Minute)
	require.NoError(t, err)
	require.EqualValues(t, 1, res.Remaining, "the default cost is 1")
	res, err = rl.Allow(ctx, "rl:cost", 5, time.Minute, client.WithCost(2))
	require.NoError(t, err)
	require.False(t, res.Allowed)
	require.Positive(t, res.RetryAfterMS)
}

func TestLocks(t *testing.T) {
	ctx := context.Background()
	locks := newClient(t).Locks()
	lock, err := locks.Acquire(ctx, "op:lock", time.Minute, client.WithOwner("me"))
	require.NoError(t, err)
	require.True(t, lock.Acquired)
	require.NotEmpty(t, lock.Lease)
	st, err := locks.Status(ctx, "op:lock")
	require.NoError(t, err)
	require.Equal(t, "me", st.Owner)
	require.Equal(t, lock.Token, st.Token)
	other, err := locks.Acquire(ctx, "op:lock", time.Minute, client.WithWait(50*time.Millisecond))
	require.NoError(t, err)
	require.False(t, other.Acquired, "held")
	require.Equal(t, "me", other.Owner)
	// A third party knowing the owner's name gets nowhere without the lease.
	ref, err := locks.Refresh(ctx, "op:lock", "me", time.Minute)
	require.NoError(t, err)
	require.Equal(t, messages.ReasonNotOwner, ref.Reason)
	rel, err := locks.Release(ctx, "op:lock", "me")
	require.NoError(t, err)
	require.Equal(t, messages.ReasonNotOwner, rel.Reason)
	ref, err = locks.Refresh(ctx, "op:lock", lock.Lease, time.Minute)
	require.NoError(t, err)
	require.True(t, ref.Refreshed)
	rel, err = locks.Release(ctx, "op:lock", lock.Lease)
	require.NoError(t, err)
	require.True(t, rel.Released)
}

func TestLockerRefreshesAndReportsLoss(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	before := baseline(t, c)
	l, err := c.Locks().Lock(ctx, "op:locker", 600*time.Millisecond)
	require.NoError(t, err)
	require.NotEmpty(t, l.Owner())
	require.Positive(t, l.Token())
	// Held well past its TTL (time passing is the point of this wait): the
	// background refresh keeps it.
	<-time.After(1500 * time.Millisecond)
	st, err := c.Locks().Status(ctx, "op:locker")
	require.NoError(t, err)
	require.Equal(t, l.Owner(), st.Owner)
	select {
	case <-l.Lost():
		t.Fatal(l.Err())
	default:
	}
	// Someone with the lease releases it behind the Locker's back: the next
	// refresh is refused, Lost closes and the refresh loop ends on its own.
	rel, err := c.Locks().Release(ctx, "op:locker", l.Lease())
	require.NoError(t, err)
	require.True(t, rel.Released)
	select {
	case <-l.Lost():
		require.ErrorContains(t, l.Err(), messages.ReasonNotHeld)
	case <-time.After(3 * time.Second):
		t.Fatal("loss not reported")
	}
	goleak.VerifyNone(t, before, stackChurn)
	require.Error(t, l.Unlock(ctx), "releasing a lost lock says so")
	require.NoError(t, l.Unlock(ctx), "a second Unlock does nothing")
}

// TestLockerStopsItsRefresh: the Locker's refresh goroutine runs while the
// lock is held, and Unlock ends it (goleak finds it before and not after).
func TestLockerStopsItsRefresh(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	before := baseline(t, c)
	l, err := c.Locks().Lock(ctx, "op:stops", time.Minute, client.WithOwner("svc"))
	require.NoError(t, err)
	require.Equal(t, "svc", l.Owner())
	require.ErrorContains(t, goleak.Find(before, stackChurn), "(*Locker).refresh", "the refresh loop runs while the lock is held")
	require.NoError(t, l.Unlock(ctx))
	goleak.VerifyNone(t, before, stackChurn)
	require.NoError(t, l.Unlock(ctx), "a second Unlock does nothing")
	st, err := c.Locks().Status(ctx, "op:stops")
	require.NoError(t, err)
	require.False(t, st.Held)

	// A second Lock of a held key is refused with ErrNotAcquired, leaving
	// nothing running.
	l, err = c.Locks().Lock(ctx, "op:stops", time.Minute)
	require.NoError(t, err)
	_, err = c.Locks().Lock(ctx, "op:stops", time.Minute)
	require.ErrorIs(t, err, client.ErrNotAcquired)
	require.NoError(t, l.Unlock(ctx))
	goleak.VerifyNone(t, before, stackChurn)
}

func TestEmbeddings(t *testing.T) {
	ctx := context.Background()
	e := newClient(t).Embeddings()
	h, err := e.Set(ctx, client.ByHash("h1"), []float32{1, 2})
	require.NoError(t, err)
	require.Equal(t, "h1", h)
	vs, err := e.MGet(ctx, []string{"h1", "h2"})
	require.NoError(t, err)
	require.Equal(t, [][]float32{{1, 2}, nil}, vs)
	v, err := e.Get(ctx, client.ByHash("h1"))
	require.NoError(t, err)
	require.Equal(t, []float32{1, 2}, v)
	_, err = e.Get(ctx, client.ByHash("h2"))
	require.ErrorIs(t, err, client.ErrKeyNotFound)

	th, err := e.Set(ctx, client.ByText("mini-lm", "hello"), []float32{0.5}, client.WithTTL(time.Hour))
	require.NoError(t, err)
	require.Len(t, th, 64, "a hex SHA-256")
	v, err = e.Get(ctx, client.ByHash(th))
	require.NoError(t, err, "the text's vector is under its hash")
	require.Equal(t, []float32{0.5}, v)

	hashes, err := e.MSet(ctx, []client.Embedding{{Key: client.ByHash("h3"), Vector: []float32{3}}, {Key: client.ByText("mini-lm", "bye"), Vector: []float32{4}}}, client.WithTTL(0))
	require.NoError(t, err)
	require.Len(t, hashes, 2)
	require.Equal(t, "h3", hashes[0])
	v, err = e.Get(ctx, client.ByText("mini-lm", "bye"))
	require.NoError(t, err)
	require.Equal(t, []float32{4}, v)

	deleted, err := e.Delete(ctx, client.ByText("mini-lm", "bye"))
	require.NoError(t, err)
	require.True(t, deleted)
	deleted, err = e.Delete(ctx, client.ByText("mini-lm", "bye"))
	require.NoError(t, err)
	require.False(t, deleted)
}

func TestMaintenance(t *testing.T) {
	ctx := context.Background()
	m := newClient(t).Maintenance()
	stats, err := m.Stats(ctx, messages.StatsRequest{Table: "users"})
	require.NoError(t, err)
	require.Equal(t, "users", stats.Tables[0].Table)
	vac, err := m.Vacuum(ctx, messages.VacuumRequest{Table: "users"})
	require.NoError(t, err)
	require.Equal(t, messages.StatusOK, vac.Status)
	job, err := m.VacuumAsync(ctx, messages.VacuumRequest{Table: "users"})
	require.NoError(t, err)
	require.Equal(t, "DB_JOBS", job.Stream)
	require.NotEmpty(t, job.JobID)
}

func TestVectors(t *testing.T) {
	ctx := context.Background()
	v := newClient(t).Vectors()
	col, err := v.CreateCollection(ctx, "client_docs", 3, client.WithMetric("cosine"), client.WithIndex("hnsw"))
	require.NoError(t, err)
	require.Equal(t, 3, col.Dimension)
	content := "the c document"
	n, err := v.Upsert(ctx, "client_docs", []client.VectorItem{
		{ID: "a", Vector: []float32{1, 0, 0}, Metadata: map[string]any{"lang": "en"}},
		{ID: "b", Vector: []float32{0, 1, 0}, Metadata: map[string]any{"lang": "fr"}},
		{ID: "c", Vector: []float32{0, 0.9, 0.1}, Metadata: map[string]any{"lang": "en"}, Content: &content},
	})
	require.NoError(t, err)
	require.Equal(t, 3, n)
	matches, err := v.Search(ctx, "client_docs", []float32{0, 1, 0}, client.WithK(1))
	require.NoError(t, err)
	require.Len(t, matches, 1)
	require.Equal(t, "b", matches[0].ID)
	matches, err = v.Search(ctx, "client_docs", []float32{0, 1, 0}, client.WithFilter(map[string]any{"lang": "en"}), client.WithEFSearch(40),
		client.WithMinSimilarity(0.5), client.WithReadOnly(), client.WithStatementTimeout(5*time.Second))
	require.NoError(t, err)
	require.Len(t, matches, 1)
	require.Equal(t, "c", matches[0].ID)
	require.Equal(t, content, *matches[0].Content)
	require.JSONEq(t, `{"lang":"en"}`, string(matches[0].Metadata))
	_, err = v.Search(ctx, "client_docs", []float32{0, 1})
	var e *client.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, messages.CodeBadRequest, e.Code)

	_, err = v.CreateCollection(ctx, "client_more", 3)
	require.NoError(t, err)
	_, err = v.Upsert(ctx, "client_more", []client.VectorItem{{ID: "m", Vector: []float32{0, 1, 0}}})
	require.NoError(t, err)
	matches, err = v.Search(ctx, "client_docs", []float32{0, 1, 0}, client.WithCollections("client_more"), client.WithK(2))
	require.NoError(t, err)
	require.Len(t, matches, 2)
	require.ElementsMatch(t, []string{"client_docs", "client_more"}, []string{matches[0].Collection, matches[1].Collection}, "the best of both")

	st, err := v.Stats(ctx, "client_docs")
	require.NoError(t, err)
	require.EqualValues(t, 3, st.Total)
	require.Equal(t, "cosine", st.Metric)
	deleted, err := v.Delete(ctx, "client_docs", []string{"a", "zz"})
	require.NoError(t, err)
	require.EqualValues(t, 1, deleted)
	st, err = v.RebuildIndex(ctx, "client_docs", "hnsw")
	require.NoError(t, err)
	require.EqualValues(t, 2, st.Total)
	_, err = v.Upsert(ctx, "client_docs", []client.VectorItem{{ID: "r", Vector: []float32{1, 1, 1}}}, client.WithReadOnly())
	require.ErrorAs(t, err, &e)
	require.Equal(t, messages.CodeForbidden, e.Code)
}

func TestGraph(t *testing.T) {
	ctx := context.Background()
	g := newClient(t).Graph()
	label := "X"
	node, err := g.AddNode(ctx, client.NodeSpec{ID: "x", Type: "person", Label: &label, Properties: map[string]any{"age": 3}})
	require.NoError(t, err)
	require.Equal(t, "person", node.NodeType)
	_, err = g.AddNode(ctx, client.NodeSpec{ID: "y"})
	require.NoError(t, err)
	_, err = g.AddNode(ctx, client.NodeSpec{ID: "z"})
	require.NoError(t, err)
	w := 2.5
	edge, err := g.AddEdge(ctx, client.EdgeSpec{From: "x", To: "y", Type: "knows", Weight: &w})
	require.NoError(t, err)
	require.Equal(t, 2.5, edge.Weight)
	_, err = g.AddEdge(ctx, client.EdgeSpec{From: "y", To: "z"})
	require.NoError(t, err)

	nb, err := g.Neighbors(ctx, "y", client.WithDirection("in"), client.WithEdgeType("knows"), client.WithLimit(10))
	require.NoError(t, err)
	require.Len(t, nb, 1)
	require.Equal(t, "x", nb[0].Node.NodeID)
	path, err := g.FindPath(ctx, "x", "z")
	require.NoError(t, err)
	require.True(t, path.Found)
	require.Len(t, path.Edges, 2)
	path, err = g.FindPath(ctx, "x", "z", client.WithDepth(1))
	require.NoError(t, err)
	require.False(t, path.Found, "WithDepth is find_path's max_depth")
	sub, err := g.Subgraph(ctx, "x", client.WithDepth(1), client.WithReadOnly())
	require.NoError(t, err)
	require.Len(t, sub.Nodes, 2, "WithDepth is query_subgraph's depth")
	del, err := g.DeleteNode(ctx, "y")
	require.NoError(t, err)
	require.True(t, del.Deleted)
	require.EqualValues(t, 2, del.EdgesDeleted)
	_, err = g.AddNode(ctx, client.NodeSpec{ID: "w"}, client.WithReadOnly())
	var e *client.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, messages.CodeForbidden, e.Code)
}
