package graph_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/graph"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

func TestMain(m *testing.M) { testenv.VerifyNoLeaks(m) }

func setup(t *testing.T) (*graph.Service, *testenv.Postgres) {
	t.Helper()
	pg := testenv.NewPostgres(t)
	cl, err := pgexec.Connect(context.Background(), pgexec.Config{DSN: pg.URL, MaxConns: 4})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(cl.Close)
	s := graph.New(cl)
	require.NoError(t, s.Init(context.Background()))
	require.NoError(t, s.Init(context.Background()), "migrations apply once")
	return s, pg
}

func do(t *testing.T, s *graph.Service, req messages.GraphRequest) any {
	t.Helper()
	res, err := s.Handle(context.Background(), &req)
	require.NoError(t, err, "%+v", req)
	return res
}

func fail(t *testing.T, s *graph.Service, req messages.GraphRequest) messages.Code {
	t.Helper()
	_, err := s.Handle(context.Background(), &req)
	require.Error(t, err, "%+v", req)
	return pgerr.AsError(err).Code
}

func nodes(t *testing.T, s *graph.Service, ids ...string) {
	t.Helper()
	for _, id := range ids {
		do(t, s, messages.GraphRequest{Op: "add_node", NodeID: id})
	}
}

func edge(t *testing.T, s *graph.Service, from, to string) {
	t.Helper()
	do(t, s, messages.GraphRequest{Op: "add_edge", From: from, To: to, EdgeType: "next"})
}

func pathIDs(p messages.GraphPathResult) []string {
	var ids []string
	for _, n := range p.Nodes {
		ids = append(ids, n.NodeID)
	}
	return ids
}

func TestNodesKeepEveryProperty(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	label := "Ada"
	n := do(t, s, messages.GraphRequest{Op: "add_node", NodeID: "ada", NodeType: "person", Label: &label,
		Properties: []byte(`{"born":1815,"langs":["en","fr"],"nested":{"deep":{"x":true}}}`)}).(messages.GraphNode)
	require.JSONEq(t, `{"born":1815,"langs":["en","fr"],"nested":{"deep":{"x":true}}}`, string(n.Properties))
	n = do(t, s, messages.GraphRequest{Op: "add_node", NodeID: "ada", NodeType: "person", Properties: []byte(`{"died":1852}`)}).(messages.GraphNode)
	require.JSONEq(t, `{"born":1815,"died":1852,"langs":["en","fr"],"nested":{"deep":{"x":true}}}`, string(n.Properties), "an update merges")
	require.Equal(t, "Ada", *n.Label)
	anon := do(t, s, messages.GraphRequest{Op: "add_node"}).(messages.GraphNode)
	require.NotEmpty(t, anon.NodeID)

	require.Equal(t, messages.CodeNotFound, fail(t, s, messages.GraphRequest{Op: "add_edge", From: "ada", To: "nobody"}))
	require.Equal(t, messages.CodeBadRequest, fail(t, s, messages.GraphRequest{Op: "add_node", Properties: []byte(`[1]`)}))
	require.Equal(t, messages.CodeBadRequest, fail(t, s, messages.GraphRequest{Op: "get_neighbors", NodeID: "ada", Direction: "sideways"}))
	require.Equal(t, messages.CodeBadRequest, fail(t, s, messages.GraphRequest{Op: "find_path", From: "ada", To: "ada", MaxDepth: 50}))
	require.Equal(t, messages.CodeNotFound, fail(t, s, messages.GraphRequest{Op: "get_neighbors", NodeID: "nobody"}))
	require.Equal(t, messages.CodeBadRequest, fail(t, s, messages.GraphRequest{Op: "fly"}))
	// Values with quotes are data, never SQL.
	do(t, s, messages.GraphRequest{Op: "add_node", NodeID: `x'); DROP TABLE graph_nodes; --`})
	require.NotNil(t, do(t, s, messages.GraphRequest{Op: "get_neighbors", NodeID: "ada"}))
}

func TestChain(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	const n = 30
	for i := 0; i < n; i++ {
		nodes(t, s, fmt.Sprint("c", i))
		if i > 0 {
			edge(t, s, fmt.Sprint("c", i-1), fmt.Sprint("c", i))
		}
	}
	p := do(t, s, messages.GraphRequest{Op: "find_path", From: "c0", To: "c5"}).(messages.GraphPathResult)
	require.True(t, p.Found)
	require.Equal(t, []string{"c0", "c1", "c2", "c3", "c4", "c5"}, pathIDs(p))
	require.Len(t, p.Edges, 5)
	p = do(t, s, messages.GraphRequest{Op: "find_path", From: "c0", To: "c20", MaxDepth: 10}).(messages.GraphPathResult)
	require.False(t, p.Found, "20 edges away, beyond max_depth")
	p = do(t, s, messages.GraphRequest{Op: "find_path", From: "c5", To: "c0"}).(messages.GraphPathResult)
	require.False(t, p.Found, "edges are directed")
	p = do(t, s, messages.GraphRequest{Op: "find_path", From: "c5", To: "c0", Direction: "both"}).(messages.GraphPathResult)
	require.Equal(t, []string{"c5", "c4", "c3", "c2", "c1", "c0"}, pathIDs(p))

	sub := do(t, s, messages.GraphRequest{Op: "query_subgraph", Root: "c10", Depth: 3, Direction: "both"}).(messages.GraphSubgraphResult)
	require.Len(t, sub.Nodes, 7)
	require.Len(t, sub.Edges, 6)
	nb := do(t, s, messages.GraphRequest{Op: "get_neighbors", NodeID: "c10"}).(messages.GraphNeighborsResult)
	require.Len(t, nb.Neighbors, 2)
	nb = do(t, s, messages.GraphRequest{Op: "get_neighbors", NodeID: "c10", Direction: "out"}).(messages.GraphNeighborsResult)
	require.Len(t, nb.Neighbors, 1)
	require.Equal(t, "c11", nb.Neighbors[0].Node.NodeID)
	require.Equal(t, "out", nb.Neighbors[0].Direction)

	// Soft delete: the node and its edges disappear; the path breaks.
	del := do(t, s, messages.GraphRequest{Op: "delete_node", NodeID: "c3"}).(map[string]any)
	require.EqualValues(t, 2, del["edges_deleted"])
	p = do(t, s, messages.GraphRequest{Op: "find_path", From: "c0", To: "c5"}).(messages.GraphPathResult)
	require.False(t, p.Found)
	nb = do(t, s, messages.GraphRequest{Op: "get_neighbors", NodeID: "c2"}).(messages.GraphNeighborsResult)
	require.Len(t, nb.Neighbors, 1)
	require.Equal(t, messages.CodeNotFound, fail(t, s, messages.GraphRequest{Op: "delete_node", NodeID: "c3"}))
}

func TestCycle(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	nodes(t, s, "a", "b", "c", "d")
	edge(t, s, "a", "b")
	edge(t, s, "b", "c")
	edge(t, s, "c", "a")
	edge(t, s, "c", "d")
	edge(t, s, "a", "a") // a self loop
	p := do(t, s, messages.GraphRequest{Op: "find_path", From: "b", To: "a", MaxDepth: 10}).(messages.GraphPathResult)
	require.Equal(t, []string{"b", "c", "a"}, pathIDs(p))
	p = do(t, s, messages.GraphRequest{Op: "find_path", From: "a", To: "d"}).(messages.GraphPathResult)
	require.Equal(t, []string{"a", "b", "c", "d"}, pathIDs(p))
	sub := do(t, s, messages.GraphRequest{Op: "query_subgraph", Root: "a", Depth: 10}).(messages.GraphSubgraphResult)
	require.Len(t, sub.Nodes, 4, "the cycle is walked once")
	require.Len(t, sub.Edges, 5)
	// Adding an existing edge updates it rather than doubling it.
	w := 3.5
	e := do(t, s, messages.GraphRequest{Op: "add_edge", From: "a", To: "b", EdgeType: "next", Weight: &w, Properties: []byte(`{"k":1}`)}).(messages.GraphEdge)
	require.Equal(t, 3.5, e.Weight)
	nb := do(t, s, messages.GraphRequest{Op: "get_neighbors", NodeID: "a", Direction: "out", EdgeType: "next"}).(messages.GraphNeighborsResult)
	require.Len(t, nb.Neighbors, 2)
	require.Equal(t, "b", nb.Neighbors[0].Node.NodeID, "heaviest first")
	// An edge outside its validity window is not followed.
	past := time.Now().Add(-time.Hour)
	do(t, s, messages.GraphRequest{Op: "add_edge", From: "d", To: "a", EdgeType: "old", ValidUntil: &past})
	nb = do(t, s, messages.GraphRequest{Op: "get_neighbors", NodeID: "d", Direction: "out"}).(messages.GraphNeighborsResult)
	require.Empty(t, nb.Neighbors)
}

// TestStar: a hub with 10,000 leaves.
func TestStar(t *testing.T) {
	t.Parallel()
	s, pg := setup(t)
	const leaves = 10000
	pg.Exec(t, fmt.Sprintf(`INSERT INTO graph_nodes (node_id) SELECT 'leaf' || g FROM generate_series(1, %d) g;
		INSERT INTO graph_nodes (node_id) VALUES ('hub');
		INSERT INTO graph_edges (from_id, to_id, edge_type) SELECT 'hub', 'leaf' || g, 'spoke' FROM generate_series(1, %d) g`, leaves, leaves))
	nb := do(t, s, messages.GraphRequest{Op: "get_neighbors", NodeID: "hub", Limit: 100}).(messages.GraphNeighborsResult)
	require.Len(t, nb.Neighbors, 100)
	nb = do(t, s, messages.GraphRequest{Op: "get_neighbors", NodeID: "leaf77"}).(messages.GraphNeighborsResult)
	require.Len(t, nb.Neighbors, 1)
	require.Equal(t, "in", nb.Neighbors[0].Direction)
	p := do(t, s, messages.GraphRequest{Op: "find_path", From: "leaf1", To: "leaf9999", Direction: "both"}).(messages.GraphPathResult)
	require.Equal(t, []string{"leaf1", "hub", "leaf9999"}, pathIDs(p))
	sub := do(t, s, messages.GraphRequest{Op: "query_subgraph", Root: "hub", Depth: 1}).(messages.GraphSubgraphResult)
	require.True(t, sub.Truncated, "10,001 nodes pass the subgraph cap")
	require.Len(t, sub.Nodes, graph.MaxSubgraphNodes)
}
