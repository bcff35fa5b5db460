package client_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/pkg/client"
)

// TestGraphUpdates: AddNode and AddEdge on what exists keep what the spec
// leaves out; WithReplace resets it.
func TestGraphUpdates(t *testing.T) {
	ctx := context.Background()
	g := newClient(t).Graph()
	label := "Upd"
	_, err := g.AddNode(ctx, client.NodeSpec{ID: "upd1", Type: "person", Label: &label, Properties: map[string]any{"a": 1}})
	require.NoError(t, err)
	n, err := g.AddNode(ctx, client.NodeSpec{ID: "upd1", Properties: map[string]any{"b": 2}})
	require.NoError(t, err)
	require.Equal(t, "person", n.NodeType)
	require.Equal(t, "Upd", *n.Label)
	require.JSONEq(t, `{"a":1,"b":2}`, string(n.Properties))
	n, err = g.AddNode(ctx, client.NodeSpec{ID: "upd1", Properties: map[string]any{"c": 3}}, client.WithReplace())
	require.NoError(t, err)
	require.Equal(t, "node", n.NodeType)
	require.Nil(t, n.Label)
	require.JSONEq(t, `{"c":3}`, string(n.Properties))

	_, err = g.AddNode(ctx, client.NodeSpec{ID: "upd2"})
	require.NoError(t, err)
	w, conf := 4.0, 0.5
	_, err = g.AddEdge(ctx, client.EdgeSpec{From: "upd1", To: "upd2", Type: "t", Weight: &w, Confidence: &conf})
	require.NoError(t, err)
	e, err := g.AddEdge(ctx, client.EdgeSpec{From: "upd1", To: "upd2", Type: "t", Properties: map[string]any{"x": true}})
	require.NoError(t, err)
	require.Equal(t, 4.0, e.Weight)
	require.Equal(t, 0.5, e.Confidence)
	e, err = g.AddEdge(ctx, client.EdgeSpec{From: "upd1", To: "upd2", Type: "t"}, client.WithReplace())
	require.NoError(t, err)
	require.Equal(t, 1.0, e.Weight)
	require.Equal(t, 1.0, e.Confidence)
	require.JSONEq(t, `{}`, string(e.Properties))
}
