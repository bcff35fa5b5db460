package vector_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/internal/vector"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// TestSearchLimits: the collections of a search are deduplicated, then
// capped, and so is k × collections; each refusal names its field.
func TestSearchLimits(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t)
	do(t, s, messages.VectorRequest{Op: "create_collection", Collection: "docs"})
	distinct := func(n int) []string {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("c%d", i)
		}
		return names
	}
	zero := 0
	for _, tc := range []struct {
		name  string
		req   messages.VectorRequest
		param string
	}{
		{"too many collections", messages.VectorRequest{Collections: distinct(vector.MaxSearchCollections + 1)}, "collections"},
		{"k × collections", messages.VectorRequest{Collections: distinct(vector.MaxSearchRows/vector.MaxK + 1), K: vector.MaxK}, "k"},
		{"a bad name among many", messages.VectorRequest{Collection: "docs", Collections: []string{"docs", "Bad-Name"}}, "collections"},
		{"timeout_ms", messages.VectorRequest{Collection: "docs", TimeoutMS: &zero}, "timeout_ms"},
	} {
		tc.req.Op, tc.req.Vector = "search", []float64{1, 0, 0}
		_, err := s.Handle(t.Context(), &tc.req)
		require.Error(t, err, tc.name)
		e := pgerr.AsError(err)
		require.Equal(t, messages.CodeBadRequest, e.Code, "%s: %v", tc.name, err)
		require.Equal(t, tc.param, e.Param, "%s: %v", tc.name, err)
	}
	// Duplicates count once: 1000 × docs is one collection, and k 1000 fits.
	many := make([]string, 1000)
	for i := range many {
		many[i] = "docs"
	}
	do(t, s, messages.VectorRequest{Op: "search", Collection: "docs", Collections: many, Vector: []float64{1, 0, 0}, K: vector.MaxK})
	require.Equal(t, messages.CodeNotFound, code(t, s, messages.VectorRequest{Op: "search", Collections: []string{"docs", "nope"}, Vector: []float64{1, 0, 0}}))
}

// TestDuplicateCollectionsMemory is issue 12's hostile search: a 6 KB request
// naming one collection 1000 times with k 1000 took the worker to 1.2 GB. It
// is answered from the one collection, with distinct matches, and the peak
// RSS stays under 300 MB. Not parallel: it reads the process's peak RSS.
func TestDuplicateCollectionsMemory(t *testing.T) {
	s, _, _ := setup(t)
	// No index: an exact scan returns all k rows (HNSW stops at ef_search).
	do(t, s, messages.VectorRequest{Op: "create_collection", Collection: "docs", Index: "none"})
	content := strings.Repeat("lorem ipsum ", 40)
	items := make([]messages.VectorItem, 1000)
	for i := range items {
		items[i] = messages.VectorItem{ID: strconv.Itoa(i), Vector: []float64{1, float64(i), 0.5}, Content: &content,
			Metadata: []byte(`{"source":"a document of some length","n":` + strconv.Itoa(i) + `}`)}
	}
	do(t, s, messages.VectorRequest{Op: "upsert", Collection: "docs", Items: items})

	many := make([]string, 1000)
	for i := range many {
		many[i] = "docs"
	}
	testenv.ResetPeakRSS(t)
	res := do(t, s, messages.VectorRequest{Op: "search", Collections: many, Vector: []float64{1, 0, 0}, K: 1000}).(messages.VectorSearchResult)
	peak := testenv.PeakRSS(t, 0)
	t.Logf("peak RSS %d MB", peak>>20)
	require.Equal(t, 1000, len(res.Matches))
	ids := map[string]bool{}
	for _, m := range res.Matches {
		ids[m.ID] = true
	}
	require.Len(t, ids, 1000, "every match once, not the best row 1000 times")
	require.Less(t, peak, int64(300<<20), "peak RSS")
}
