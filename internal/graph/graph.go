// Package graph serves db.graph: a property graph on two PostgreSQL tables
// (graph_nodes, graph_edges), created by the worker's migrations. Nodes keep
// every property they are given; edges are directed and typed, with a weight,
// a confidence and an optional validity window; deletes are soft. Adding a
// node or edge that exists updates it: merge (the default) keeps what the
// request leaves out, replace resets it to the defaults (add.go). Traversals
// (neighbors, shortest path, subgraph) run breadth first, one query per level,
// with a visited set, so cycles end and cost stays bounded. Every value is
// bound; nothing from a request is pasted into SQL.
package graph

import (
	"context"
	"embed"
	"errors"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/migrate"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Limits.
const (
	NeighborsLimitDefault = 100
	MaxNeighbors          = 10000
	MaxDepthDefault       = 5
	MaxDepth              = 10
	SubgraphDepthDefault  = 2
	MaxSubgraphNodes      = 10000
)

// Service carries out db.graph requests.
type Service struct{ db pgexec.Querier }

// New returns a Service; Init creates its tables.
func New(db pgexec.Querier) *Service { return &Service{db: db} }

// Init applies the graph migrations (tracked, once, like every schema file).
func (s *Service) Init(ctx context.Context) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	ms, err := migrate.FromFS(sub)
	if err != nil {
		return err
	}
	_, err = migrate.Apply(ctx, s.db, ms, *zerolog.Ctx(ctx))
	return err
}

// Handle carries out one request.
func (s *Service) Handle(ctx context.Context, req *messages.GraphRequest) (any, error) {
	if req.Mode != "" && req.Op != messages.OpAddNode && req.Op != messages.OpAddEdge {
		return nil, messages.BadRequest("mode", "mode applies to add_node and add_edge only, not %q", req.Op)
	}
	switch req.Op {
	case messages.OpAddNode:
		return s.addNode(ctx, req)
	case messages.OpAddEdge:
		return s.addEdge(ctx, req)
	case messages.OpGetNeighbors:
		return s.neighbors(ctx, req)
	case messages.OpFindPath:
		return s.findPath(ctx, req)
	case messages.OpQuerySubgraph:
		return s.subgraph(ctx, req)
	case messages.OpDeleteNode:
		return s.deleteNode(ctx, req)
	case "":
		return nil, messages.BadRequest("op", "op is required: add_node, add_edge, get_neighbors, find_path, query_subgraph or delete_node")
	}
	return nil, messages.BadRequest("op", "unknown op %q: use add_node, add_edge, get_neighbors, find_path, query_subgraph or delete_node", req.Op)
}

func checkID(field, id string) error {
	if id == "" || len(id) > 1024 {
		return messages.BadRequest(field, "%s must be 1 to 1024 bytes", field)
	}
	return nil
}

const nodeColumns = `node_id, node_type, label, properties, created_at, updated_at`

func scanNode(row pgx.Row) (messages.GraphNode, error) {
	var n messages.GraphNode
	var props []byte
	err := row.Scan(&n.NodeID, &n.NodeType, &n.Label, &props, &n.CreatedAt, &n.UpdatedAt)
	n.Properties = props
	return n, err
}

const edgeColumns = `edge_id, from_id, to_id, edge_type, weight, confidence, properties, valid_from, valid_until`

func scanEdge(row pgx.Row) (messages.GraphEdge, error) {
	var e messages.GraphEdge
	var props []byte
	err := row.Scan(&e.EdgeID, &e.From, &e.To, &e.EdgeType, &e.Weight, &e.Confidence, &props, &e.ValidFrom, &e.ValidUntil)
	e.Properties = props
	return e, err
}

func direction(d string) (string, error) {
	switch d {
	case "", "both":
		return "both", nil
	case "in", "out":
		return d, nil
	}
	return "", messages.BadRequest("direction", "direction must be in, out or both, got %q", d)
}

// liveEdges is the condition of an edge that exists now.
const liveEdges = `e.deleted_at IS NULL AND (e.valid_from IS NULL OR e.valid_from <= now()) AND (e.valid_until IS NULL OR e.valid_until > now())`

func (s *Service) node(ctx context.Context, id string) (messages.GraphNode, error) {
	n, err := scanNode(s.db.QueryRow(ctx, `SELECT `+nodeColumns+` FROM graph_nodes WHERE node_id = $1 AND deleted_at IS NULL`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return n, messages.Errorf(messages.CodeNotFound, "node %q does not exist", id)
	}
	return n, err
}

func (s *Service) neighbors(ctx context.Context, req *messages.GraphRequest) (any, error) {
	if err := checkID("node_id", req.NodeID); err != nil {
		return nil, err
	}
	dir, err := direction(req.Direction)
	if err != nil {
		return nil, err
	}
	limit := req.Limit
	if limit == 0 {
		limit = NeighborsLimitDefault
	}
	if limit < 1 || limit > MaxNeighbors {
		return nil, messages.BadRequest("limit", "limit must be 1 to %d", MaxNeighbors)
	}
	if _, err := s.node(ctx, req.NodeID); err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `
		SELECT n.node_id, n.node_type, n.label, n.properties, n.created_at, n.updated_at,
		       e.edge_id, e.from_id, e.to_id, e.edge_type, e.weight, e.confidence, e.properties, e.valid_from, e.valid_until,
		       CASE WHEN e.from_id = $1 THEN 'out' ELSE 'in' END
		  FROM graph_edges e
		  JOIN graph_nodes n ON n.node_id = CASE WHEN e.from_id = $1 THEN e.to_id ELSE e.from_id END AND n.deleted_at IS NULL
		 WHERE `+liveEdges+`
		   AND (($2 IN ('out', 'both') AND e.from_id = $1) OR ($2 IN ('in', 'both') AND e.to_id = $1))
		   AND ($3 = '' OR e.edge_type = $3)
		 ORDER BY e.weight DESC, e.edge_id
		 LIMIT $4`, req.NodeID, dir, req.EdgeType, limit)
	if err != nil {
		return nil, err
	}
	out := []messages.GraphNeighbor{}
	for rows.Next() {
		var nb messages.GraphNeighbor
		var np, ep []byte
		if err := rows.Scan(&nb.Node.NodeID, &nb.Node.NodeType, &nb.Node.Label, &np, &nb.Node.CreatedAt, &nb.Node.UpdatedAt,
			&nb.Edge.EdgeID, &nb.Edge.From, &nb.Edge.To, &nb.Edge.EdgeType, &nb.Edge.Weight, &nb.Edge.Confidence, &ep,
			&nb.Edge.ValidFrom, &nb.Edge.ValidUntil, &nb.Direction); err != nil {
			rows.Close()
			return nil, err
		}
		nb.Node.Properties, nb.Edge.Properties = np, ep
		out = append(out, nb)
	}
	return messages.GraphNeighborsResult{Neighbors: out}, rows.Err()
}

// step is one edge followed in a traversal.
type step struct {
	edge messages.GraphEdge
	next string
}

// expand returns the live edges leaving the frontier in the direction asked,
// with the node each leads to (live nodes only).
func (s *Service) expand(ctx context.Context, frontier []string, dir, edgeType string) ([]step, error) {
	rows, err := s.db.Query(ctx, `
		SELECT `+edgeColumnsE+`, CASE WHEN e.from_id = ANY($1) AND $2 <> 'in' THEN e.to_id ELSE e.from_id END
		  FROM graph_edges e
		 WHERE `+liveEdges+`
		   AND (($2 IN ('out', 'both') AND e.from_id = ANY($1)) OR ($2 IN ('in', 'both') AND e.to_id = ANY($1)))
		   AND ($3 = '' OR e.edge_type = $3)
		   AND EXISTS (SELECT FROM graph_nodes n WHERE n.deleted_at IS NULL
		               AND n.node_id = CASE WHEN e.from_id = ANY($1) AND $2 <> 'in' THEN e.to_id ELSE e.from_id END)
		 ORDER BY e.edge_id`, frontier, dir, edgeType)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (step, error) {
		var st step
		var props []byte
		err := r.Scan(&st.edge.EdgeID, &st.edge.From, &st.edge.To, &st.edge.EdgeType, &st.edge.Weight, &st.edge.Confidence,
			&props, &st.edge.ValidFrom, &st.edge.ValidUntil, &st.next)
		st.edge.Properties = props
		return st, err
	})
}

const edgeColumnsE = `e.edge_id, e.from_id, e.to_id, e.edge_type, e.weight, e.confidence, e.properties, e.valid_from, e.valid_until`

func (s *Service) nodes(ctx context.Context, ids []string) (map[string]messages.GraphNode, error) {
	rows, err := s.db.Query(ctx, `SELECT `+nodeColumns+` FROM graph_nodes WHERE node_id = ANY($1) AND deleted_at IS NULL`, ids)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (messages.GraphNode, error) { return scanNode(r) })
	if err != nil {
		return nil, err
	}
	out := make(map[string]messages.GraphNode, len(list))
	for _, n := range list {
		out[n.NodeID] = n
	}
	return out, nil
}

// findPath finds a shortest path (fewest edges) breadth first.
func (s *Service) findPath(ctx context.Context, req *messages.GraphRequest) (any, error) {
	if err := checkID("from", req.From); err != nil {
		return nil, err
	}
	if err := checkID("to", req.To); err != nil {
		return nil, err
	}
	dir := req.Direction
	if dir == "" {
		dir = "out"
	}
	dir, err := direction(dir)
	if err != nil {
		return nil, err
	}
	depth := req.MaxDepth
	if depth == 0 {
		depth = MaxDepthDefault
	}
	if depth < 1 || depth > MaxDepth {
		return nil, messages.BadRequest("max_depth", "max_depth must be 1 to %d", MaxDepth)
	}
	for _, id := range []string{req.From, req.To} {
		if _, err := s.node(ctx, id); err != nil {
			return nil, err
		}
	}
	res := messages.GraphPathResult{Nodes: []messages.GraphNode{}, Edges: []messages.GraphEdge{}}
	via := map[string]step{req.From: {}} // how each visited node was reached
	frontier := []string{req.From}
	found := req.From == req.To
	for level := 0; level < depth && !found && len(frontier) > 0 && len(via) < MaxSubgraphNodes*10; level++ {
		steps, err := s.expand(ctx, frontier, dir, req.EdgeType)
		if err != nil {
			return nil, err
		}
		var next []string
		for _, st := range steps {
			if _, seen := via[st.next]; seen {
				continue // cycle or a longer way to a node already reached
			}
			via[st.next] = st
			next = append(next, st.next)
			if st.next == req.To {
				found = true
				break
			}
		}
		frontier = next
	}
	if !found {
		return res, nil
	}
	// Walk back from the target.
	var ids []string
	var edges []messages.GraphEdge
	for at := req.To; at != req.From; {
		st := via[at]
		ids = append(ids, at)
		edges = append(edges, st.edge)
		if st.edge.From == at {
			at = st.edge.To
		} else {
			at = st.edge.From
		}
	}
	ids = append(ids, req.From)
	nodes, err := s.nodes(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i := len(ids) - 1; i >= 0; i-- {
		res.Nodes = append(res.Nodes, nodes[ids[i]])
	}
	for i := len(edges) - 1; i >= 0; i-- {
		res.Edges = append(res.Edges, edges[i])
	}
	res.Found = true
	return res, nil
}

// subgraph collects the nodes within depth edges of root and the edges
// between them that the traversal followed.
func (s *Service) subgraph(ctx context.Context, req *messages.GraphRequest) (any, error) {
	root := req.Root
	if root == "" {
		root = req.NodeID
	}
	if err := checkID("root", root); err != nil {
		return nil, err
	}
	dir, err := direction(req.Direction)
	if err != nil {
		return nil, err
	}
	depth := req.Depth
	if depth == 0 {
		depth = SubgraphDepthDefault
	}
	if depth < 1 || depth > MaxDepth {
		return nil, messages.BadRequest("depth", "depth must be 1 to %d", MaxDepth)
	}
	if _, err := s.node(ctx, root); err != nil {
		return nil, err
	}
	res := messages.GraphSubgraphResult{Nodes: []messages.GraphNode{}, Edges: []messages.GraphEdge{}}
	seen := map[string]bool{root: true}
	order := []string{root}
	edgeSeen := map[int64]bool{}
	frontier := []string{root}
	for level := 0; level < depth && len(frontier) > 0 && !res.Truncated; level++ {
		steps, err := s.expand(ctx, frontier, dir, req.EdgeType)
		if err != nil {
			return nil, err
		}
		var next []string
		for _, st := range steps {
			if !seen[st.next] {
				if len(order) >= MaxSubgraphNodes {
					res.Truncated = true
					break
				}
				seen[st.next] = true
				order = append(order, st.next)
				next = append(next, st.next)
			}
			if !edgeSeen[st.edge.EdgeID] {
				edgeSeen[st.edge.EdgeID] = true
				res.Edges = append(res.Edges, st.edge)
			}
		}
		frontier = next
	}
	nodes, err := s.nodes(ctx, order)
	if err != nil {
		return nil, err
	}
	for _, id := range order {
		res.Nodes = append(res.Nodes, nodes[id])
	}
	return res, nil
}

// deleteNode soft-deletes a node and every edge touching it.
func (s *Service) deleteNode(ctx context.Context, req *messages.GraphRequest) (any, error) {
	if err := checkID("node_id", req.NodeID); err != nil {
		return nil, err
	}
	var edges int64
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE graph_nodes SET deleted_at = now() WHERE node_id = $1 AND deleted_at IS NULL`, req.NodeID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return messages.Errorf(messages.CodeNotFound, "node %q does not exist", req.NodeID)
		}
		tag, err = tx.Exec(ctx, `UPDATE graph_edges SET deleted_at = now() WHERE (from_id = $1 OR to_id = $1) AND deleted_at IS NULL`, req.NodeID)
		edges = tag.RowsAffected()
		return err
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"deleted": true, "edges_deleted": edges}, nil
}
