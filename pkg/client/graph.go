package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// NodeSpec is a node to add or update. Every field may be left out: ID (a
// new id), Type ("node" for a new node), Label, Properties. On an existing
// node a field left out keeps its stored value and Properties are merged
// into the node's, key by key; WithReplace sets every field instead.
type NodeSpec struct {
	ID         string
	Type       string
	Label      *string
	Properties map[string]any
}

// EdgeSpec is an edge to add, or to update when a live edge of its From, To
// and Type exists. Type defaults to "related"; a new edge's Weight and
// Confidence default to 1. ValidFrom and ValidUntil bound when traversals
// follow it. On an existing edge a field left out keeps its stored value and
// Properties are merged, key by key; WithReplace sets every field instead.
type EdgeSpec struct {
	From, To   string
	Type       string
	Weight     *float64
	Confidence *float64
	Properties map[string]any
	ValidFrom  *time.Time
	ValidUntil *time.Time
}

// GraphDeleted is the answer of DeleteNode.
type GraphDeleted struct {
	Deleted      bool  `json:"deleted"`
	EdgesDeleted int64 `json:"edges_deleted"`
}

// GraphOption tunes one db.graph call.
type GraphOption interface {
	applyGraph(*messages.GraphRequest) error
}

type graphOption func(*messages.GraphRequest) error

func (f graphOption) applyGraph(r *messages.GraphRequest) error { return f(r) }

// WithDirection sets the direction a traversal follows edges: "out", "in"
// or "both" (Neighbors: "both" by default; FindPath and Subgraph: "out").
func WithDirection(direction string) GraphOption {
	return graphOption(func(r *messages.GraphRequest) error {
		r.Direction = direction
		return nil
	})
}

// WithEdgeType makes a traversal follow only edges of this type.
func WithEdgeType(edgeType string) GraphOption {
	return graphOption(func(r *messages.GraphRequest) error {
		r.EdgeType = edgeType
		return nil
	})
}

// WithLimit caps the neighbors Neighbors returns (100 by default, at most
// 10000).
func WithLimit(n int) GraphOption {
	return graphOption(func(r *messages.GraphRequest) error {
		if n < 1 {
			return fmt.Errorf("WithLimit: must be at least 1, got %d", n)
		}
		r.Limit = n
		return nil
	})
}

// WithDepth caps how many edges deep FindPath (5 by default) and Subgraph
// (2) go; at most 10.
func WithDepth(n int) GraphOption {
	return graphOption(func(r *messages.GraphRequest) error {
		if n < 1 {
			return fmt.Errorf("WithDepth: must be at least 1, got %d", n)
		}
		if r.Op == messages.OpFindPath {
			r.MaxDepth = n
		} else {
			r.Depth = n
		}
		return nil
	})
}

// WithReplace makes AddNode or AddEdge on an existing node or edge set every
// field from the spec (mode "replace"): a field left out takes its default
// (Label and the validity bounds none) and Properties become exactly those
// given. Without it an update keeps what the spec leaves out.
func WithReplace() GraphOption {
	return graphOption(func(r *messages.GraphRequest) error {
		r.Mode = messages.GraphModeReplace
		return nil
	})
}

// Graph is the handle of db.graph: a property graph of nodes and typed
// edges. Get it from Client.Graph.
type Graph struct{ c *Client }

func (g Graph) do(ctx context.Context, req messages.GraphRequest, opts []GraphOption, resp any) error {
	for _, o := range opts {
		if err := o.applyGraph(&req); err != nil {
			return err
		}
	}
	return g.c.do(ctx, subjects.DBGraph, req, resp)
}

func properties(p map[string]any) (json.RawMessage, error) {
	if p == nil {
		return nil, nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode properties: %w", err)
	}
	return b, nil
}

// AddNode adds a node, or updates the node of its ID, and returns it. An
// update keeps what n leaves out, unless WithReplace is given; a deleted
// node comes back as a new one.
func (g Graph) AddNode(ctx context.Context, n NodeSpec, opts ...GraphOption) (*messages.GraphNode, error) {
	props, err := properties(n.Properties)
	if err != nil {
		return nil, err
	}
	req := messages.GraphRequest{Op: messages.OpAddNode, NodeID: n.ID, NodeType: n.Type, Label: n.Label, Properties: props}
	var res messages.GraphNode
	if err := g.do(ctx, req, opts, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// AddEdge adds an edge between two live nodes, or updates it, and returns
// it. An update keeps what e leaves out, unless WithReplace is given.
func (g Graph) AddEdge(ctx context.Context, e EdgeSpec, opts ...GraphOption) (*messages.GraphEdge, error) {
	props, err := properties(e.Properties)
	if err != nil {
		return nil, err
	}
	req := messages.GraphRequest{Op: messages.OpAddEdge, From: e.From, To: e.To, EdgeType: e.Type, Weight: e.Weight,
		Confidence: e.Confidence, Properties: props, ValidFrom: e.ValidFrom, ValidUntil: e.ValidUntil}
	var res messages.GraphEdge
	if err := g.do(ctx, req, opts, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Neighbors returns the nodes one edge from nodeID, heaviest edges first.
func (g Graph) Neighbors(ctx context.Context, nodeID string, opts ...GraphOption) ([]messages.GraphNeighbor, error) {
	var res messages.GraphNeighborsResult
	err := g.do(ctx, messages.GraphRequest{Op: messages.OpGetNeighbors, NodeID: nodeID}, opts, &res)
	return res.Neighbors, err
}

// FindPath finds a shortest path (fewest edges) from one node to another;
// Found says whether there is one within the depth.
func (g Graph) FindPath(ctx context.Context, from, to string, opts ...GraphOption) (*messages.GraphPathResult, error) {
	var res messages.GraphPathResult
	if err := g.do(ctx, messages.GraphRequest{Op: messages.OpFindPath, From: from, To: to}, opts, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Subgraph returns the nodes and edges within the depth of root.
func (g Graph) Subgraph(ctx context.Context, root string, opts ...GraphOption) (*messages.GraphSubgraphResult, error) {
	var res messages.GraphSubgraphResult
	if err := g.do(ctx, messages.GraphRequest{Op: messages.OpQuerySubgraph, Root: root}, opts, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// DeleteNode soft-deletes a node and its edges.
func (g Graph) DeleteNode(ctx context.Context, nodeID string, opts ...GraphOption) (*GraphDeleted, error) {
	var res GraphDeleted
	if err := g.do(ctx, messages.GraphRequest{Op: messages.OpDeleteNode, NodeID: nodeID}, opts, &res); err != nil {
		return nil, err
	}
	return &res, nil
}
