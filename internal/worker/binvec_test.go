package worker

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// awkward is float32 values that a careless encoding changes: zeros of
// both signs, the smallest and largest subnormals, the extremes, and
// values with no short decimal form.
var awkward = []float32{
	0, float32(math.Copysign(0, -1)), math.Float32frombits(1), math.Float32frombits(0x007fffff),
	-math.Float32frombits(1), math.SmallestNonzeroFloat32, 1.1754944e-38, math.MaxFloat32, -math.MaxFloat32,
	1.0 / 3, -2.7182817, 16777217, 1e-45, 0.1,
}

// awkwardVector returns a vector of dims dimensions: the awkward values,
// then random finite bit patterns.
func awkwardVector(dims int, rng *rand.Rand) []float32 {
	v := make([]float32, dims)
	for i := range v {
		if i < len(awkward) {
			v[i] = awkward[i]
			continue
		}
		for {
			f := math.Float32frombits(rng.Uint32())
			if !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) {
				v[i] = f
				break
			}
		}
	}
	return v
}

func b64Of(v []float32) string { return base64.StdEncoding.EncodeToString(messages.Float32sLE(v)) }

// requireSameBits fails unless got holds want's float32s bit for bit.
func requireSameBits(t *testing.T, want, got []float32, msg string) {
	t.Helper()
	require.Len(t, got, len(want), msg)
	for i := range want {
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			require.Failf(t, "bits differ", "%s: [%d] want %08x (%g), got %08x (%g)", msg, i,
				math.Float32bits(want[i]), want[i], math.Float32bits(got[i]), got[i])
		}
	}
}

// jsonFloat32s reads a JSON array of numbers as float32s, as a caller that
// asked for JSON would.
func jsonFloat32s(t *testing.T, raw json.RawMessage) []float32 {
	t.Helper()
	var v []float32
	require.NoError(t, json.Unmarshal(raw, &v), "%.200s", raw)
	return v
}

// TestEmbeddingF32LERoundTrip: vectors sent as vector_b64 come back bit for
// bit from get and mget in f32le, and as the same float32s in JSON, on both
// state backends; vectors sent as JSON come back in f32le.
func TestEmbeddingF32LERoundTrip(t *testing.T) {
	t.Parallel()
	for name, opt := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, opt)
			rng := rand.New(rand.NewPCG(1, 2))
			vecs := map[string][]float32{
				"one":   {float32(math.Copysign(0, -1))},
				"small": awkward,
				"384":   awkwardVector(384, rng),
				"max":   awkwardVector(state.MaxVectorDims, rng),
			}
			hashes := []string{"one", "small", "384", "max"}
			b.ok(`{"op":"set","hash":"one","vector_b64":"`+b64Of(vecs["one"])+`"}`, subjects.CacheEmbedding)
			items := []messages.EmbeddingItem{}
			for _, h := range hashes[1:] {
				s := b64Of(vecs[h])
				items = append(items, messages.EmbeddingItem{Hash: h, VectorB64: &s})
			}
			mset, err := json.Marshal(messages.EmbeddingRequest{Op: messages.OpMSet, Items: items})
			require.NoError(t, err)
			require.Equal(t, "3", fmt.Sprint(b.ok(string(mset), subjects.CacheEmbedding)["stored"]))

			for _, h := range hashes {
				a := b.request(subjects.CacheEmbedding, []byte(`{"op":"get","hash":"`+h+`","encoding":"f32le"}`))
				require.Empty(t, a.status, "%.300s", a.body)
				var got struct {
					Hash      string          `json:"hash"`
					Hit       bool            `json:"hit"`
					VectorB64 *string         `json:"vector_b64"`
					Vector    json.RawMessage `json:"vector"`
				}
				require.NoError(t, json.Unmarshal(a.body, &got))
				require.True(t, got.Hit)
				require.Nil(t, got.Vector, "f32le answers no vector field")
				require.Equal(t, b64Of(vecs[h]), *got.VectorB64, "%s: the bytes sent are the bytes answered", h)

				a = b.request(subjects.CacheEmbedding, []byte(`{"op":"get","hash":"`+h+`"}`))
				require.Empty(t, a.status, "%.300s", a.body)
				var inJSON messages.EmbeddingGetResult
				require.NoError(t, json.Unmarshal(a.body, &inJSON))
				requireSameBits(t, vecs[h], inJSON.Vector, h+" as JSON")
			}

			a := b.request(subjects.CacheEmbedding, []byte(`{"op":"mget","hashes":["max","nope","one","384","small"],"encoding":"f32le"}`))
			require.Empty(t, a.status, "%.300s", a.body)
			var mget struct {
				VectorsB64 []*string        `json:"vectors_b64"`
				Hits       int              `json:"hits"`
				Vectors    *json.RawMessage `json:"vectors"`
			}
			require.NoError(t, json.Unmarshal(a.body, &mget))
			require.Nil(t, mget.Vectors)
			require.Equal(t, 4, mget.Hits)
			require.Len(t, mget.VectorsB64, 5)
			require.Nil(t, mget.VectorsB64[1], "a miss is null")
			for i, h := range []string{"max", "", "one", "384", "small"} {
				if h != "" {
					require.Equal(t, b64Of(vecs[h]), *mget.VectorsB64[i], h)
				}
			}
			miss := b.ok(`{"op":"get","hash":"nope","encoding":"f32le"}`, subjects.CacheEmbedding)
			require.Equal(t, map[string]any{"hash": "nope", "hit": false, "vector_b64": nil}, miss)

			// JSON in, f32le out: the float32 of each number.
			b.ok(`{"op":"set","hash":"j","vector":[0.1,-0,1e-45,3.4028234663852886e38]}`, subjects.CacheEmbedding)
			got := b.ok(`{"op":"get","hash":"j","encoding":"f32le"}`, subjects.CacheEmbedding)
			require.Equal(t, b64Of([]float32{0.1, float32(math.Copysign(0, -1)), 1e-45, math.MaxFloat32}), got["vector_b64"])
			// encoding json, said outright, is the default.
			got = b.ok(`{"op":"get","hash":"j","encoding":"json"}`, subjects.CacheEmbedding)
			require.Equal(t, "[0.1 -0 1e-45 3.4028235e+38]", fmt.Sprint(got["vector"]))
		})
	}
}

// TestEmbeddingF32LEBadInput: each malformed vector_b64 or encoding is a
// BAD_REQUEST naming its field, and stores nothing.
func TestEmbeddingF32LEBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	nan := base64.StdEncoding.EncodeToString(binary.LittleEndian.AppendUint32([]byte{0, 0, 128, 63}, 0x7fc00000))
	inf := b64Of([]float32{float32(math.Inf(-1))})
	tooMany := b64Of(make([]float32, state.MaxVectorDims+1))
	for _, c := range []struct{ body, param string }{
		{`{"op":"set","hash":"h","vector_b64":"AAAAAA=!"}`, "vector_b64"},
		{`{"op":"set","hash":"h","vector_b64":"AACAPw"}`, "vector_b64"}, // no padding
		{`{"op":"set","hash":"h","vector_b64":"AACA"}`, "vector_b64"},   // 3 bytes
		{`{"op":"set","hash":"h","vector_b64":"AACAPwA="}`, "vector_b64"},
		{`{"op":"set","hash":"h","vector_b64":""}`, "vector_b64"},
		{`{"op":"set","hash":"h","vector_b64":"` + nan + `"}`, "vector_b64"},
		{`{"op":"set","hash":"h","vector_b64":"` + inf + `"}`, "vector_b64"},
		{`{"op":"set","hash":"h","vector_b64":"` + tooMany + `"}`, "vector_b64"},
		{`{"op":"set","hash":"h","vector":[1],"vector_b64":"AACAPw=="}`, "vector_b64"},
		{`{"op":"mset","items":[{"hash":"h","vector":[1],"vector_b64":"AACAPw=="}]}`, "vector_b64"},
		{`{"op":"set","hash":"h","vector":[],"vector_b64":"AACAPw=="}`, "vector_b64"},
		{`{"op":"mset","items":[{"hash":"h","vector":[],"vector_b64":"AACAPw=="}]}`, "vector_b64"},
		{`{"op":"set","hash":"h","vector_b64":"AACA\nPw=="}`, "vector_b64"},
		{`{"op":"mset","items":[{"hash":"ok","vector_b64":"AACAPw=="},{"hash":"h","vector_b64":"AACA"}]}`, "vector_b64"},
		{`{"op":"set","hash":"h","vector_b64":1}`, "vector_b64"},
		{`{"op":"get","hash":"h","encoding":"f32be"}`, "encoding"},
		{`{"op":"mget","hashes":["h"],"encoding":"F32LE"}`, "encoding"},
		{`{"op":"set","hash":"h","vector":[1],"encoding":"base64"}`, "encoding"},
	} {
		e := b.request(subjects.CacheEmbedding, []byte(c.body)).errorOf(t)
		require.Equal(t, "BAD_REQUEST", e["code"], c.body)
		require.Equal(t, c.param, e["param"], "%s: %v", c.body, e["message"])
	}
	got := b.ok(`{"op":"mget","hashes":["h","ok"]}`, subjects.CacheEmbedding)
	require.Equal(t, "0", fmt.Sprint(got["hits"]), "no refused set stored anything")
}

// TestEmbeddingF32LETooLarge: the f32le answer bound is exact. An mget whose
// base64 answer is one byte over the answer bound is TOO_LARGE before the
// fetch; one that fits answers every vector.
func TestEmbeddingF32LETooLarge(t *testing.T) {
	t.Parallel()
	for name, opt := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testEmbeddingF32LETooLarge(t, setup(t, opt, func(o *options) { o.maxPayload = 64 << 10 }))
		})
	}
}

func testEmbeddingF32LETooLarge(t *testing.T, b *bundle) {
	maxAnswer := b.w.maxAnswer()
	vec := awkwardVector(1000, rand.New(rand.NewPCG(3, 4))) // 5336 bytes of base64 and quotes
	s := b64Of(vec)
	items := make([]messages.EmbeddingItem, 20)
	hashes := make([]string, 20)
	for i := range items {
		hashes[i] = fmt.Sprintf("h%02d", i)
		items[i] = messages.EmbeddingItem{Hash: hashes[i], VectorB64: &s}
	}
	for i := 0; i < len(items); i += 5 { // within the request bound
		mset, err := json.Marshal(messages.EmbeddingRequest{Op: messages.OpMSet, Items: items[i : i+5]})
		require.NoError(t, err)
		b.ok(string(mset), subjects.CacheEmbedding)
	}

	// n hits answer {"vectors_b64":[...],"hits":n}: n quoted strings, n-1 commas.
	size := func(n int) int {
		return len(`{"vectors_b64":[],"hits":`) + n*(len(s)+2) + n - 1 + len(fmt.Sprint(n)) + 1
	}
	fits := 0
	for size(fits+1) <= maxAnswer {
		fits++
	}
	require.Less(t, fits, 20, "the test needs an mget that does not fit")
	req := func(n int) []byte {
		body, err := json.Marshal(messages.EmbeddingRequest{Op: messages.OpMGet, Hashes: hashes[:n], Encoding: messages.EncodingF32LE})
		require.NoError(t, err)
		return body
	}
	a := b.request(subjects.CacheEmbedding, req(fits))
	require.Empty(t, a.status, "%.300s", a.body)
	require.Len(t, a.body, size(fits), "the answer is the size computed")
	a = b.request(subjects.CacheEmbedding, req(fits+1))
	require.Equal(t, "413", a.status, "%.300s", a.body)
	require.Equal(t, "TOO_LARGE", a.errorOf(t)["code"])
	require.Contains(t, a.errorOf(t)["message"], fmt.Sprintf("at least %d bytes", (fits+1)*(len(s)+2)),
		"refused from the sizes, before the fetch: the base64 and its quotes")
	// The same vectors in JSON take more room: fewer fit.
	body, err := json.Marshal(messages.EmbeddingRequest{Op: messages.OpMGet, Hashes: hashes[:fits]})
	require.NoError(t, err)
	require.Equal(t, "413", b.request(subjects.CacheEmbedding, body).status)
}

// vectorUpsertB64 upserts id with vector as vector_b64.
func vectorUpsertB64(t *testing.T, b *bundle, collection, id string, vector []float32) {
	t.Helper()
	b.ok(`{"op":"upsert","collection":"`+collection+`","id":"`+id+`","vector_b64":"`+b64Of(vector)+`"}`, subjects.DBVector)
}

// TestVectorF32LERoundTrip: db.vector keeps float32s bit for bit: upserted
// as vector_b64 (and in items), searched as vector_b64, they come back
// with include_vectors in both encodings, for 1, 3 and 16,000 dimensions.
func TestVectorF32LERoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NotNil(t, b.w.deps.Vector, "db.vector needs pgvector in the test database (make services installs it)")
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct {
		name string
		dims int
	}{{"one", 1}, {"three", 3}, {"wide", 16000}} {
		b.ok(fmt.Sprintf(`{"op":"create_collection","collection":%q,"dimension":%d,"metric":"l2","index":"none"}`, c.name, c.dims), subjects.DBVector)
		// Every awkward value in every position, and a random query "r".
		want := map[string][]float32{}
		if c.dims >= len(awkward) {
			want["a"] = awkwardVector(c.dims, rng)
		} else {
			for i := range awkward {
				v := make([]float32, c.dims)
				for j := range v {
					v[j] = awkward[(i+j)%len(awkward)]
				}
				want[fmt.Sprintf("a%02d", i)] = v
			}
		}
		want["r"] = make([]float32, c.dims)
		for i := range want["r"] {
			want["r"][i] = rng.Float32()*2 - 1
		}
		items := []messages.VectorItem{}
		for id, v := range want {
			if id == "r" {
				continue
			}
			s := b64Of(v)
			items = append(items, messages.VectorItem{ID: id, VectorB64: &s})
		}
		up, err := json.Marshal(messages.VectorRequest{Op: messages.OpUpsert, Collection: c.name, Items: items})
		require.NoError(t, err)
		b.ok(string(up), subjects.DBVector)
		vectorUpsertB64(t, b, c.name, "r", want["r"])

		for _, enc := range []string{"json", "f32le"} {
			query := b64Of(want["r"])
			a := b.request(subjects.DBVector, []byte(fmt.Sprintf(`{"op":"search","collection":%q,"vector_b64":%q,"k":100,"include_vectors":true,"encoding":%q}`, c.name, query, enc)))
			require.Empty(t, a.status, "%.300s", a.body)
			var res struct {
				Matches []struct {
					ID        string          `json:"id"`
					Distance  messages.Float  `json:"distance"`
					Vector    json.RawMessage `json:"vector"`
					VectorB64 *string         `json:"vector_b64"`
				} `json:"matches"`
			}
			require.NoError(t, json.Unmarshal(a.body, &res))
			require.Len(t, res.Matches, len(want), "%s %s", c.name, enc)
			require.Equal(t, "r", res.Matches[0].ID, "the query vector, sent as base64, finds itself first")
			require.Zero(t, float64(res.Matches[0].Distance))
			for _, m := range res.Matches {
				msg := fmt.Sprintf("%s %s %s", c.name, enc, m.ID)
				if enc == "json" {
					require.Nil(t, m.VectorB64, msg)
					requireSameBits(t, want[m.ID], jsonFloat32s(t, m.Vector), msg)
					continue
				}
				require.Nil(t, m.Vector, msg)
				require.NotNil(t, m.VectorB64, msg)
				require.Equal(t, b64Of(want[m.ID]), *m.VectorB64, msg)
			}
		}
		// Without include_vectors, no vector, whatever the encoding.
		a := b.ok(fmt.Sprintf(`{"op":"search","collection":%q,"vector_b64":%q,"k":1,"encoding":"f32le"}`, c.name, b64Of(want["r"])), subjects.DBVector)
		m := a["matches"].([]any)[0].(map[string]any)
		require.NotContains(t, m, "vector_b64")
		require.NotContains(t, m, "vector")
	}
}

// TestVectorF32LEBadInput: malformed vector_b64 or encoding on db.vector is
// a BAD_REQUEST naming the field; a vector of another dimension too.
func TestVectorF32LEBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NotNil(t, b.w.deps.Vector, "db.vector needs pgvector in the test database (make services installs it)")
	b.ok(`{"op":"create_collection","collection":"docs","dimension":2}`, subjects.DBVector)
	two := b64Of([]float32{1, 2})
	nan := base64.StdEncoding.EncodeToString(binary.LittleEndian.AppendUint32([]byte{0, 0, 128, 63}, 0x7f800001))
	for _, c := range []struct{ body, param string }{
		{`{"op":"upsert","collection":"docs","id":"a","vector_b64":"AAAAAA=!"}`, "vector_b64"},
		{`{"op":"upsert","collection":"docs","id":"a","vector_b64":"AACAPwAA"}`, "vector_b64"}, // 6 bytes
		{`{"op":"upsert","collection":"docs","id":"a","vector_b64":"` + nan + `"}`, "vector_b64"},
		{`{"op":"upsert","collection":"docs","id":"a","vector_b64":"AACAPw=="}`, "vector_b64"}, // 1 dimension of 2
		{`{"op":"upsert","collection":"docs","id":"a","vector":[1,2],"vector_b64":"` + two + `"}`, "vector_b64"},
		{`{"op":"upsert","collection":"docs","items":[{"id":"a","vector_b64":"` + two + `"},{"id":"b","vector_b64":"AAAA="}]}`, "items[1].vector_b64"},
		{`{"op":"upsert","collection":"docs","items":[{"id":"a","vector":[1,2],"vector_b64":"` + two + `"}]}`, "items[0].vector_b64"},
		{`{"op":"upsert","collection":"docs","items":[{"id":"a","vector":[],"vector_b64":"` + two + `"}]}`, "items[0].vector_b64"},
		{`{"op":"search","collection":"docs","vector":[],"vector_b64":"` + two + `"}`, "vector_b64"},
		{`{"op":"search","collection":"docs","vector_b64":"` + strings.Repeat("A", 7) + `"}`, "vector_b64"},
		{`{"op":"search","collection":"docs","vector":[1,2],"vector_b64":"` + two + `"}`, "vector_b64"},
		{`{"op":"search","collection":"docs","vector_b64":"` + nan + `"}`, "vector_b64"},
		{`{"op":"search","collection":"docs","vector_b64":"` + two + `","encoding":"f16"}`, "encoding"},
		{`{"op":"search","collection":"docs","vector_b64":"` + two + `","include_vectors":true,"encoding":""}`, ""},
		{`{"op":"stats","collection":"docs","encoding":"xml"}`, "encoding"},
	} {
		a := b.request(subjects.DBVector, []byte(c.body))
		if c.param == "" { // "" is the default encoding: not an error
			require.Empty(t, a.status, "%s: %s", c.body, a.body)
			continue
		}
		e := a.errorOf(t)
		require.Equal(t, "BAD_REQUEST", e["code"], c.body)
		require.Equal(t, c.param, e["param"], "%s: %v", c.body, e["message"])
	}
	require.Equal(t, "0", fmt.Sprint(b.ok(`{"op":"stats","collection":"docs"}`, subjects.DBVector)["total"]), "no refused upsert stored anything")
}

// TestVectorIncludeVectorsTooLarge: a search whose vectors could not fit the
// answer bound is TOO_LARGE, in either encoding; with fewer matches it fits.
func TestVectorIncludeVectorsTooLarge(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.maxPayload = 64 << 10 })
	require.NotNil(t, b.w.deps.Vector, "db.vector needs pgvector in the test database (make services installs it)")
	const dims = 4000 // 21,336 bytes of base64 a vector
	b.ok(fmt.Sprintf(`{"op":"create_collection","collection":"big","dimension":%d,"index":"none"}`, dims), subjects.DBVector)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 4 {
		v := make([]float32, dims)
		for j := range v {
			v[j] = rng.Float32()
		}
		vectorUpsertB64(t, b, "big", fmt.Sprint(i), v)
	}
	q := b64Of(make([]float32, dims))
	for _, enc := range []string{"f32le", "json"} {
		a := b.request(subjects.DBVector, []byte(`{"op":"search","collection":"big","vector_b64":"`+q+`","k":4,"include_vectors":true,"encoding":"`+enc+`"}`))
		require.Equal(t, "413", a.status, "%s: %.300s", enc, a.body)
		require.Equal(t, "TOO_LARGE", a.errorOf(t)["code"])
		if enc == "f32le" {
			require.Contains(t, a.errorOf(t)["message"], "at least", "refused while reading the matches, not once encoded")
		}
	}
	a := b.request(subjects.DBVector, []byte(`{"op":"search","collection":"big","vector_b64":"`+q+`","k":2,"include_vectors":true,"encoding":"f32le"}`))
	require.Empty(t, a.status, "%.300s", a.body)
	require.Len(t, a.json(t)["matches"], 2)
	a = b.request(subjects.DBVector, []byte(`{"op":"search","collection":"big","vector_b64":"`+q+`","k":4}`))
	require.Empty(t, a.status, "without vectors the answer is small: %.300s", a.body)
}
