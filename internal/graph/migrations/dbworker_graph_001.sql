-- The graph store of db.graph: nodes and directed, typed edges, soft-deleted.
CREATE TABLE IF NOT EXISTS graph_nodes (
    node_id    text PRIMARY KEY,
    node_type  text NOT NULL DEFAULT 'node',
    label      text,
    properties jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE INDEX IF NOT EXISTS graph_nodes_type_idx ON graph_nodes (node_type) WHERE deleted_at IS NULL;

CREATE TABLE IF NOT EXISTS graph_edges (
    edge_id     bigserial PRIMARY KEY,
    from_id     text NOT NULL REFERENCES graph_nodes (node_id),
    to_id       text NOT NULL REFERENCES graph_nodes (node_id),
    edge_type   text NOT NULL DEFAULT 'related',
    weight      float8 NOT NULL DEFAULT 1,
    confidence  float8 NOT NULL DEFAULT 1 CHECK (confidence BETWEEN 0 AND 1),
    properties  jsonb NOT NULL DEFAULT '{}',
    valid_from  timestamptz,
    valid_until timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
-- One live edge per (from, to, type): add_edge on an existing one updates it.
CREATE UNIQUE INDEX IF NOT EXISTS graph_edges_live_key ON graph_edges (from_id, to_id, edge_type) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS graph_edges_from_idx ON graph_edges (from_id) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS graph_edges_to_idx ON graph_edges (to_id) WHERE deleted_at IS NULL;
