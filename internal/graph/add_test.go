package graph_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/graph"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

func ptr[T any](v T) *T { return &v }

// TestAddNodeMergeKeepsWhatIsLeftOut: add_node on an existing node keeps
// every field the request leaves out (it used to reset node_type to
// "node"), merges properties key by key, and replace mode resets them.
func TestAddNodeMergeKeepsWhatIsLeftOut(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	first := do(t, s, messages.GraphRequest{Op: "add_node", NodeID: "ada", NodeType: "person", Label: ptr("Ada"),
		Properties: []byte(`{"born":1815,"nested":{"x":1,"y":2}}`)}).(messages.GraphNode)

	n := do(t, s, messages.GraphRequest{Op: "add_node", NodeID: "ada", Properties: []byte(`{"died":1852}`)}).(messages.GraphNode)
	require.Equal(t, "person", n.NodeType, "a type left out is kept")
	require.Equal(t, "Ada", *n.Label, "a label left out is kept")
	require.JSONEq(t, `{"born":1815,"died":1852,"nested":{"x":1,"y":2}}`, string(n.Properties))
	require.Equal(t, first.CreatedAt, n.CreatedAt)

	n = do(t, s, messages.GraphRequest{Op: "add_node", NodeID: "ada", Mode: messages.GraphModeMerge,
		Properties: []byte(`{"nested":{"z":3},"born":null}`)}).(messages.GraphNode)
	require.Equal(t, "person", n.NodeType)
	require.JSONEq(t, `{"born":null,"died":1852,"nested":{"z":3}}`, string(n.Properties),
		"top-level keys sent replace the stored ones (a nested object is not merged); others stay")

	n = do(t, s, messages.GraphRequest{Op: "add_node", NodeID: "ada", NodeType: "scientist"}).(messages.GraphNode)
	require.Equal(t, "scientist", n.NodeType, "a type sent is set")
	require.Equal(t, "Ada", *n.Label)

	// Replace: every field from the request, its default when left out.
	n = do(t, s, messages.GraphRequest{Op: "add_node", NodeID: "ada", Mode: messages.GraphModeReplace,
		Properties: []byte(`{"only":true}`)}).(messages.GraphNode)
	require.Equal(t, graph.NodeTypeDefault, n.NodeType)
	require.Nil(t, n.Label)
	require.JSONEq(t, `{"only":true}`, string(n.Properties))
	require.Equal(t, first.CreatedAt, n.CreatedAt, "a replaced node is the same node")
	require.True(t, n.UpdatedAt.After(first.UpdatedAt))

	// A deleted node comes back as a new one: nothing of the old is merged.
	do(t, s, messages.GraphRequest{Op: "add_node", NodeID: "ada", NodeType: "person", Label: ptr("Ada"), Properties: []byte(`{"a":1}`)})
	do(t, s, messages.GraphRequest{Op: "delete_node", NodeID: "ada"})
	n = do(t, s, messages.GraphRequest{Op: "add_node", NodeID: "ada", Properties: []byte(`{"b":2}`)}).(messages.GraphNode)
	require.Equal(t, graph.NodeTypeDefault, n.NodeType)
	require.Nil(t, n.Label)
	require.JSONEq(t, `{"b":2}`, string(n.Properties))
	require.True(t, n.CreatedAt.After(first.CreatedAt), "revived as a new node")

	require.Equal(t, messages.CodeBadRequest, fail(t, s, messages.GraphRequest{Op: "add_node", NodeID: "ada", Mode: "upsert"}))
	require.Equal(t, messages.CodeBadRequest, fail(t, s, messages.GraphRequest{Op: "get_neighbors", NodeID: "ada", Mode: "replace"}),
		"mode belongs to add_node and add_edge")
}

// TestAddEdgeMergeKeepsWhatIsLeftOut: add_edge on a live edge keeps every
// field the request leaves out (it used to reset weight, confidence and the
// validity window), and replace mode resets them.
func TestAddEdgeMergeKeepsWhatIsLeftOut(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	nodes(t, s, "a", "b")
	from := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	until := time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)
	first := do(t, s, messages.GraphRequest{Op: "add_edge", From: "a", To: "b", EdgeType: "knows", Weight: ptr(2.5), Confidence: ptr(0.4),
		Properties: []byte(`{"since":2019}`), ValidFrom: &from, ValidUntil: &until}).(messages.GraphEdge)

	e := do(t, s, messages.GraphRequest{Op: "add_edge", From: "a", To: "b", EdgeType: "knows", Properties: []byte(`{"via":"work"}`)}).(messages.GraphEdge)
	require.Equal(t, first.EdgeID, e.EdgeID, "the same edge")
	require.Equal(t, 2.5, e.Weight, "a weight left out is kept")
	require.Equal(t, 0.4, e.Confidence, "a confidence left out is kept")
	require.True(t, from.Equal(*e.ValidFrom))
	require.True(t, until.Equal(*e.ValidUntil))
	require.JSONEq(t, `{"since":2019,"via":"work"}`, string(e.Properties))

	e = do(t, s, messages.GraphRequest{Op: "add_edge", From: "a", To: "b", EdgeType: "knows", Weight: ptr(3.0)}).(messages.GraphEdge)
	require.Equal(t, 3.0, e.Weight, "a weight sent is set")
	require.Equal(t, 0.4, e.Confidence)

	// A bound sent is checked against the one stored: the window would run
	// backward, so nothing changes.
	before := time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, messages.CodeBadRequest, fail(t, s, messages.GraphRequest{Op: "add_edge", From: "a", To: "b", EdgeType: "knows",
		Weight: ptr(9.0), ValidUntil: &before}))
	nb := do(t, s, messages.GraphRequest{Op: "get_neighbors", NodeID: "a"}).(messages.GraphNeighborsResult)
	require.Len(t, nb.Neighbors, 1)
	require.Equal(t, 3.0, nb.Neighbors[0].Edge.Weight, "the refused update was rolled back")
	require.True(t, until.Equal(*nb.Neighbors[0].Edge.ValidUntil))

	// Replace: every field from the request, its default when left out.
	e = do(t, s, messages.GraphRequest{Op: "add_edge", From: "a", To: "b", EdgeType: "knows", Mode: messages.GraphModeReplace,
		Properties: []byte(`{"fresh":true}`)}).(messages.GraphEdge)
	require.Equal(t, first.EdgeID, e.EdgeID, "still the same edge")
	require.Equal(t, graph.WeightDefault, e.Weight)
	require.Equal(t, graph.ConfidenceDefault, e.Confidence)
	require.Nil(t, e.ValidFrom)
	require.Nil(t, e.ValidUntil)
	require.JSONEq(t, `{"fresh":true}`, string(e.Properties))

	// A new edge takes the defaults in either mode.
	e = do(t, s, messages.GraphRequest{Op: "add_edge", From: "b", To: "a", Mode: messages.GraphModeMerge}).(messages.GraphEdge)
	require.Equal(t, graph.EdgeTypeDefault, e.EdgeType)
	require.Equal(t, graph.WeightDefault, e.Weight)
	require.JSONEq(t, `{}`, string(e.Properties))
	require.Equal(t, messages.CodeBadRequest, fail(t, s, messages.GraphRequest{Op: "add_edge", From: "a", To: "b", Mode: "Replace"}))
}
