package vector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/internal/vector"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

func TestMain(m *testing.M) { testenv.VerifyNoLeaks(m) }

func setup(t *testing.T) (*vector.Service, *testenv.Postgres, *pgexec.Client) {
	t.Helper()
	pg := testenv.NewPostgres(t)
	cl, err := pgexec.Connect(context.Background(), pgexec.Config{DSN: pg.URL, MaxConns: 4, CreateExtension: true})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(cl.Close)
	s, err := vector.New(cl, vector.Config{Schema: pg.Schema, Dimension: 3})
	require.NoError(t, err)
	require.NoError(t, s.Init(context.Background()))
	return s, pg, cl
}

func do(t *testing.T, s *vector.Service, req messages.VectorRequest) any {
	t.Helper()
	res, err := s.Handle(context.Background(), &req)
	require.NoError(t, err, "%+v", req)
	return res
}

func code(t *testing.T, s *vector.Service, req messages.VectorRequest) messages.Code {
	t.Helper()
	_, err := s.Handle(context.Background(), &req)
	require.Error(t, err, "%+v", req)
	return pgerr.AsError(err).Code
}

func str(s string) *string { return &s }

func TestCollections(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t)
	c := do(t, s, messages.VectorRequest{Op: "create_collection", Collection: "docs"}).(messages.Collection)
	require.Equal(t, messages.Collection{Name: "docs", Dimension: 3, Metric: "cosine", Index: "hnsw"}, c)
	do(t, s, messages.VectorRequest{Op: "create_collection", Collection: "docs"}) // idempotent
	do(t, s, messages.VectorRequest{Op: "create_collection", Collection: "notes", Metric: "l2", Index: "none"})

	do(t, s, messages.VectorRequest{Op: "upsert", Collection: "docs", Items: []messages.VectorItem{
		{ID: "a", Vector: []float64{1, 0, 0}, Content: str("apples"), Metadata: []byte(`{"lang":"en","tags":["fruit"]}`)},
		{ID: "b", Vector: []float64{0.9, 0.1, 0}, Content: str("pears"), Metadata: []byte(`{"lang":"fr"}`)},
		{ID: "c", Vector: []float64{0, 0, 1}, Content: str("cars")},
		{ID: "d", Content: str("no embedding yet")},
	}})
	do(t, s, messages.VectorRequest{Op: "upsert", Collection: "notes", ID: "n1", Vector: []float64{1, 0, 0}, Content: str("note")})

	res := do(t, s, messages.VectorRequest{Op: "search", Collection: "docs", Vector: []float64{1, 0, 0}, K: 2}).(messages.VectorSearchResult)
	require.Len(t, res.Matches, 2)
	require.Equal(t, "a", res.Matches[0].ID)
	require.InDelta(t, 1.0, float64(res.Matches[0].Score), 1e-6, "score is 1 - cosine distance")
	require.InDelta(t, 0.0, float64(res.Matches[0].Distance), 1e-6)
	require.JSONEq(t, `{"lang":"en","tags":["fruit"]}`, string(res.Matches[0].Metadata))
	require.Equal(t, "b", res.Matches[1].ID)

	// Metadata filter: bound jsonb containment.
	res = do(t, s, messages.VectorRequest{Op: "search", Collection: "docs", Vector: []float64{1, 0, 0}, Filter: []byte(`{"lang":"fr"}`)}).(messages.VectorSearchResult)
	require.Len(t, res.Matches, 1)
	require.Equal(t, "b", res.Matches[0].ID)
	res = do(t, s, messages.VectorRequest{Op: "search", Collection: "docs", Vector: []float64{1, 0, 0}, Filter: []byte(`{"x' OR 1=1 --":1}`)}).(messages.VectorSearchResult)
	require.Empty(t, res.Matches, "filter keys are data, never SQL")

	// min_similarity and several collections merged by score.
	min := 0.5
	res = do(t, s, messages.VectorRequest{Op: "search", Collections: []string{"docs", "notes"}, Vector: []float64{1, 0, 0}, MinSimilarity: &min, EFSearch: 50}).(messages.VectorSearchResult)
	ids := []string{}
	for _, m := range res.Matches {
		ids = append(ids, m.Collection+"/"+m.ID)
		require.GreaterOrEqual(t, float64(m.Score), 0.5)
	}
	require.ElementsMatch(t, []string{"docs/a", "docs/b", "notes/n1"}, ids)
	for i := 1; i < len(res.Matches); i++ {
		require.GreaterOrEqual(t, res.Matches[i-1].Score, res.Matches[i].Score)
	}

	st := do(t, s, messages.VectorRequest{Op: "stats", Collection: "docs"}).(messages.VectorStats)
	require.EqualValues(t, 4, st.Total)
	require.EqualValues(t, 3, st.Embedded)
	require.EqualValues(t, 1, st.MissingEmbeddings)
	require.Equal(t, "hnsw", st.Index)
	require.Positive(t, st.IndexBytes)

	st = do(t, s, messages.VectorRequest{Op: "rebuild_index", Collection: "docs", Index: "ivfflat"}).(messages.VectorStats)
	require.Equal(t, "ivfflat", st.Index)
	require.Positive(t, st.IndexBytes)
	res = do(t, s, messages.VectorRequest{Op: "search", Collection: "docs", Vector: []float64{0, 0, 1}, K: 1}).(messages.VectorSearchResult)
	require.Equal(t, "c", res.Matches[0].ID)

	del := do(t, s, messages.VectorRequest{Op: "delete", Collection: "docs", IDs: []string{"a", "zzz"}}).(messages.DeletedResult)
	require.EqualValues(t, 1, del.Deleted)
}

func TestVectorErrors(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t)
	do(t, s, messages.VectorRequest{Op: "create_collection", Collection: "docs"})
	for _, tc := range []struct {
		req  messages.VectorRequest
		want messages.Code
	}{
		{messages.VectorRequest{Op: "upsert", Collection: "docs", ID: "x", Vector: []float64{1, 2}}, messages.CodeBadRequest},
		{messages.VectorRequest{Op: "search", Collection: "docs", Vector: []float64{1, 2, 3, 4}}, messages.CodeBadRequest},
		{messages.VectorRequest{Op: "search", Collection: "nope", Vector: []float64{1, 2, 3}}, messages.CodeNotFound},
		{messages.VectorRequest{Op: "search", Collection: "docs", Vector: []float64{1, 2, 3}, Metric: "manhattan"}, messages.CodeBadRequest},
		{messages.VectorRequest{Op: "create_collection", Collection: "x", Metric: "hamming"}, messages.CodeBadRequest},
		{messages.VectorRequest{Op: "create_collection", Collection: "Robert'); DROP TABLE students;--"}, messages.CodeBadRequest},
		{messages.VectorRequest{Op: "create_collection", Collection: "docs", Dimension: 5}, messages.CodeConflict},
		{messages.VectorRequest{Op: "create_collection", Collection: "y", Index: "ivfflat"}, messages.CodeBadRequest},
		{messages.VectorRequest{Op: "create_collection", Collection: "z", Dimension: 3000}, messages.CodeBadRequest},
		{messages.VectorRequest{Op: "search", Collection: "docs", Vector: []float64{1, 2, 3}, K: 5000}, messages.CodeBadRequest},
		{messages.VectorRequest{Op: "search", Collection: "docs", Vector: []float64{1, 2, 3}, Filter: []byte(`[1]`)}, messages.CodeBadRequest},
		{messages.VectorRequest{Op: "upsert", Collection: "docs", ID: "x", Vector: []float64{1, 2, 3}, Metadata: []byte(`"s"`)}, messages.CodeBadRequest},
		{messages.VectorRequest{Op: "rebuild_index", Collection: "docs", Index: "ivfflat"}, messages.CodeBadRequest},
		{messages.VectorRequest{Op: "teleport"}, messages.CodeBadRequest},
	} {
		require.Equal(t, tc.want, code(t, s, tc.req), "%+v", tc.req)
	}
}

// TestRecall: recall@10 of the HNSW path against an exact scan, on 10k
// random vectors and 100 queries.
func TestRecall(t *testing.T) {
	t.Parallel()
	s, pg, cl := setup(t)
	const n, dim, queries, k = 10000, 64, 100, 10
	rng := rand.New(rand.NewPCG(1, 2))
	randVec := func() []float64 {
		v := make([]float64, dim)
		for i := range v {
			v[i] = rng.Float64()*2 - 1
		}
		return v
	}
	// Load first, then build the HNSW index in bulk: much faster than
	// inserting into the index row by row.
	do(t, s, messages.VectorRequest{Op: "create_collection", Collection: "rnd", Dimension: dim, Index: "none"})
	items := make([]messages.VectorItem, n)
	for i := range items {
		items[i] = messages.VectorItem{ID: fmt.Sprint(i), Vector: randVec()}
	}
	start := time.Now()
	do(t, s, messages.VectorRequest{Op: "upsert", Collection: "rnd", Items: items})
	loaded := time.Since(start)
	st := do(t, s, messages.VectorRequest{Op: "rebuild_index", Collection: "rnd", Index: "hnsw"}).(messages.VectorStats)
	require.Equal(t, "hnsw", st.Index)
	t.Logf("loaded %d vectors of %d dimensions in %s, built the HNSW index (%s) in %s", n, dim,
		loaded.Round(time.Millisecond), st.IndexSize, (time.Since(start) - loaded).Round(time.Millisecond))

	// The search path must be the index, or the comparison means nothing.
	var plan string
	f := make([]float32, dim)
	rows, err := cl.Pool().Query(context.Background(), "EXPLAIN SELECT id FROM "+pgx.Identifier{pg.Schema, "rnd"}.Sanitize()+
		" WHERE embedding IS NOT NULL ORDER BY embedding <=> $1 LIMIT 10", pgvector.NewVector(f))
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	for _, l := range lines {
		plan += l + "\n"
	}
	require.Contains(t, plan, "rnd_embedding_idx", plan)

	hits := 0
	for q := 0; q < queries; q++ {
		qv := randVec()
		res := do(t, s, messages.VectorRequest{Op: "search", Collection: "rnd", Vector: qv, K: k, EFSearch: 200}).(messages.VectorSearchResult)
		require.Len(t, res.Matches, k)
		exact := exactTopK(t, cl, pg.Schema, qv, k)
		for _, m := range res.Matches {
			if exact[m.ID] {
				hits++
			}
		}
	}
	recall := float64(hits) / float64(queries*k)
	t.Logf("recall@%d of HNSW (ef_search 200) against an exact scan: %.3f over %d queries", k, recall, queries)
	require.GreaterOrEqual(t, recall, 0.95)
}

func exactTopK(t *testing.T, cl *pgexec.Client, schema string, q []float64, k int) map[string]bool {
	t.Helper()
	f := make([]float32, len(q))
	for i := range q {
		f[i] = float32(q[i])
	}
	out := map[string]bool{}
	err := pgx.BeginFunc(context.Background(), cl.Pool(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(context.Background(), "SET LOCAL enable_indexscan = off"); err != nil {
			return err
		}
		rows, err := tx.Query(context.Background(), "SELECT id FROM "+pgx.Identifier{schema, "rnd"}.Sanitize()+" ORDER BY embedding <=> $1 LIMIT $2", pgvector.NewVector(f), k)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, id := range ids {
			out[id] = true
		}
		return err
	})
	require.NoError(t, err)
	return out
}

// TestNewRefusesBadConfig: a dimension pgvector cannot hold is an error at
// New, not at the first collection.
func TestNewRefusesBadConfig(t *testing.T) {
	_, _, cl := setup(t)
	for _, d := range []int{-1, vector.MaxDimension + 1} {
		_, err := vector.New(cl, vector.Config{Dimension: d})
		require.Error(t, err, d)
	}
	_, err := vector.New(nil, vector.Config{})
	require.Error(t, err)
}

// TestSearchDistanceOverflow: vectors near float32's limits make distances
// that overflow float8. The answer still encodes, with the distance as
// "Infinity" (as db.execute writes a float8), instead of an INTERNAL error.
func TestSearchDistanceOverflow(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t)
	do(t, s, messages.VectorRequest{Op: "create_collection", Collection: "far", Metric: "l2", Index: "none"})
	const big = 3.4e38
	do(t, s, messages.VectorRequest{Op: "upsert", Collection: "far", ID: "a", Vector: []float64{big, big, big}})
	out, err := s.Handle(context.Background(), &messages.VectorRequest{Op: "search", Collection: "far", Vector: []float64{-big, -big, -big}})
	require.NoError(t, err)
	body, err := json.Marshal(out)
	require.NoError(t, err, "the answer encodes")
	require.Contains(t, string(body), `"distance":"Infinity"`)
	var back messages.VectorSearchResult
	require.NoError(t, json.Unmarshal(body, &back), "and decodes")
	require.True(t, math.IsInf(float64(back.Matches[0].Distance), 1))
}
