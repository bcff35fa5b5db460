package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// VectorItem is one row of an Upsert. Vectors are float32, as pgvector
// stores them and as Embeddings caches them.
type VectorItem struct {
	ID       string
	Vector   []float32
	Content  *string        // optional
	Metadata map[string]any // optional; a Search's WithFilter matches it
}

// VectorOption tunes one db.vector call.
type VectorOption interface {
	applyVector(*messages.VectorRequest) error
}

type vectorOption func(*messages.VectorRequest) error

func (f vectorOption) applyVector(r *messages.VectorRequest) error { return f(r) }

// WithMetric sets a collection's metric at CreateCollection ("cosine" by
// default, "l2", "ip"), or the metric of a Search (the collection's by
// default).
func WithMetric(metric string) VectorOption {
	return vectorOption(func(r *messages.VectorRequest) error {
		r.Metric = metric
		return nil
	})
}

// WithIndex sets a collection's index at CreateCollection ("hnsw" by
// default, or "none").
func WithIndex(index string) VectorOption {
	return vectorOption(func(r *messages.VectorRequest) error {
		r.Index = index
		return nil
	})
}

// WithK sets how many matches a Search returns (10 by default, at most 1000).
func WithK(k int) VectorOption {
	return vectorOption(func(r *messages.VectorRequest) error {
		if k < 1 {
			return fmt.Errorf("WithK: must be at least 1, got %d", k)
		}
		r.K = k
		return nil
	})
}

// WithMinSimilarity drops a Search's matches scoring under score.
func WithMinSimilarity(score float64) VectorOption {
	return vectorOption(func(r *messages.VectorRequest) error {
		r.MinSimilarity = &score
		return nil
	})
}

// WithFilter keeps a Search's matches whose metadata contains filter (jsonb
// containment, bound).
func WithFilter(filter map[string]any) VectorOption {
	return vectorOption(func(r *messages.VectorRequest) error {
		b, err := json.Marshal(filter)
		if err != nil {
			return fmt.Errorf("WithFilter: %w", err)
		}
		r.Filter = b
		return nil
	})
}

// WithEFSearch sets HNSW's ef_search for a Search (1 to 1000).
func WithEFSearch(n int) VectorOption {
	return vectorOption(func(r *messages.VectorRequest) error {
		if n < 1 {
			return fmt.Errorf("WithEFSearch: must be at least 1, got %d", n)
		}
		r.EFSearch = n
		return nil
	})
}

// WithCollections makes a Search cover these collections too, its matches
// merged best first.
func WithCollections(names ...string) VectorOption {
	return vectorOption(func(r *messages.VectorRequest) error {
		r.Collections = append(r.Collections, names...)
		return nil
	})
}

// WithIncludeVectors gives each match of a Search its vector
// (include_vectors), in VectorMatch.Vector.
func WithIncludeVectors() VectorOption {
	return vectorOption(func(r *messages.VectorRequest) error {
		r.IncludeVectors = true
		return nil
	})
}

// Vectors is the handle of db.vector: pgvector collections. Get it from
// Client.Vectors.
type Vectors struct{ c *Client }

func (v Vectors) do(ctx context.Context, req messages.VectorRequest, opts []VectorOption, resp any) error {
	for _, o := range opts {
		if err := o.applyVector(&req); err != nil {
			return err
		}
	}
	return v.c.do(ctx, subjects.DBVector, req, resp)
}

// CreateCollection creates a collection of vectors of dimension (0: the
// worker's PGVECTOR_DIMENSION), or checks that an existing one has this
// definition (a different one is CONFLICT).
func (v Vectors) CreateCollection(ctx context.Context, name string, dimension int, opts ...VectorOption) (*messages.Collection, error) {
	var res messages.Collection
	if err := v.do(ctx, messages.VectorRequest{Op: messages.OpCreateCollection, Collection: name, Dimension: dimension}, opts, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Upsert inserts or replaces items in collection, in one transaction.
func (v Vectors) Upsert(ctx context.Context, collection string, items []VectorItem, opts ...VectorOption) (int, error) {
	req := messages.VectorRequest{Op: messages.OpUpsert, Collection: collection, Items: make([]messages.VectorItem, len(items))}
	for i, it := range items {
		req.Items[i] = messages.VectorItem{ID: it.ID, Content: it.Content}
		req.Items[i].Vector, req.Items[i].VectorB64 = v.c.vectorFields(it.Vector)
		if it.Metadata != nil {
			b, err := json.Marshal(it.Metadata)
			if err != nil {
				return 0, fmt.Errorf("upsert %q: metadata of %q: %w", collection, it.ID, err)
			}
			req.Items[i].Metadata = b
		}
	}
	var res messages.VectorUpsertResult
	err := v.do(ctx, req, opts, &res)
	return res.Upserted, err
}

// Search returns the matches nearest to vector in collection (and those of
// WithCollections), best first. With WithIncludeVectors, each match's
// Vector is set (and VectorB64 left empty, whatever the wire carried).
func (v Vectors) Search(ctx context.Context, collection string, vector []float32, opts ...VectorOption) ([]messages.VectorMatch, error) {
	req := messages.VectorRequest{Op: messages.OpSearch, Collection: collection}
	req.Vector, req.VectorB64 = v.c.vectorFields(vector)
	opts = append(opts[:len(opts):len(opts)], vectorOption(func(r *messages.VectorRequest) error {
		if r.IncludeVectors {
			r.Encoding = v.c.encoding()
		}
		return nil
	}))
	var res messages.VectorSearchResult
	if err := v.do(ctx, req, opts, &res); err != nil {
		return nil, err
	}
	for i := range res.Matches {
		m := &res.Matches[i]
		if m.VectorB64 == nil {
			continue
		}
		vec, err := messages.Float32sFromLE(m.VectorB64)
		if err != nil {
			return nil, fmt.Errorf("search %q: vector of %q: %w", collection, m.ID, err)
		}
		m.Vector, m.VectorB64 = vec, nil
	}
	return res.Matches, nil
}

// Delete removes the items of ids from collection and says how many there
// were.
func (v Vectors) Delete(ctx context.Context, collection string, ids []string, opts ...VectorOption) (int64, error) {
	var res messages.DeletedResult
	err := v.do(ctx, messages.VectorRequest{Op: messages.OpDelete, Collection: collection, IDs: ids}, opts, &res)
	return res.Deleted, err
}

// Stats describes collection: its definition, rows and index size.
func (v Vectors) Stats(ctx context.Context, collection string, opts ...VectorOption) (*messages.VectorStats, error) {
	var res messages.VectorStats
	if err := v.do(ctx, messages.VectorRequest{Op: messages.OpStats, Collection: collection}, opts, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// RebuildIndex builds collection's index anew as index ("hnsw", or
// "ivfflat" once there are rows) and returns the stats after it.
func (v Vectors) RebuildIndex(ctx context.Context, collection, index string, opts ...VectorOption) (*messages.VectorStats, error) {
	var res messages.VectorStats
	if err := v.do(ctx, messages.VectorRequest{Op: messages.OpRebuildIndex, Collection: collection, Index: index}, opts, &res); err != nil {
		return nil, err
	}
	return &res, nil
}
