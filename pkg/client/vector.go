package client

import (
	"context"
	"encoding/json"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// CreateCollection creates a vector collection (or checks an existing one).
func (c *Client) CreateCollection(ctx context.Context, name string, dimension int, metric string) (*messages.Collection, error) {
	var res messages.Collection
	err := c.do(ctx, "db.vector", messages.VectorRequest{Op: messages.OpCreateCollection, Collection: name, Dimension: dimension, Metric: metric}, &res)
	return &res, err
}

// UpsertVectors inserts or replaces items in a collection.
func (c *Client) UpsertVectors(ctx context.Context, collection string, items ...messages.VectorItem) (int, error) {
	var res messages.VectorUpsertResult
	err := c.do(ctx, "db.vector", messages.VectorRequest{Op: messages.OpUpsert, Collection: collection, Items: items}, &res)
	return res.Upserted, err
}

// SearchVectors runs a similarity search; set Collection or Collections,
// Vector, and optionally K, MinSimilarity, Filter, EFSearch.
func (c *Client) SearchVectors(ctx context.Context, req messages.VectorRequest) ([]messages.VectorMatch, error) {
	req.Op = messages.OpSearch
	var res messages.VectorSearchResult
	err := c.do(ctx, "db.vector", req, &res)
	return res.Matches, err
}

// Vector sends any db.vector request and returns the raw answer.
func (c *Client) Vector(ctx context.Context, req messages.VectorRequest) (json.RawMessage, error) {
	var res json.RawMessage
	err := c.do(ctx, "db.vector", req, &res)
	return res, err
}

// Graph sends any db.graph request and decodes the answer into dest (for
// example *messages.GraphPathResult for find_path).
func (c *Client) Graph(ctx context.Context, req messages.GraphRequest, dest any) error {
	return c.do(ctx, "db.graph", req, dest)
}
