package messages

import (
	"encoding/json"
	"time"
)

// Ops of db.graph.
const (
	OpAddNode       = "add_node"
	OpAddEdge       = "add_edge"
	OpGetNeighbors  = "get_neighbors"
	OpFindPath      = "find_path"
	OpQuerySubgraph = "query_subgraph"
	OpDeleteNode    = "delete_node"
)

// Modes of add_node and add_edge on a node or edge that exists.
const (
	// GraphModeMerge (the default) keeps every stored field the request
	// leaves out (or sends as null) and merges properties key by key.
	GraphModeMerge = "merge"
	// GraphModeReplace sets every field from the request: one left out
	// takes its default, and properties become exactly those sent.
	GraphModeReplace = "replace"
)

// GraphRequest is the body of db.graph.
type GraphRequest struct {
	Op         string          `json:"op"`
	NodeID     string          `json:"node_id,omitempty"`
	NodeType   string          `json:"node_type,omitempty"`
	Label      *string         `json:"label,omitempty"`
	Properties json.RawMessage `json:"properties,omitempty"`
	From       string          `json:"from,omitempty"`
	To         string          `json:"to,omitempty"`
	EdgeType   string          `json:"edge_type,omitempty"`
	Weight     *float64        `json:"weight,omitempty"`
	Confidence *float64        `json:"confidence,omitempty"`
	ValidFrom  *time.Time      `json:"valid_from,omitempty"`
	ValidUntil *time.Time      `json:"valid_until,omitempty"`
	Direction  string          `json:"direction,omitempty"`
	Limit      int             `json:"limit,omitempty"`
	MaxDepth   int             `json:"max_depth,omitempty"`
	Root       string          `json:"root,omitempty"`
	Depth      int             `json:"depth,omitempty"`
	// Mode is how add_node and add_edge update what exists: GraphModeMerge
	// (the default) or GraphModeReplace.
	Mode string `json:"mode,omitempty"`
	// ReadOnly refuses the request when it would write, as on db.execute.
	ReadOnly bool `json:"read_only,omitempty"`
}

// Writes reports whether the request's op changes data.
func (r *GraphRequest) Writes() bool {
	switch r.Op {
	case OpGetNeighbors, OpFindPath, OpQuerySubgraph:
		return false
	}
	return true
}

// GraphNode is a node.
type GraphNode struct {
	NodeID     string          `json:"node_id"`
	NodeType   string          `json:"node_type"`
	Label      *string         `json:"label"`
	Properties json.RawMessage `json:"properties"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

// GraphEdge is an edge.
type GraphEdge struct {
	EdgeID     int64           `json:"edge_id"`
	From       string          `json:"from"`
	To         string          `json:"to"`
	EdgeType   string          `json:"edge_type"`
	Weight     float64         `json:"weight"`
	Confidence float64         `json:"confidence"`
	Properties json.RawMessage `json:"properties"`
	ValidFrom  *time.Time      `json:"valid_from"`
	ValidUntil *time.Time      `json:"valid_until"`
}

// GraphNeighbor is a neighbor with the edge that leads to it.
type GraphNeighbor struct {
	Node      GraphNode `json:"node"`
	Edge      GraphEdge `json:"edge"`
	Direction string    `json:"direction"` // out: node is the edge's to; in: its from
}

// GraphNeighborsResult is the answer of get_neighbors.
type GraphNeighborsResult struct {
	Neighbors []GraphNeighbor `json:"neighbors"`
}

// GraphPathResult is the answer of find_path: found false when no path of at
// most max_depth edges exists.
type GraphPathResult struct {
	Found bool        `json:"found"`
	Nodes []GraphNode `json:"nodes"`
	Edges []GraphEdge `json:"edges"`
}

// GraphSubgraphResult is the answer of query_subgraph.
type GraphSubgraphResult struct {
	Nodes     []GraphNode `json:"nodes"`
	Edges     []GraphEdge `json:"edges"`
	Truncated bool        `json:"truncated"`
}
