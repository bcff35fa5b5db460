package messages

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Ops of db.vector.
const (
	OpCreateCollection = "create_collection"
	OpUpsert           = "upsert"
	OpSearch           = "search"
	OpStats            = "stats"
	OpRebuildIndex     = "rebuild_index"
	// OpDelete is shared with the other endpoints.
)

// VectorRequest is the body of db.vector.
type VectorRequest struct {
	Op          string    `json:"op"`
	Collection  string    `json:"collection,omitempty"`
	Collections []string  `json:"collections,omitempty"`
	Dimension   int       `json:"dimension,omitempty"`
	Metric      string    `json:"metric,omitempty"`
	Index       string    `json:"index,omitempty"`
	ID          string    `json:"id,omitempty"`
	IDs         []string  `json:"ids,omitempty"`
	Vector      []float64 `json:"vector,omitempty"`
	// VectorB64 is Vector as base64 of little-endian float32s (upsert,
	// search); give one or the other.
	VectorB64     *string         `json:"vector_b64,omitempty"`
	Content       *string         `json:"content,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
	Items         []VectorItem    `json:"items,omitempty"`
	K             int             `json:"k,omitempty"`
	MinSimilarity *float64        `json:"min_similarity,omitempty"`
	Filter        json.RawMessage `json:"filter,omitempty"`
	EFSearch      int             `json:"ef_search,omitempty"`
	// IncludeVectors gives each search match its vector, encoded as
	// Encoding says.
	IncludeVectors bool `json:"include_vectors,omitempty"`
	// Encoding is how a search's matches carry their vectors: EncodingJSON
	// (the default, "vector") or EncodingF32LE ("vector_b64").
	Encoding string `json:"encoding,omitempty"`
	// TimeoutMS bounds the request from its receipt by the worker, time
	// queued included. Defaults to DB_STATEMENT_TIMEOUT.
	TimeoutMS *int `json:"timeout_ms,omitempty"`
	// ReadOnly refuses the request when it would write, as on db.execute.
	ReadOnly bool `json:"read_only,omitempty"`
}

// Writes reports whether the request's op changes data.
func (r *VectorRequest) Writes() bool {
	switch r.Op {
	case OpSearch, OpStats:
		return false
	}
	return true
}

// VectorItem is one row of a bulk upsert.
type VectorItem struct {
	ID        string          `json:"id"`
	Vector    []float64       `json:"vector,omitempty"`
	VectorB64 *string         `json:"vector_b64,omitempty"`
	Content   *string         `json:"content,omitempty"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
}

// Collection describes a vector collection.
type Collection struct {
	Name      string `json:"name"`
	Dimension int    `json:"dimension"`
	Metric    string `json:"metric"`
	Index     string `json:"index"`
}

// VectorMatch is one search hit.
type VectorMatch struct {
	ID         string          `json:"id"`
	Collection string          `json:"collection"`
	Content    *string         `json:"content"`
	Score      Float           `json:"score"`
	Distance   Float           `json:"distance"`
	Metadata   json.RawMessage `json:"metadata"`
	// Vector (encoding json) or VectorB64 (encoding f32le: little-endian
	// float32 bytes, base64 on the wire) is the match's vector, with
	// include_vectors.
	Vector    []float32 `json:"vector,omitempty"`
	VectorB64 []byte    `json:"vector_b64,omitempty"`
}

// VectorSearchResult is the answer of search.
type VectorSearchResult struct {
	Matches []VectorMatch `json:"matches"`
}

// VectorUpsertResult is the answer of upsert.
type VectorUpsertResult struct {
	Upserted int `json:"upserted"`
}

// VectorStats is the answer of stats.
type VectorStats struct {
	Collection
	Total             int64  `json:"total"`
	Embedded          int64  `json:"embedded"`
	MissingEmbeddings int64  `json:"missing_embeddings"`
	IndexBytes        int64  `json:"index_bytes"`
	IndexSize         string `json:"index_size"`
}

// Float is a float64 whose JSON form writes NaN and ±Inf as the strings
// "NaN", "Infinity" and "-Infinity", as db.execute writes float8 columns:
// a distance between vectors near float32's limits can overflow, and JSON
// has no number for it. It reads either form.
type Float float64

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"Infinity"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Infinity"`), nil
	}
	return json.Marshal(v) // a finite number as encoding/json writes float64s
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *Float) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"NaN"`:
		*f = Float(math.NaN())
	case `"Infinity"`:
		*f = Float(math.Inf(1))
	case `"-Infinity"`:
		*f = Float(math.Inf(-1))
	default:
		v, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			return fmt.Errorf("a number, \"NaN\", \"Infinity\" or \"-Infinity\": %w", err)
		}
		*f = Float(v)
	}
	return nil
}
