package client_test

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/pkg/client"
)

// bitsVectors are float32s that an inexact encoding changes.
var bitsVectors = [][]float32{
	{float32(math.Copysign(0, -1)), math.Float32frombits(1), math.MaxFloat32},
	{-math.MaxFloat32, 1.0 / 3, math.Float32frombits(0x007fffff)},
	{0.1, -2.7182817, 16777216},
}

func requireBits(t *testing.T, want, got []float32) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, math.Float32bits(want[i]), math.Float32bits(got[i]), "[%d]: want %g, got %g", i, want[i], got[i])
	}
}

// spy returns the bodies of the requests sent on subject from now on.
func spy(t *testing.T, subject string) func() [][]byte {
	t.Helper()
	ch := make(chan *nats.Msg, 256)
	sub, err := nc.ChanSubscribe(subject, ch)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return func() [][]byte {
		require.NoError(t, nc.Flush())
		var out [][]byte
		for {
			select {
			case m := <-ch:
				out = append(out, m.Data)
			case <-time.After(100 * time.Millisecond):
				return out
			}
		}
	}
}

// TestVectorsWireEncodings: the client sends vector_b64 and asks for f32le
// by default, JSON with WithJSONVectors; either way the float32s it gets back
// are the ones it sent, bit for bit, from cache.embedding and db.vector.
func TestVectorsWireEncodings(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		opts   []client.Option
		b64    bool
		prefix string
	}{
		{name: "default", b64: true, prefix: "wb"},
		{name: "json", opts: []client.Option{client.WithJSONVectors()}, prefix: "wj"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := newClient(t, c.opts...)
			embSpy, vecSpy := spy(t, "cache.embedding"), spy(t, "db.vector")
			e := cl.Embeddings()
			_, err := e.Set(ctx, client.ByHash(c.prefix+"0"), bitsVectors[0])
			require.NoError(t, err)
			_, err = e.MSet(ctx, []client.Embedding{{Key: client.ByHash(c.prefix + "1"), Vector: bitsVectors[1]}, {Key: client.ByHash(c.prefix + "2"), Vector: bitsVectors[2]}})
			require.NoError(t, err)
			got, err := e.Get(ctx, client.ByHash(c.prefix+"0"))
			require.NoError(t, err)
			requireBits(t, bitsVectors[0], got)
			all, err := e.MGet(ctx, []string{c.prefix + "2", c.prefix + "none", c.prefix + "1", c.prefix + "0"})
			require.NoError(t, err)
			require.Len(t, all, 4)
			require.Nil(t, all[1])
			requireBits(t, bitsVectors[2], all[0])
			requireBits(t, bitsVectors[1], all[2])
			requireBits(t, bitsVectors[0], all[3])

			v := cl.Vectors()
			col := "client_bits_" + c.name
			_, err = v.CreateCollection(ctx, col, 3, client.WithMetric("l2"), client.WithIndex("none"))
			require.NoError(t, err)
			_, err = v.Upsert(ctx, col, []client.VectorItem{{ID: "0", Vector: bitsVectors[0]}, {ID: "1", Vector: bitsVectors[1]}, {ID: "2", Vector: bitsVectors[2]}, {ID: "none"}})
			require.NoError(t, err)
			matches, err := v.Search(ctx, col, bitsVectors[2], client.WithK(10), client.WithIncludeVectors())
			require.NoError(t, err)
			require.Len(t, matches, 3, "the item without a vector is no match")
			require.Equal(t, "2", matches[0].ID)
			for _, m := range matches {
				require.Nil(t, m.VectorB64)
				requireBits(t, bitsVectors[m.ID[0]-'0'], m.Vector)
			}
			matches, err = v.Search(ctx, col, bitsVectors[2], client.WithK(1))
			require.NoError(t, err)
			require.Nil(t, matches[0].Vector, "no vectors unless asked")

			// What went on the wire.
			checked := 0
			for _, body := range append(embSpy(), vecSpy()...) {
				if !bytes.Contains(body, []byte(c.prefix)) && !bytes.Contains(body, []byte(col)) {
					continue // another test's request
				}
				sends := bytes.Contains(body, []byte(`"vector_b64":`)) || bytes.Contains(body, []byte(`"vector":`))
				if sends {
					require.Equal(t, c.b64, bytes.Contains(body, []byte(`"vector_b64":`)), "%s", body)
					require.Equal(t, !c.b64, bytes.Contains(body, []byte(`"vector":`)), "%s", body)
				}
				asks := bytes.Contains(body, []byte(`"op":"get"`)) || bytes.Contains(body, []byte(`"op":"mget"`)) || bytes.Contains(body, []byte(`"include_vectors"`))
				require.Equal(t, c.b64 && asks, bytes.Contains(body, []byte(`"encoding":"f32le"`)), "%s", body)
				checked++
				if !c.b64 {
					require.NotContains(t, string(body), "vector_b64")
					require.NotContains(t, string(body), "f32le")
				}
			}
			require.Equal(t, 8, checked, "set, mset, get, mget, create, upsert, search twice")
		})
	}
}
