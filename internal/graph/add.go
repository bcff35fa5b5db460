package graph

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nuid"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Defaults of add_node and add_edge, for a new node or edge, or in replace
// mode. They are also the columns' defaults in the migration.
const (
	NodeTypeDefault   = "node"
	EdgeTypeDefault   = "related"
	WeightDefault     = 1.0
	ConfidenceDefault = 1.0
)

// replaceMode reads an add request's mode: merge (the default) keeps every
// stored field the request leaves out, replace sets every field from it.
func replaceMode(mode string) (bool, error) {
	switch mode {
	case "", messages.GraphModeMerge:
		return false, nil
	case messages.GraphModeReplace:
		return true, nil
	}
	return false, messages.BadRequest("mode", "mode must be %s or %s, got %q", messages.GraphModeMerge, messages.GraphModeReplace, mode)
}

// properties reads a properties object; absent or null is {}.
func properties(raw json.RawMessage) (string, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return "{}", nil
	}
	if s[0] != '{' {
		return "", messages.BadRequest("properties", "properties must be a JSON object")
	}
	return s, nil
}

// given is s, or NULL when s is empty (a field left out).
func given(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// upsertNode creates a node, or updates the node of its id. A live node
// keeps, in merge mode, every field the request leaves out (COALESCE with
// the stored value) and gets the request's properties merged into its own
// (jsonb ||: top-level keys sent replace the stored ones, others stay). In
// replace mode, and for a deleted node (which comes back as a new one), every
// field is the request's, or its default.
const upsertNode = `
INSERT INTO graph_nodes AS n (node_id, node_type, label, properties)
VALUES (@id, COALESCE(@type::text, @type_default), @label::text, @properties::jsonb)
ON CONFLICT (node_id) DO UPDATE SET
	node_type  = CASE WHEN @replace OR n.deleted_at IS NOT NULL THEN EXCLUDED.node_type  ELSE COALESCE(@type::text, n.node_type) END,
	label      = CASE WHEN @replace OR n.deleted_at IS NOT NULL THEN EXCLUDED.label      ELSE COALESCE(EXCLUDED.label, n.label) END,
	properties = CASE WHEN @replace OR n.deleted_at IS NOT NULL THEN EXCLUDED.properties ELSE n.properties || EXCLUDED.properties END,
	created_at = CASE WHEN n.deleted_at IS NOT NULL THEN now() ELSE n.created_at END,
	updated_at = now(),
	deleted_at = NULL
RETURNING ` + nodeColumns

// addNode creates a node or updates one (upsertNode).
func (s *Service) addNode(ctx context.Context, req *messages.GraphRequest) (any, error) {
	replace, err := replaceMode(req.Mode)
	if err != nil {
		return nil, err
	}
	id := req.NodeID
	if id == "" {
		id = nuid.Next()
	}
	if err := checkID("node_id", id); err != nil {
		return nil, err
	}
	props, err := properties(req.Properties)
	if err != nil {
		return nil, err
	}
	return scanNode(s.db.QueryRow(ctx, upsertNode, pgx.NamedArgs{
		"id": id, "type": given(req.NodeType), "type_default": NodeTypeDefault,
		"label": req.Label, "properties": props, "replace": replace,
	}))
}

// upsertEdge creates an edge, or updates the live edge of its (from, to,
// type). In merge mode the update keeps every field the request leaves out
// and merges properties as upsertNode does; in replace mode every field is
// the request's, or its default.
const upsertEdge = `
INSERT INTO graph_edges AS e (from_id, to_id, edge_type, weight, confidence, properties, valid_from, valid_until)
VALUES (@from, @to, @type, COALESCE(@weight::float8, @weight_default), COALESCE(@confidence::float8, @confidence_default),
        @properties::jsonb, @valid_from::timestamptz, @valid_until::timestamptz)
ON CONFLICT (from_id, to_id, edge_type) WHERE deleted_at IS NULL DO UPDATE SET
	weight      = CASE WHEN @replace THEN EXCLUDED.weight      ELSE COALESCE(@weight::float8, e.weight) END,
	confidence  = CASE WHEN @replace THEN EXCLUDED.confidence  ELSE COALESCE(@confidence::float8, e.confidence) END,
	properties  = CASE WHEN @replace THEN EXCLUDED.properties  ELSE e.properties || EXCLUDED.properties END,
	valid_from  = CASE WHEN @replace THEN EXCLUDED.valid_from  ELSE COALESCE(EXCLUDED.valid_from, e.valid_from) END,
	valid_until = CASE WHEN @replace THEN EXCLUDED.valid_until ELSE COALESCE(EXCLUDED.valid_until, e.valid_until) END
RETURNING ` + edgeColumns

// addEdge creates an edge between two live nodes or updates it (upsertEdge).
func (s *Service) addEdge(ctx context.Context, req *messages.GraphRequest) (any, error) {
	replace, err := replaceMode(req.Mode)
	if err != nil {
		return nil, err
	}
	if err := checkID("from", req.From); err != nil {
		return nil, err
	}
	if err := checkID("to", req.To); err != nil {
		return nil, err
	}
	props, err := properties(req.Properties)
	if err != nil {
		return nil, err
	}
	edgeType := req.EdgeType
	if edgeType == "" {
		edgeType = EdgeTypeDefault
	}
	if c := req.Confidence; c != nil && (*c < 0 || *c > 1) {
		return nil, messages.BadRequest("confidence", "confidence must be between 0 and 1")
	}
	if req.ValidFrom != nil && req.ValidUntil != nil && req.ValidUntil.Before(*req.ValidFrom) {
		return nil, messages.BadRequest("valid_until", "valid_until is before valid_from")
	}
	var edge messages.GraphEdge
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var live int
		// Lock both ends so a concurrent delete_node cannot orphan the edge.
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT FROM graph_nodes WHERE node_id = ANY($1) AND deleted_at IS NULL FOR SHARE) live`,
			[]string{req.From, req.To}).Scan(&live); err != nil {
			return err
		}
		want := 2
		if req.From == req.To {
			want = 1
		}
		if live != want {
			return messages.Errorf(messages.CodeNotFound, "both ends of an edge must be live nodes (from %q, to %q)", req.From, req.To)
		}
		var err error
		edge, err = scanEdge(tx.QueryRow(ctx, upsertEdge, pgx.NamedArgs{
			"from": req.From, "to": req.To, "type": edgeType,
			"weight": req.Weight, "weight_default": WeightDefault,
			"confidence": req.Confidence, "confidence_default": ConfidenceDefault,
			"properties": props, "valid_from": req.ValidFrom, "valid_until": req.ValidUntil, "replace": replace,
		}))
		if err != nil {
			return err
		}
		// A merge may pair a bound sent with one stored: check the window
		// the edge ends up with, and roll back a backward one.
		if edge.ValidFrom != nil && edge.ValidUntil != nil && edge.ValidUntil.Before(*edge.ValidFrom) {
			return messages.BadRequest("valid_until", "valid_until (%s) would be before the edge's valid_from (%s)",
				edge.ValidUntil.UTC().Format(time.RFC3339Nano), edge.ValidFrom.UTC().Format(time.RFC3339Nano))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return edge, nil
}
